public import NIOCore

/// OpenAI Chat Completions requests into the canonical `ChatRequest`, for upstreams of another dialect.
///
/// Leading `system`/`developer` messages become the system prompt; later ones become a user turn
/// wrapped in `<system-reminder>` (the form older models without mid-conversation system messages
/// follow). Consecutive `tool` messages become one user turn of tool results, as Anthropic requires.
/// What no other dialect can express (`n > 1`, logprobs, audio) is refused; options
/// that only tune sampling on OpenAI (penalties, seed, logit bias…) are dropped and listed in `dropped`.
public enum OpenAIRequestDecoder {
    public struct Decoded: Sendable {
        public var request: ChatRequest
        /// Whether the client asked for the trailing usage chunk of a stream.
        public var includeUsage: Bool
        /// Request fields that the target dialect has no equivalent for and that were left out.
        public var dropped: [String]
    }

    static let droppable = [
        "frequency_penalty", "presence_penalty", "seed", "logit_bias", "service_tier", "store", "metadata",
        "prompt_cache_key", "prompt_cache_retention", "reasoning_effort", "verbosity", "safety_identifier",
        "prediction", "web_search_options", "top_logprobs",
    ]

    public static func decode(_ body: ByteBuffer) throws(GatewayError) -> Decoded {
        let json = try JSONValue.requestObject(body)
        guard let model = json["model"]?.string, !model.isEmpty else {
            throw .invalidRequest("You must provide a model parameter.", param: "model")
        }
        guard let rawMessages = json["messages"]?.array, !rawMessages.isEmpty else {
            throw .invalidRequest("'messages' must be a non-empty array.", param: "messages")
        }
        try self.refuseUnportable(json)

        var request = ChatRequest(model: model, messages: [])
        var systemTexts: [String] = []
        for (index, message) in rawMessages.enumerated() {
            let role = message["role"]?.string
            switch role {
            case "system", "developer":
                let text = try self.text(message["content"], path: "messages[\(index)].content")
                if request.messages.isEmpty {
                    systemTexts.append(text)
                } else {
                    self.append(.user, [.text("<system-reminder>\(text)</system-reminder>")], to: &request.messages)
                }
            case "user":
                self.append(.user, try self.userContent(message["content"], path: "messages[\(index)].content"), to: &request.messages)
            case "assistant":
                self.append(.assistant, try self.assistantContent(message, path: "messages[\(index)]"), to: &request.messages)
            case "tool":
                guard let id = message["tool_call_id"]?.string else {
                    throw .invalidRequest("messages[\(index)].tool_call_id is required for tool messages.", param: "messages[\(index)].tool_call_id")
                }
                let text = try self.text(message["content"], path: "messages[\(index)].content")
                self.append(.user, [.toolResult(toolUseID: id, content: text.isEmpty ? [] : [.text(text)], isError: false)], to: &request.messages)
            default:
                throw .invalidRequest("messages[\(index)].role must be system, developer, user, assistant or tool.", param: "messages[\(index)].role")
            }
        }
        request.system = systemTexts.isEmpty ? nil : systemTexts.joined(separator: "\n\n")

        request.tools = try (json["tools"]?.array ?? []).enumerated().map { index, tool throws(GatewayError) in
            guard tool["type"]?.string == "function", let function = tool["function"], let name = function["name"]?.string else {
                throw .invalidRequest("tools[\(index)]: only function tools can be sent to this model.", param: "tools[\(index)]")
            }
            let parameters = function["parameters"] ?? .object([(key: "type", value: .string("object")), (key: "properties", value: .object([]))])
            return ToolDefinition(name: name, description: function["description"]?.string, parameters: parameters)
        }
        if let choice = json["tool_choice"], !choice.isNull {
            switch choice.string {
            case "auto": request.toolChoice = .auto
            case "none": request.toolChoice = ToolChoice.none
            case "required": request.toolChoice = .required
            default:
                guard let name = choice["function"]?["name"]?.string else {
                    throw .invalidRequest("'tool_choice' must be none, auto, required or a named function.", param: "tool_choice")
                }
                request.toolChoice = .tool(name: name)
            }
        }
        request.parallelToolCalls = json["parallel_tool_calls"]?.bool
        for name in ["max_completion_tokens", "max_tokens"] {
            guard request.maxTokens == nil, let tokens = json[name], !tokens.isNull else { continue }
            request.maxTokens = try UntrustedNumber.outputTokenLimit(tokens.wholeNumber, name: name)
        }
        request.temperature = try self.number(json["temperature"], "temperature", 0...2)
        request.topP = try self.number(json["top_p"], "top_p", 0...1)
        if let stop = json["stop"], !stop.isNull {
            if let single = stop.string {
                request.stopSequences = [single]
            } else if let list = stop.array?.compactMap(\.string), list.count == stop.array?.count, list.count <= 4 {
                request.stopSequences = list
            } else {
                throw .invalidRequest("'stop' must be a string or up to 4 strings.", param: "stop")
            }
        }
        request.stream = json["stream"]?.bool ?? false
        request.user = json["user"]?.string
        request.responseFormat = try self.responseFormat(json["response_format"])
        let dropped = json.keys.filter { self.droppable.contains($0) }
        return Decoded(request: request, includeUsage: json["stream_options"]?["include_usage"]?.bool ?? false, dropped: dropped)
    }

    private static func refuseUnportable(_ json: JSONValue) throws(GatewayError) {
        if let n = json["n"]?.int, n != 1 { throw .invalidRequest("'n' must be 1 for this model.", param: "n") }
        if json["logprobs"]?.bool == true { throw .invalidRequest("'logprobs' is not available for this model.", param: "logprobs") }
        if json["audio"] != nil && json["audio"]?.isNull == false { throw .invalidRequest("Audio output is not available for this model.", param: "audio") }
        if json["functions"] != nil || json["function_call"] != nil {
            throw .invalidRequest("The deprecated 'functions' parameters are not supported; use 'tools'.", param: "functions")
        }
    }

    private static func responseFormat(_ value: JSONValue?) throws(GatewayError) -> ResponseFormat? {
        guard let value, !value.isNull else { return nil }
        switch value["type"]?.string {
        case "text": return nil
        case "json_object": return .json
        case "json_schema":
            guard let schema = value["json_schema"]?["schema"], case .object = schema else {
                throw .invalidRequest("'response_format.json_schema.schema' must be a JSON Schema object.", param: "response_format")
            }
            return .jsonSchema(name: value["json_schema"]?["name"]?.string ?? "response", schema: schema)
        default:
            throw .invalidRequest("'response_format.type' must be text, json_object or json_schema.", param: "response_format")
        }
    }

    /// Same-role turns merge, so tool results of parallel calls end up in one user turn.
    static func append(_ role: ChatMessage.Role, _ parts: [ContentPart], to messages: inout [ChatMessage]) {
        if let last = messages.last, last.role == role {
            messages[messages.count - 1].content += parts
        } else {
            messages.append(ChatMessage(role: role, content: parts))
        }
    }

    /// A content value as text: a string, or parts of the `textTypes` (joined by newlines).
    static func text(_ content: JSONValue?, path: String, textTypes: Set<String> = ["text"]) throws(GatewayError) -> String {
        guard let content, !content.isNull else { return "" }
        if let text = content.string { return text }
        guard let parts = content.array else { throw .invalidRequest("\(path) must be a string or an array of text parts.", param: path) }
        var texts: [String] = []
        for part in parts {
            guard textTypes.contains(part["type"]?.string ?? ""), let text = part["text"]?.string else {
                throw .invalidRequest("\(path) may only contain text parts here.", param: path)
            }
            texts.append(text)
        }
        return texts.joined(separator: "\n")
    }

    private static func userContent(_ content: JSONValue?, path: String) throws(GatewayError) -> [ContentPart] {
        if let text = content?.string { return text.isEmpty ? [] : [.text(text)] }
        guard let parts = content?.array else { throw .invalidRequest("\(path) must be a string or an array of content parts.", param: path) }
        var result: [ContentPart] = []
        for (index, part) in parts.enumerated() {
            switch part["type"]?.string {
            case "text":
                if let text = part["text"]?.string, !text.isEmpty { result.append(.text(text)) }
            case "image_url":
                guard let url = part["image_url"]?["url"]?.string else {
                    throw .invalidRequest("\(path)[\(index)].image_url.url is required.", param: "\(path)[\(index)]")
                }
                result.append(.image(try self.image(url, path: "\(path)[\(index)]")))
            case let type:
                throw .invalidRequest("\(path)[\(index)]: content of type '\(type ?? "?")' is not available for this model.", param: "\(path)[\(index)]")
            }
        }
        return result
    }

    /// `data:image/png;base64,…` becomes an inline image; other URLs stay URLs.
    static func image(_ url: String, path: String) throws(GatewayError) -> ImageSource {
        guard url.hasPrefix("data:") else { return .url(url) }
        guard let comma = url.firstIndex(of: ","), url[..<comma].hasSuffix(";base64") else {
            throw .invalidRequest("\(path): data URLs must be base64-encoded.", param: path)
        }
        let mediaType = String(url[url.index(url.startIndex, offsetBy: 5)..<comma].dropLast(7))
        return .base64(mediaType: mediaType, data: String(url[url.index(after: comma)...]))
    }

    private static func assistantContent(_ message: JSONValue, path: String) throws(GatewayError) -> [ContentPart] {
        var parts: [ContentPart] = []
        let text = try self.text(message["content"], path: "\(path).content")
        if !text.isEmpty { parts.append(.text(text)) }
        for (index, call) in (message["tool_calls"]?.array ?? []).enumerated() {
            guard let id = call["id"]?.string, let name = call["function"]?["name"]?.string else {
                throw .invalidRequest("\(path).tool_calls[\(index)] needs an id and a function name.", param: "\(path).tool_calls[\(index)]")
            }
            parts.append(.toolUse(id: id, name: name, input: OpenAIResponseDecoder.arguments(call["function"]?["arguments"]?.string ?? "")))
        }
        return parts
    }

    static func number(_ value: JSONValue?, _ name: String, _ range: ClosedRange<Double>) throws(GatewayError) -> Double? {
        guard let value, !value.isNull else { return nil }
        guard let number = value.double, range.contains(number) else {
            throw .invalidRequest("'\(name)' must be a number from \(range.lowerBound) to \(range.upperBound).", param: name)
        }
        return number
    }
}
