public import NIOCore

/// The canonical `ChatRequest` as an Anthropic Messages body.
public enum AnthropicRequestEncoder {
    /// - Parameter defaultMaxTokens: Anthropic requires `max_tokens`; OpenAI clients often send none.
    /// - Throws: `invalidRequest` for a value Anthropic would reject (temperature above 1).
    public static func encode(_ request: ChatRequest, upstreamModel: String, defaultMaxTokens: Int) throws(GatewayError) -> ByteBuffer {
        if let temperature = request.temperature, temperature > 1 {
            throw .invalidRequest("'temperature' must be at most 1 for this model (Anthropic's range is 0 to 1).", param: "temperature")
        }
        var json = JSONWriter()
        json.openObject()
        json.field("model", upstreamModel)
        json.field("max_tokens", request.maxTokens ?? defaultMaxTokens)
        if let system = request.system, !system.isEmpty { json.field("system", system) }
        json.key("messages")
        json.openArray()
        for message in request.messages where !message.content.isEmpty {
            json.openObject()
            json.field("role", message.role.rawValue)
            json.key("content")
            json.openArray()
            // Tool results must come first in their user turn.
            let ordered = message.content.filter(\.isToolResult) + message.content.filter { !$0.isToolResult }
            for part in ordered { self.write(part, into: &json) }
            json.closeArray()
            json.closeObject()
        }
        json.closeArray()
        if !request.tools.isEmpty {
            json.key("tools")
            json.openArray()
            for tool in request.tools {
                json.openObject()
                json.field("name", tool.name)
                if let description = tool.description { json.field("description", description) }
                json.key("input_schema")
                json.raw(tool.parameters.jsonText)
                json.closeObject()
            }
            json.closeArray()
        }
        if let choice = request.toolChoice {
            json.key("tool_choice")
            json.openObject()
            switch choice {
            case .auto: json.field("type", "auto")
            case .none: json.field("type", "none")
            case .required: json.field("type", "any")
            case .tool(let name):
                json.field("type", "tool")
                json.field("name", name)
            }
            if request.parallelToolCalls == false && choice != .none { json.field("disable_parallel_tool_use", true) }
            json.closeObject()
        } else if request.parallelToolCalls == false && !request.tools.isEmpty {
            json.key("tool_choice")
            json.openObject()
            json.field("type", "auto")
            json.field("disable_parallel_tool_use", true)
            json.closeObject()
        }
        if let temperature = request.temperature { json.field("temperature", temperature) }
        // Current Claude models refuse `temperature` and `top_p` together; temperature wins.
        if let topP = request.topP, request.temperature == nil { json.field("top_p", topP) }
        if let topK = request.topK { json.field("top_k", topK) }
        let stops = request.stopSequences.filter { !$0.allSatisfy(\.isWhitespace) }
        if !stops.isEmpty {
            json.key("stop_sequences")
            json.openArray()
            for stop in stops { json.value(stop) }
            json.closeArray()
        }
        if let user = request.user {
            json.key("metadata")
            json.openObject()
            json.field("user_id", user)
            json.closeObject()
        }
        if let format = request.responseFormat {
            // Anthropic's structured outputs always take a schema.
            json.key("output_config")
            json.openObject()
            json.key("format")
            json.openObject()
            json.field("type", "json_schema")
            json.key("schema")
            json.raw(format.schema.jsonText)
            json.closeObject()
            json.closeObject()
        }
        if request.stream { json.field("stream", true) }
        json.closeObject()
        return ByteBuffer(string: json.output)
    }

    private static func write(_ part: ContentPart, into json: inout JSONWriter) {
        json.openObject()
        switch part {
        case .text(let text):
            json.field("type", "text")
            json.field("text", text)
        case .image(let source):
            json.field("type", "image")
            json.key("source")
            json.openObject()
            switch source {
            case .base64(let mediaType, let data):
                json.field("type", "base64")
                json.field("media_type", mediaType)
                json.field("data", data)
            case .url(let url):
                json.field("type", "url")
                json.field("url", url)
            }
            json.closeObject()
        case .toolUse(let id, let name, let input):
            json.field("type", "tool_use")
            json.field("id", AnthropicResponseEncoder.toolID(id))
            json.field("name", name)
            json.key("input")
            json.raw(input.jsonText)
        case .toolResult(let id, let content, let isError):
            json.field("type", "tool_result")
            json.field("tool_use_id", AnthropicResponseEncoder.toolID(id))
            json.key("content")
            json.openArray()
            for inner in content { self.write(inner, into: &json) }
            json.closeArray()
            if isError { json.field("is_error", true) }
        }
        json.closeObject()
    }
}

extension ContentPart {
    var isToolResult: Bool {
        if case .toolResult = self { return true }
        return false
    }
}
