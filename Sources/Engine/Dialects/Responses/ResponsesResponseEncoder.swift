/// Canonical answers written as OpenAI Responses objects (`"object": "response"`): the whole answer,
/// and the snapshots its stream carries.
///
/// Text parts in a row become one `message` item with one `output_text` part; each tool call becomes
/// a `function_call` item whose `call_id` is the upstream's tool-call id (what the client sends back
/// in its `function_call_output`). Usage follows OpenAI's counting: `input_tokens` includes the cached
/// ones, `output_tokens` the reasoning ones.
public enum ResponsesResponseEncoder {
    /// What a Response echoes of its request.
    public struct Echo: Sendable, Equatable {
        public var instructions: String?
        public var maxOutputTokens: Int?
        public var previousResponseID: String?
        public var store: Bool
        public var temperature: Double?
        public var topP: Double?
        public var parallelToolCalls: Bool?
        public var toolChoice: ToolChoice?
        public var tools: [ToolDefinition]
        public var format: ResponseFormat?

        public init(
            instructions: String? = nil, maxOutputTokens: Int? = nil, previousResponseID: String? = nil, store: Bool = true, temperature: Double? = nil,
            topP: Double? = nil, parallelToolCalls: Bool? = nil, toolChoice: ToolChoice? = nil, tools: [ToolDefinition] = [], format: ResponseFormat? = nil
        ) {
            self.instructions = instructions
            self.maxOutputTokens = maxOutputTokens
            self.previousResponseID = previousResponseID
            self.store = store
            self.temperature = temperature
            self.topP = topP
            self.parallelToolCalls = parallelToolCalls
            self.toolChoice = toolChoice
            self.tools = tools
            self.format = format
        }
    }

    /// One output item, as the encoders build it.
    enum Item: Equatable {
        case message(id: String, text: String)
        case functionCall(id: String, callID: String, name: String, arguments: String)
    }

    /// `status` of a finished answer, and its `incomplete_details.reason` when it is not complete.
    static func status(_ reason: StopReason?) -> (status: String, incomplete: String?) {
        switch reason {
        case .maxTokens: ("incomplete", "max_output_tokens")
        case .refusal: ("incomplete", "content_filter")
        default: ("completed", nil)
        }
    }

    /// A whole Response.
    /// - Parameters:
    ///   - id: the response's id (`resp_…`).
    ///   - createdAt: seconds since 1970.
    public static func response(_ answer: ChatResponse, id: String, model: String, createdAt: Int, echo: Echo) -> String {
        var json = JSONWriter()
        let (status, incomplete) = self.status(answer.stopReason)
        self.write(id: id, model: model, createdAt: createdAt, status: status, incomplete: incomplete, items: self.items(answer.content, responseID: id),
                   usage: answer.usage, error: nil, echo: echo, into: &json)
        return json.output
    }

    /// The canonical content as output items, with ids derived from the response's.
    static func items(_ content: [ContentPart], responseID: String) -> [Item] {
        var items: [Item] = []
        var text: String?
        func flushText() {
            guard let pending = text else { return }
            items.append(.message(id: self.itemID("msg", responseID, items.count), text: pending))
            text = nil
        }
        for part in content {
            switch part {
            case .text(let piece): text = (text ?? "") + piece
            case .toolUse(let callID, let name, let input):
                flushText()
                items.append(.functionCall(id: self.itemID("fc", responseID, items.count), callID: callID, name: name, arguments: input.jsonText))
            case .image, .toolResult: continue
            }
        }
        flushText()
        return items
    }

    /// `msg_…`/`fc_…`: the response id's own part and the item's place, so ids are stable and unique.
    static func itemID(_ prefix: String, _ responseID: String, _ index: Int) -> String {
        let base = responseID.hasPrefix("resp_") ? String(responseID.dropFirst(5)) : responseID
        return "\(prefix)_\(base)_\(index)"
    }

    /// The Response object: a snapshot in progress (`usage` nil), finished, or failed (`error`).
    static func write(
        id: String, model: String, createdAt: Int, status: String, incomplete: String?, items: [Item], usage: Usage?, error: GatewayError?, echo: Echo,
        into json: inout JSONWriter
    ) {
        json.openObject()
        json.field("id", id)
        json.field("object", "response")
        json.field("created_at", createdAt)
        json.field("status", status)
        json.key("error")
        if let error {
            json.openObject()
            json.field("code", error.responsesCode)
            json.field("message", error.message)
            json.closeObject()
        } else {
            json.raw("null")
        }
        json.key("incomplete_details")
        if let incomplete {
            json.openObject()
            json.field("reason", incomplete)
            json.closeObject()
        } else {
            json.raw("null")
        }
        json.field("instructions", echo.instructions)
        json.key("max_output_tokens")
        json.raw(echo.maxOutputTokens.map(String.init) ?? "null")
        json.field("model", model)
        json.key("output")
        json.openArray()
        for item in items { self.write(item, status: "completed", into: &json) }
        json.closeArray()
        json.field("parallel_tool_calls", echo.parallelToolCalls ?? true)
        json.field("previous_response_id", echo.previousResponseID)
        json.key("reasoning")
        json.raw(#"{"effort":null,"summary":null}"#)
        json.field("store", echo.store)
        json.field("temperature", echo.temperature ?? 1)
        json.key("text")
        json.openObject()
        json.key("format")
        self.write(echo.format, into: &json)
        json.closeObject()
        json.key("tool_choice")
        self.write(echo.toolChoice, into: &json)
        json.key("tools")
        json.openArray()
        for tool in echo.tools {
            json.openObject()
            json.field("type", "function")
            json.field("name", tool.name)
            json.field("description", tool.description)
            json.key("parameters")
            json.raw(tool.parameters.jsonText)
            json.field("strict", false)
            json.closeObject()
        }
        json.closeArray()
        json.field("top_p", echo.topP ?? 1)
        json.field("truncation", "disabled")
        json.key("usage")
        if let usage { self.write(usage, into: &json) } else { json.raw("null") }
        json.field("user", nil)
        json.key("metadata")
        json.raw("{}")
        json.closeObject()
    }

    static func write(_ item: Item, status: String, into json: inout JSONWriter) {
        json.openObject()
        switch item {
        case .message(let id, let text):
            json.field("id", id)
            json.field("type", "message")
            json.field("status", status)
            json.field("role", "assistant")
            json.key("content")
            json.openArray()
            if status == "completed" { self.writeText(text, into: &json) }
            json.closeArray()
        case .functionCall(let id, let callID, let name, let arguments):
            json.field("id", id)
            json.field("type", "function_call")
            json.field("status", status)
            json.field("arguments", arguments)
            json.field("call_id", callID)
            json.field("name", name)
        }
        json.closeObject()
    }

    /// An `output_text` content part.
    static func writeText(_ text: String, into json: inout JSONWriter) {
        json.openObject()
        json.field("type", "output_text")
        json.key("annotations")
        json.raw("[]")
        json.key("logprobs")
        json.raw("[]")
        json.field("text", text)
        json.closeObject()
    }

    static func write(_ usage: Usage, into json: inout JSONWriter) {
        json.openObject()
        json.field("input_tokens", usage.inputTokens)
        json.key("input_tokens_details")
        json.openObject()
        json.field("cached_tokens", usage.cachedInputTokens)
        json.closeObject()
        json.field("output_tokens", usage.outputTokens)
        json.key("output_tokens_details")
        json.openObject()
        json.field("reasoning_tokens", usage.reasoningTokens)
        json.closeObject()
        json.field("total_tokens", usage.totalTokens)
        json.closeObject()
    }

    private static func write(_ format: ResponseFormat?, into json: inout JSONWriter) {
        json.openObject()
        switch format {
        case nil: json.field("type", "text")
        case .json: json.field("type", "json_object")
        case .jsonSchema(let name, let schema):
            json.field("type", "json_schema")
            json.field("name", name)
            json.key("schema")
            json.raw(schema.jsonText)
            json.field("strict", false)
        }
        json.closeObject()
    }

    private static func write(_ choice: ToolChoice?, into json: inout JSONWriter) {
        switch choice {
        case nil, .auto: json.raw(#""auto""#)
        case .some(.none): json.raw(#""none""#)
        case .required: json.raw(#""required""#)
        case .tool(let name):
            json.openObject()
            json.field("type", "function")
            json.field("name", name)
            json.closeObject()
        }
    }
}

extension GatewayError {
    /// `response.error.code` of a failed Response: the API's own values where one fits.
    var responsesCode: String {
        if self.httpStatus == 429 { return "rate_limit_exceeded" }
        return self.domain == .caller ? "invalid_prompt" : "server_error"
    }
}
