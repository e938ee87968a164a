public import NIOCore

/// Anthropic Messages requests (`POST /v1/messages`) into the canonical `ChatRequest`.
///
/// Validation follows the API's own rules, so a client gets the 400 Anthropic would have sent:
/// `model`, `max_tokens` and a non-empty `messages` are required, roles alternate between `user`
/// and `assistant` (consecutive same-role turns are merged, as the API does), text blocks must not be
/// empty. Prior `thinking` blocks are dropped (an OpenAI-shaped upstream cannot take them back);
/// what cannot be carried at all (documents, enabled thinking) is refused with a clear message.
public enum AnthropicRequestDecoder {
    public struct Decoded: Sendable {
        public var request: ChatRequest
        /// What was left out because the target dialect cannot take it back (earlier turns' thinking).
        public var dropped: [String]
    }

    /// - Parameter requireMaxTokens: false for `count_tokens`, whose requests carry no `max_tokens`.
    public static func decode(_ body: ByteBuffer, requireMaxTokens: Bool = true) throws(GatewayError) -> Decoded {
        let json = try JSONValue.requestObject(body)
        var dropped: [String] = []
        let request = try self.decode(json, requireMaxTokens: requireMaxTokens, dropped: &dropped)
        return Decoded(request: request, dropped: dropped)
    }

    static func decode(_ json: JSONValue, requireMaxTokens: Bool, dropped: inout [String]) throws(GatewayError) -> ChatRequest {
        guard let model = json["model"]?.string, !model.isEmpty else {
            throw .invalidRequest("model: Field required", param: "model")
        }
        var maxTokens: Int?
        if let limit = json["max_tokens"], !limit.isNull {
            maxTokens = try UntrustedNumber.outputTokenLimit(limit.wholeNumber, name: "max_tokens")
        } else if requireMaxTokens {
            throw .invalidRequest("max_tokens: Field required", param: "max_tokens")
        }
        guard let rawMessages = json["messages"]?.array, !rawMessages.isEmpty else {
            throw .invalidRequest("messages: at least one message is required", param: "messages")
        }
        if let thinking = json["thinking"], thinking["type"]?.string == "enabled" {
            throw .invalidRequest("thinking: extended thinking is not available through this gateway's upstreams yet", param: "thinking")
        }

        var request = ChatRequest(model: model, messages: [], maxTokens: maxTokens)
        request.system = try self.system(json["system"])
        for (index, raw) in rawMessages.enumerated() {
            let message = try self.message(raw, index: index, dropped: &dropped)
            if let last = request.messages.last, last.role == message.role {
                request.messages[request.messages.count - 1].content += message.content
            } else {
                request.messages.append(message)
            }
        }
        request.tools = try (json["tools"]?.array ?? []).enumerated().map { index, tool throws(GatewayError) in try self.tool(tool, index: index) }
        if let choice = json["tool_choice"], !choice.isNull {
            (request.toolChoice, request.parallelToolCalls) = try self.toolChoice(choice)
        }
        request.temperature = try self.number(json["temperature"], "temperature", range: 0...1)
        request.topP = try self.number(json["top_p"], "top_p", range: 0...1)
        if let topK = json["top_k"], !topK.isNull {
            guard let value = topK.int, value >= 0 else { throw .invalidRequest("top_k: must be a non-negative integer", param: "top_k") }
            request.topK = value
        }
        if let stops = json["stop_sequences"], !stops.isNull {
            guard let list = stops.array?.compactMap(\.string), list.count == stops.array?.count else {
                throw .invalidRequest("stop_sequences: must be a list of strings", param: "stop_sequences")
            }
            if list.contains(where: { $0.allSatisfy(\.isWhitespace) }) {
                throw .invalidRequest("stop_sequences: each stop sequence must contain non-whitespace", param: "stop_sequences")
            }
            request.stopSequences = list
        }
        request.stream = json["stream"]?.bool ?? false
        request.user = json["metadata"]?["user_id"]?.string
        if let format = json["output_config"]?["format"], !format.isNull {
            guard format["type"]?.string == "json_schema", let schema = format["schema"], case .object = schema else {
                throw .invalidRequest("output_config.format: must be a json_schema with a schema object", param: "output_config.format")
            }
            request.responseFormat = .jsonSchema(name: "response", schema: schema)
        }
        return request
    }

    // MARK: Parts

    private static func system(_ value: JSONValue?) throws(GatewayError) -> String? {
        guard let value, !value.isNull else { return nil }
        if let text = value.string { return text.isEmpty ? nil : text }
        guard let blocks = value.array else { throw .invalidRequest("system: must be a string or a list of text blocks", param: "system") }
        var texts: [String] = []
        for block in blocks {
            guard block["type"]?.string == "text", let text = block["text"]?.string else {
                throw .invalidRequest("system: only text blocks are allowed", param: "system")
            }
            texts.append(text)
        }
        return texts.isEmpty ? nil : texts.joined(separator: "\n\n")
    }

    private static func message(_ raw: JSONValue, index: Int, dropped: inout [String]) throws(GatewayError) -> ChatMessage {
        let path = "messages.\(index)"
        guard let roleText = raw["role"]?.string, let role = ChatMessage.Role(rawValue: roleText) else {
            throw .invalidRequest("\(path).role: must be 'user' or 'assistant'", param: "\(path).role")
        }
        guard let content = raw["content"] else { throw .invalidRequest("\(path).content: Field required", param: "\(path).content") }
        if let text = content.string {
            guard !text.isEmpty || role == .assistant else {
                throw .invalidRequest("\(path): user messages must have non-empty content", param: "\(path).content")
            }
            return ChatMessage(role: role, content: text.isEmpty ? [] : [.text(text)])
        }
        guard let blocks = content.array else { throw .invalidRequest("\(path).content: must be a string or a list of blocks", param: "\(path).content") }
        var parts: [ContentPart] = []
        for (blockIndex, block) in blocks.enumerated() {
            if let part = try self.block(block, path: "\(path).content.\(blockIndex)", role: role) {
                parts.append(part)
            } else if !dropped.contains("thinking") {
                dropped.append("thinking")
            }
        }
        return ChatMessage(role: role, content: parts)
    }

    private static func block(_ block: JSONValue, path: String, role: ChatMessage.Role) throws(GatewayError) -> ContentPart? {
        switch block["type"]?.string {
        case "text":
            guard let text = block["text"]?.string, !text.isEmpty else {
                throw .invalidRequest("\(path): text content blocks must be non-empty", param: path)
            }
            return .text(text)
        case "image":
            return .image(try self.image(block["source"], path: path))
        case "tool_use":
            guard role == .assistant else { throw .invalidRequest("\(path): tool_use blocks belong to assistant messages", param: path) }
            guard let id = block["id"]?.string, let name = block["name"]?.string else {
                throw .invalidRequest("\(path): tool_use needs 'id' and 'name'", param: path)
            }
            let input = block["input"] ?? .object([])
            guard case .object = input else { throw .invalidRequest("\(path).input: must be an object", param: "\(path).input") }
            return .toolUse(id: id, name: name, input: input)
        case "tool_result":
            guard role == .user else { throw .invalidRequest("\(path): tool_result blocks belong to user messages", param: path) }
            guard let id = block["tool_use_id"]?.string else { throw .invalidRequest("\(path).tool_use_id: Field required", param: path) }
            var content: [ContentPart] = []
            if let text = block["content"]?.string {
                content = text.isEmpty ? [] : [.text(text)]
            } else if let inner = block["content"]?.array {
                for (index, part) in inner.enumerated() {
                    if let decoded = try self.block(part, path: "\(path).content.\(index)", role: role) { content.append(decoded) }
                }
            }
            return .toolResult(toolUseID: id, content: content, isError: block["is_error"]?.bool ?? false)
        case "thinking", "redacted_thinking":
            // Signed reasoning from an earlier turn: an OpenAI-shaped upstream has no field for it.
            return nil
        case let type?:
            throw .invalidRequest("\(path): content blocks of type '\(type)' are not available through this gateway yet", param: path)
        case nil:
            throw .invalidRequest("\(path).type: Field required", param: path)
        }
    }

    private static func image(_ source: JSONValue?, path: String) throws(GatewayError) -> ImageSource {
        switch source?["type"]?.string {
        case "base64":
            guard let mediaType = source?["media_type"]?.string, let data = source?["data"]?.string else {
                throw .invalidRequest("\(path).source: base64 images need 'media_type' and 'data'", param: path)
            }
            guard ["image/jpeg", "image/png", "image/gif", "image/webp"].contains(mediaType) else {
                throw .invalidRequest("\(path).source.media_type: must be image/jpeg, image/png, image/gif or image/webp", param: path)
            }
            return .base64(mediaType: mediaType, data: data)
        case "url":
            guard let url = source?["url"]?.string else { throw .invalidRequest("\(path).source.url: Field required", param: path) }
            return .url(url)
        default:
            throw .invalidRequest("\(path).source: must be a base64 or url image source", param: path)
        }
    }

    private static func tool(_ tool: JSONValue, index: Int) throws(GatewayError) -> ToolDefinition {
        guard let name = tool["name"]?.string, !name.isEmpty else {
            throw .invalidRequest("tools.\(index).name: Field required", param: "tools.\(index).name")
        }
        guard let schema = tool["input_schema"], case .object = schema else {
            // Server tools (web search, code execution…) have a `type` and no schema: not something an upstream behind us runs.
            throw .invalidRequest("tools.\(index): only custom tools with an input_schema are available through this gateway", param: "tools.\(index)")
        }
        return ToolDefinition(name: name, description: tool["description"]?.string, parameters: schema)
    }

    private static func toolChoice(_ choice: JSONValue) throws(GatewayError) -> (ToolChoice, Bool?) {
        let parallel = choice["disable_parallel_tool_use"]?.bool.map { !$0 }
        switch choice["type"]?.string {
        case "auto": return (.auto, parallel)
        case "any": return (.required, parallel)
        case "none": return (.none, parallel)
        case "tool":
            guard let name = choice["name"]?.string else { throw .invalidRequest("tool_choice.name: Field required", param: "tool_choice.name") }
            return (.tool(name: name), parallel)
        default:
            throw .invalidRequest("tool_choice.type: must be auto, any, tool or none", param: "tool_choice.type")
        }
    }

    private static func number(_ value: JSONValue?, _ name: String, range: ClosedRange<Double>) throws(GatewayError) -> Double? {
        guard let value, !value.isNull else { return nil }
        guard let number = value.double, range.contains(number) else {
            throw .invalidRequest("\(name): must be a number from \(range.lowerBound) to \(range.upperBound)", param: name)
        }
        return number
    }
}
