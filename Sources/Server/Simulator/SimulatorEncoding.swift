import Engine

/// One piece of a simulated stream. `paced` pieces carry a generated token and wait their turn
/// (time to first token, then 1/tokens-per-second); framing pieces go out at once.
struct SimulatedEvent {
    let text: String
    let paced: Bool
}

/// A simulated error answer in one dialect.
struct SimulatedError {
    let status: Int
    let body: String
    let headers: [(String, String)]
}

/// The shapes each dialect's responses take, written after the recorded fixtures.
protocol SimulatorDialect {
    static var contentType: String { get }
    static var streamContentType: String { get }
    static func body(_ turn: SimulatedTurn, model: String, id: String, created: Int) -> String
    static func stream(_ turn: SimulatedTurn, model: String, id: String, created: Int, includeUsage: Bool) -> [SimulatedEvent]
    static func error(_ fault: SimulatedFault, requestID: String) -> SimulatedError
    static func invalidRequest(_ message: String, requestID: String) -> SimulatedError
    /// What a provider sends when a stream fails after it started.
    static func streamError(_ message: String) -> String
}

extension SimulatorDialect {
    static var contentType: String { "application/json" }
    static var streamContentType: String { "text/event-stream" }

    static func faultStatus(_ fault: SimulatedFault) -> Int {
        switch fault {
        case .rateLimited, .quota: return 429
        case .context: return 400
        case .serverError: return 500
        case .unavailable: return 503
        case .overloaded: return 529
        case .cut, .stall, .malformed, .streamError: return 200
        }
    }

    static func retryHeaders(_ fault: SimulatedFault) -> [(String, String)] {
        fault == .rateLimited ? [("retry-after", "1"), ("retry-after-ms", "1000")] : []
    }
}

// MARK: - OpenAI

enum OpenAISimulatorDialect: SimulatorDialect {
    static func body(_ turn: SimulatedTurn, model: String, id: String, created: Int) -> String {
        var json = JSONWriter()
        json.openObject()
        self.header(&json, id: id, object: "chat.completion", created: created, model: model)
        json.key("choices")
        json.openArray()
        json.openObject()
        json.field("index", 0)
        json.key("message")
        json.openObject()
        json.field("role", "assistant")
        json.field("content", turn.toolCalls.isEmpty ? turn.text : nil)
        if !turn.toolCalls.isEmpty {
            json.key("tool_calls")
            json.openArray()
            for call in turn.toolCalls {
                json.openObject()
                json.field("id", "call_" + call.id)
                json.field("type", "function")
                json.key("function")
                json.openObject()
                json.field("name", call.name)
                json.field("arguments", call.arguments)
                json.closeObject()
                json.closeObject()
            }
            json.closeArray()
        }
        json.field("refusal", nil)
        json.closeObject()
        json.field("logprobs", nil)
        json.field("finish_reason", self.finishReason(turn.finish))
        json.closeObject()
        json.closeArray()
        json.key("usage")
        self.usage(&json, turn)
        json.field("system_fingerprint", "fp_simulator")
        json.closeObject()
        return json.output
    }

    static func stream(_ turn: SimulatedTurn, model: String, id: String, created: Int, includeUsage: Bool) -> [SimulatedEvent] {
        var events: [SimulatedEvent] = []
        func chunk(paced: Bool, choices: (inout JSONWriter) -> Void) {
            var json = JSONWriter()
            json.openObject()
            self.header(&json, id: id, object: "chat.completion.chunk", created: created, model: model)
            json.key("choices")
            json.openArray()
            choices(&json)
            json.closeArray()
            json.closeObject()
            events.append(SimulatedEvent(text: "data: \(json.output)\n\n", paced: paced))
        }
        func choice(_ json: inout JSONWriter, finish: String?, delta: (inout JSONWriter) -> Void) {
            json.openObject()
            json.field("index", 0)
            json.key("delta")
            json.openObject()
            delta(&json)
            json.closeObject()
            json.field("logprobs", nil)
            json.field("finish_reason", finish)
            json.closeObject()
        }

        chunk(paced: false) { json in
            choice(&json, finish: nil) { delta in
                delta.field("role", "assistant")
                delta.field("content", turn.toolCalls.isEmpty ? "" : nil)
                delta.field("refusal", nil)
            }
        }
        for token in turn.textTokens {
            chunk(paced: true) { json in choice(&json, finish: nil) { $0.field("content", token) } }
        }
        for (index, call) in turn.toolCalls.enumerated() {
            chunk(paced: true) { json in
                choice(&json, finish: nil) { delta in
                    delta.key("tool_calls")
                    delta.openArray()
                    delta.openObject()
                    delta.field("index", index)
                    delta.field("id", "call_" + call.id)
                    delta.field("type", "function")
                    delta.key("function")
                    delta.openObject()
                    delta.field("name", call.name)
                    delta.field("arguments", "")
                    delta.closeObject()
                    delta.closeObject()
                    delta.closeArray()
                }
            }
            for fragment in call.argumentFragments {
                chunk(paced: true) { json in
                    choice(&json, finish: nil) { delta in
                        delta.key("tool_calls")
                        delta.openArray()
                        delta.openObject()
                        delta.field("index", index)
                        delta.key("function")
                        delta.openObject()
                        delta.field("arguments", fragment)
                        delta.closeObject()
                        delta.closeObject()
                        delta.closeArray()
                    }
                }
            }
        }
        chunk(paced: false) { json in choice(&json, finish: self.finishReason(turn.finish)) { _ in } }
        if includeUsage {
            var json = JSONWriter()
            json.openObject()
            self.header(&json, id: id, object: "chat.completion.chunk", created: created, model: model)
            json.key("choices")
            json.openArray()
            json.closeArray()
            json.key("usage")
            self.usage(&json, turn)
            json.closeObject()
            events.append(SimulatedEvent(text: "data: \(json.output)\n\n", paced: false))
        }
        events.append(SimulatedEvent(text: "data: [DONE]\n\n", paced: false))
        return events
    }

    static func error(_ fault: SimulatedFault, requestID: String) -> SimulatedError {
        let (type, code, message): (String, String, String)
        switch fault {
        case .rateLimited: (type, code, message) = ("requests", "rate_limit_exceeded", "Rate limit reached for requests (simulated).")
        case .quota: (type, code, message) = ("insufficient_quota", "insufficient_quota", "You exceeded your current quota, please check your plan and billing details (simulated).")
        case .context:
            (type, code, message) = ("invalid_request_error", "context_length_exceeded", "This model's maximum context length is 128000 tokens. However, your messages resulted in 250000 tokens (simulated).")
        case .overloaded, .unavailable: (type, code, message) = ("server_error", "overloaded", "The server is overloaded (simulated).")
        default: (type, code, message) = ("server_error", "internal_error", "The server had an error while processing your request (simulated).")
        }
        return SimulatedError(status: self.faultStatus(fault), body: self.envelope(message, type: type, code: code), headers: self.retryHeaders(fault))
    }

    static func invalidRequest(_ message: String, requestID: String) -> SimulatedError {
        SimulatedError(status: 400, body: self.envelope(message, type: "invalid_request_error", code: nil), headers: [])
    }

    static func streamError(_ message: String) -> String {
        "data: \(self.envelope(message, type: "server_error", code: "internal_error"))\n\n"
    }

    private static func envelope(_ message: String, type: String, code: String?) -> String {
        ErrorEnvelope.openAI(message: message, type: type, param: nil, code: code)
    }

    private static func header(_ json: inout JSONWriter, id: String, object: String, created: Int, model: String) {
        json.field("id", "chatcmpl-" + id)
        json.field("object", object)
        json.field("created", created)
        json.field("model", model)
    }

    static func usage(_ json: inout JSONWriter, _ turn: SimulatedTurn) {
        json.openObject()
        json.field("prompt_tokens", turn.promptTokens)
        json.field("completion_tokens", turn.completionTokens)
        json.field("total_tokens", turn.promptTokens + turn.completionTokens)
        json.key("prompt_tokens_details")
        json.openObject()
        json.field("cached_tokens", 0)
        json.closeObject()
        json.key("completion_tokens_details")
        json.openObject()
        json.field("reasoning_tokens", 0)
        json.closeObject()
        json.closeObject()
    }

    private static func finishReason(_ finish: SimulatedTurn.Finish) -> String {
        switch finish {
        case .stop: return "stop"
        case .length: return "length"
        case .toolCalls: return "tool_calls"
        }
    }
}
