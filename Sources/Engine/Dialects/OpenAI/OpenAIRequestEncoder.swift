public import NIOCore

/// The canonical `ChatRequest` as an OpenAI Chat Completions body, for OpenAI-compatible upstreams.
public enum OpenAIRequestEncoder {
    /// What differs between OpenAI-compatible upstreams.
    public struct Options: Sendable {
        /// OpenAI's current models take `max_completion_tokens` and reject `max_tokens`; most
        /// compatible servers (vLLM, Ollama, Groq…) take `max_tokens`.
        public var maxTokensField: String
        /// vLLM and Ollama accept `top_k`; OpenAI rejects unknown parameters.
        public var acceptsTopK: Bool
        public var acceptsStreamOptions: Bool

        public init(maxTokensField: String = "max_tokens", acceptsTopK: Bool = true, acceptsStreamOptions: Bool = true) {
            self.maxTokensField = maxTokensField
            self.acceptsTopK = acceptsTopK
            self.acceptsStreamOptions = acceptsStreamOptions
        }
    }

    public static func encode(_ request: ChatRequest, upstreamModel: String, options: Options) -> ByteBuffer {
        var json = JSONWriter()
        json.openObject()
        json.field("model", upstreamModel)
        json.key("messages")
        json.openArray()
        if let system = request.system {
            json.openObject()
            json.field("role", "system")
            json.field("content", system)
            json.closeObject()
        }
        for message in request.messages {
            switch message.role {
            case .user: self.writeUser(message.content, into: &json)
            case .assistant: self.writeAssistant(message.content, into: &json)
            }
        }
        json.closeArray()
        if !request.tools.isEmpty {
            json.functionTools(request.tools)
            if let parallel = request.parallelToolCalls { json.field("parallel_tool_calls", parallel) }
        }
        if let choice = request.toolChoice {
            json.key("tool_choice")
            switch choice {
            case .auto: json.value("auto")
            case .none: json.value("none")
            case .required: json.value("required")
            case .tool(let name):
                json.openObject()
                json.field("type", "function")
                json.key("function")
                json.openObject()
                json.field("name", name)
                json.closeObject()
                json.closeObject()
            }
        }
        if let maxTokens = request.maxTokens { json.field(options.maxTokensField, maxTokens) }
        if let temperature = request.temperature { json.field("temperature", temperature) }
        if let topP = request.topP { json.field("top_p", topP) }
        if let topK = request.topK, options.acceptsTopK { json.field("top_k", topK) }
        if !request.stopSequences.isEmpty {
            json.key("stop")
            json.openArray()
            for stop in request.stopSequences { json.value(stop) }
            json.closeArray()
        }
        if let user = request.user { json.field("user", user) }
        if let format = request.responseFormat {
            json.key("response_format")
            json.openObject()
            switch format {
            case .json:
                json.field("type", "json_object")
            case .jsonSchema(let name, let schema):
                json.field("type", "json_schema")
                json.key("json_schema")
                json.openObject()
                json.field("name", name)
                json.key("schema")
                json.raw(schema.jsonText)
                json.closeObject()
            }
            json.closeObject()
        }
        if request.stream {
            json.field("stream", true)
            if options.acceptsStreamOptions {
                json.key("stream_options")
                json.openObject()
                json.field("include_usage", true)
                json.closeObject()
            }
        }
        json.closeObject()
        return ByteBuffer(string: json.output)
    }

    /// Tool results become `tool` messages, which must directly follow the assistant's calls, so they
    /// go first; the rest of the turn (text, images) follows as one user message.
    private static func writeUser(_ parts: [ContentPart], into json: inout JSONWriter) {
        var rest: [ContentPart] = []
        for part in parts {
            guard case .toolResult(let id, let content, let isError) = part else {
                rest.append(part)
                continue
            }
            json.openObject()
            json.field("role", "tool")
            json.field("tool_call_id", id)
            let text = content.text(separator: "\n")
            // OpenAI has no error flag on tool results; say it in the text so the model knows.
            json.field("content", isError ? "Error: \(text)" : text)
            json.closeObject()
        }
        guard !rest.isEmpty else { return }
        json.openObject()
        json.field("role", "user")
        json.key("content")
        if rest.count == 1, case .text(let text) = rest[0] {
            json.value(text)
        } else {
            json.openArray()
            for part in rest {
                switch part {
                case .text(let text):
                    json.openObject()
                    json.field("type", "text")
                    json.field("text", text)
                    json.closeObject()
                case .image(let source):
                    json.openObject()
                    json.field("type", "image_url")
                    json.key("image_url")
                    json.openObject()
                    json.field("url", source.urlString)
                    json.closeObject()
                    json.closeObject()
                case .toolUse, .toolResult:
                    continue
                }
            }
            json.closeArray()
        }
        json.closeObject()
    }

    private static func writeAssistant(_ parts: [ContentPart], into json: inout JSONWriter) {
        json.openObject()
        json.field("role", "assistant")
        let text = parts.text()
        json.field("content", text.isEmpty ? nil : text)
        let calls = parts.toolUses
        if !calls.isEmpty { json.openAIToolCalls(calls) }
        json.closeObject()
    }
}

// MARK: Shapes shared by more than one dialect

extension JSONWriter {
    /// `"tools":[{"type":"function","function":{"name","description","parameters"}}]`: OpenAI's shape,
    /// which Ollama's native API shares.
    mutating func functionTools(_ tools: [ToolDefinition]) {
        self.key("tools")
        self.openArray()
        for tool in tools {
            self.openObject()
            self.field("type", "function")
            self.key("function")
            self.openObject()
            self.field("name", tool.name)
            if let description = tool.description { self.field("description", description) }
            self.key("parameters")
            self.raw(tool.parameters.jsonText)
            self.closeObject()
            self.closeObject()
        }
        self.closeArray()
    }

    /// OpenAI's `"tool_calls":[{"id","type":"function","function":{"name","arguments"}}]`, arguments as JSON text.
    mutating func openAIToolCalls(_ calls: [(id: String, name: String, input: JSONValue)]) {
        self.key("tool_calls")
        self.openArray()
        for call in calls {
            self.openObject()
            self.field("id", call.id)
            self.field("type", "function")
            self.key("function")
            self.openObject()
            self.field("name", call.name)
            self.field("arguments", call.input.jsonText)
            self.closeObject()
            self.closeObject()
        }
        self.closeArray()
    }
}
