public import NIOCore

/// OpenAI Responses requests (`POST /v1/responses`) into the canonical `ChatRequest`, for upstreams
/// that do not speak Responses.
///
/// `instructions` and leading system/developer messages become the system prompt; `input` is a
/// string (one user turn) or a list of items: messages (`input_text`, `input_image`, and the
/// assistant's earlier `output_text`), `function_call` and `function_call_output`. Built-in tools,
/// stored prompts and `item_reference`s need OpenAI itself and are refused with a 400; the model's own earlier `reasoning` items mean nothing to another provider and are left out,
/// as are options that only tune OpenAI (listed in `dropped`).
public enum ResponsesRequestDecoder {
    public struct Decoded: Sendable {
        public var request: ChatRequest
        /// Whether the response is to be kept (the API's default: yes).
        public var store: Bool
        /// The response this one continues: its conversation comes before `input`.
        public var previousResponseID: String?
        /// `instructions` as sent, which the Response echoes.
        public var instructions: String?
        /// Request fields that the target dialect has no equivalent for and that were left out.
        public var dropped: [String]
        /// This request's own input as items (a string input is one user message): what a kept
        /// response adds to its conversation.
        public var inputItems: [JSONValue]
    }

    /// What the gateway reads of every Responses request, passed through or translated.
    public struct Envelope: Sendable, Equatable {
        /// Whether the response is to be kept (the API's default: yes).
        public var store: Bool
        public var previousResponseID: String?
        /// `max_output_tokens`, within `UntrustedNumber`'s bounds, for reserving limits.
        public var maxTokens: Int?
    }

    /// - Throws: 400 for a malformed `store`, `previous_response_id` or `max_output_tokens`, and for
    ///   background mode on any upstream: its usage arrives after the request, where the gateway can
    ///   neither limit nor account it.
    public static func envelope(_ json: JSONValue) throws(GatewayError) -> Envelope {
        if json["background"]?.bool == true {
            throw .invalidRequest(
                "Background responses are not served through this gateway: their usage arrives after the request, where it can be neither limited nor accounted. Stream the response instead.",
                param: "background"
            )
        }
        var envelope = Envelope(store: true)
        if let store = json["store"], !store.isNull {
            guard let value = store.bool else { throw .invalidRequest("'store' must be a boolean.", param: "store") }
            envelope.store = value
        }
        if let previous = json["previous_response_id"], !previous.isNull {
            guard let id = previous.string, !id.isEmpty else {
                throw .invalidRequest("'previous_response_id' must be a response id.", param: "previous_response_id")
            }
            envelope.previousResponseID = id
        }
        if let tokens = json["max_output_tokens"], !tokens.isNull {
            envelope.maxTokens = try UntrustedNumber.outputTokenLimit(tokens.wholeNumber, name: "max_output_tokens")
        }
        return envelope
    }

    static let droppable = [
        "metadata", "service_tier", "prompt_cache_key", "prompt_cache_retention", "safety_identifier", "truncation", "include",
        "top_logprobs", "reasoning", "user",
    ]

    /// - Parameter history: the earlier turns' items when the request continues a kept response (its
    ///   input items, then its output), decoded before this request's input.
    public static func decode(_ body: ByteBuffer, history: [JSONValue] = []) throws(GatewayError) -> Decoded {
        let json = try JSONValue.requestObject(body)
        guard let model = json["model"]?.string, !model.isEmpty else {
            throw .invalidRequest("You must provide a model parameter.", param: "model")
        }
        let envelope = try self.envelope(json)
        try self.refuseUnportable(json)
        var request = ChatRequest(model: model, messages: [])
        var systemTexts: [String] = []
        var instructions: String?
        if let value = json["instructions"], !value.isNull {
            guard let text = value.string else { throw .invalidRequest("'instructions' must be a string.", param: "instructions") }
            if !text.isEmpty { systemTexts.append(text) }
            instructions = text
        }
        var dropped = json.keys.filter { self.droppable.contains($0) }
        for (index, item) in history.enumerated() {
            try self.add(item, path: "previous_response_id: item \(index)", to: &request.messages, system: &systemTexts, dropped: &dropped)
        }
        let inputItems: [JSONValue]
        switch json["input"] {
        case .some(.string(let text)):
            inputItems = [.object([(key: "role", value: .string("user")), (key: "content", value: .string(text))])]
        case .some(.array(let items)):
            inputItems = items
        case nil, .some(.null):
            inputItems = []
            guard envelope.previousResponseID != nil else {
                throw .invalidRequest("'input' is required unless 'previous_response_id' is given.", param: "input")
            }
        default:
            throw .invalidRequest("'input' must be a string or an array of input items.", param: "input")
        }
        for (index, item) in inputItems.enumerated() {
            try self.add(item, path: "input[\(index)]", to: &request.messages, system: &systemTexts, dropped: &dropped)
        }
        request.system = systemTexts.isEmpty ? nil : systemTexts.joined(separator: "\n\n")
        request.tools = try (json["tools"]?.array ?? []).enumerated().map { index, tool throws(GatewayError) in
            guard tool["type"]?.string == "function", let name = tool["name"]?.string, !name.isEmpty else {
                let type = tool["type"]?.string ?? "?"
                throw .invalidRequest("tools[\(index)]: the built-in tool '\(type)' is only available from OpenAI; only function tools can be sent to this model.", param: "tools[\(index)]")
            }
            let parameters = tool["parameters"].flatMap { $0.isNull ? nil : $0 }
                ?? .object([(key: "type", value: .string("object")), (key: "properties", value: .object([]))])
            return ToolDefinition(name: name, description: tool["description"]?.string, parameters: parameters)
        }
        request.toolChoice = try self.toolChoice(json["tool_choice"])
        request.parallelToolCalls = json["parallel_tool_calls"]?.bool
        request.maxTokens = envelope.maxTokens
        request.temperature = try OpenAIRequestDecoder.number(json["temperature"], "temperature", 0...2)
        request.topP = try OpenAIRequestDecoder.number(json["top_p"], "top_p", 0...1)
        request.stream = json["stream"]?.bool ?? false
        request.user = json["safety_identifier"]?.string ?? json["user"]?.string
        request.responseFormat = try self.responseFormat(json["text"]?["format"])
        if json["text"]?["verbosity"] != nil { dropped.append("text.verbosity") }
        return Decoded(
            request: request, store: envelope.store, previousResponseID: envelope.previousResponseID,
            instructions: instructions, dropped: dropped, inputItems: inputItems
        )
    }

    private static func refuseUnportable(_ json: JSONValue) throws(GatewayError) {
        for name in ["prompt", "conversation"] where json[name] != nil && json[name]?.isNull == false {
            throw .invalidRequest("'\(name)' is only available from OpenAI; send the input itself.", param: name)
        }
    }

    /// One input item, appended to the conversation (same-role turns merge).
    private static func add(
        _ item: JSONValue, path: String, to messages: inout [ChatMessage], system: inout [String], dropped: inout [String]
    ) throws(GatewayError) {
        // An item without a type is a message ("easy input message").
        switch item["type"]?.string ?? "message" {
        case "message":
            switch item["role"]?.string {
            case "system", "developer":
                let text = try self.text(item["content"], path: "\(path).content")
                if messages.isEmpty {
                    system.append(text)
                } else {
                    OpenAIRequestDecoder.append(.user, [.text("<system-reminder>\(text)</system-reminder>")], to: &messages)
                }
            case "user":
                OpenAIRequestDecoder.append(.user, try self.userContent(item["content"], path: "\(path).content"), to: &messages)
            case "assistant":
                let text = try self.text(item["content"], path: "\(path).content")
                OpenAIRequestDecoder.append(.assistant, text.isEmpty ? [] : [.text(text)], to: &messages)
            default:
                throw .invalidRequest("\(path).role must be user, assistant, system or developer.", param: "\(path).role")
            }
        case "function_call":
            guard let callID = item["call_id"]?.string, let name = item["name"]?.string else {
                throw .invalidRequest("\(path): a function_call needs a call_id and a name.", param: path)
            }
            let input = OpenAIResponseDecoder.arguments(item["arguments"]?.string ?? "")
            OpenAIRequestDecoder.append(.assistant, [.toolUse(id: callID, name: name, input: input)], to: &messages)
        case "function_call_output":
            guard let callID = item["call_id"]?.string else {
                throw .invalidRequest("\(path): a function_call_output needs the call_id it answers.", param: "\(path).call_id")
            }
            let output = try self.text(item["output"], path: "\(path).output")
            OpenAIRequestDecoder.append(.user, [.toolResult(toolUseID: callID, content: output.isEmpty ? [] : [.text(output)], isError: false)], to: &messages)
        case "reasoning":
            // The model's own earlier reasoning (often encrypted for OpenAI alone): no other provider can read it.
            if !dropped.contains("input.reasoning") { dropped.append("input.reasoning") }
        case "item_reference":
            throw .invalidRequest("\(path): item references are resolved by OpenAI alone; send the item itself.", param: path)
        case let type:
            throw .invalidRequest("\(path): input items of type '\(type)' are only available from OpenAI.", param: path)
        }
    }

    /// A message's content as text: a string, or `input_text`/`output_text` parts.
    private static func text(_ content: JSONValue?, path: String) throws(GatewayError) -> String {
        try OpenAIRequestDecoder.text(content, path: path, textTypes: ["input_text", "output_text", "text"])
    }

    private static func userContent(_ content: JSONValue?, path: String) throws(GatewayError) -> [ContentPart] {
        if let text = content?.string { return text.isEmpty ? [] : [.text(text)] }
        guard let parts = content?.array else { throw .invalidRequest("\(path) must be a string or an array of content parts.", param: path) }
        var result: [ContentPart] = []
        for (index, part) in parts.enumerated() {
            switch part["type"]?.string {
            case "input_text", "output_text":
                if let text = part["text"]?.string, !text.isEmpty { result.append(.text(text)) }
            case "input_image":
                guard let url = part["image_url"]?.string else {
                    throw .invalidRequest("\(path)[\(index)]: only images given by image_url can be sent to this model (not file_id).", param: "\(path)[\(index)]")
                }
                result.append(.image(try OpenAIRequestDecoder.image(url, path: "\(path)[\(index)]")))
            case let type:
                throw .invalidRequest("\(path)[\(index)]: content of type '\(type ?? "?")' is not available for this model.", param: "\(path)[\(index)]")
            }
        }
        return result
    }

    private static func toolChoice(_ choice: JSONValue?) throws(GatewayError) -> ToolChoice? {
        guard let choice, !choice.isNull else { return nil }
        switch choice.string {
        case "auto": return .auto
        case "none": return ToolChoice.none
        case "required": return .required
        default:
            guard choice["type"]?.string == "function", let name = choice["name"]?.string else {
                throw .invalidRequest("'tool_choice' must be none, auto, required or {type: function, name}.", param: "tool_choice")
            }
            return .tool(name: name)
        }
    }

    /// `text.format`: `text`, `json_object`, or `json_schema` with its `name` and `schema` beside the type.
    private static func responseFormat(_ format: JSONValue?) throws(GatewayError) -> ResponseFormat? {
        guard let format, !format.isNull else { return nil }
        switch format["type"]?.string {
        case "text": return nil
        case "json_object": return .json
        case "json_schema":
            guard let schema = format["schema"], case .object = schema else {
                throw .invalidRequest("'text.format.schema' must be a JSON Schema object.", param: "text.format")
            }
            return .jsonSchema(name: format["name"]?.string ?? "response", schema: schema)
        default:
            throw .invalidRequest("'text.format.type' must be text, json_object or json_schema.", param: "text.format")
        }
    }
}
