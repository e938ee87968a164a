import Engine

/// Anthropic Messages responses and events, after `fixtures/providers/anthropic-*`.
enum AnthropicSimulatorDialect: SimulatorDialect {
    static func body(_ turn: SimulatedTurn, model: String, id: String, created: Int) -> String {
        var json = JSONWriter()
        json.openObject()
        json.field("model", model)
        json.field("id", "msg_" + id)
        json.field("type", "message")
        json.field("role", "assistant")
        json.key("content")
        json.openArray()
        if !turn.textTokens.isEmpty {
            json.openObject()
            json.field("type", "text")
            json.field("text", turn.text)
            json.closeObject()
        }
        for call in turn.toolCalls {
            json.openObject()
            json.field("type", "tool_use")
            json.field("id", "toolu_" + call.id)
            json.field("name", call.name)
            json.key("input")
            json.raw(call.arguments)
            json.closeObject()
        }
        json.closeArray()
        json.field("stop_reason", self.stopReason(turn.finish))
        json.field("stop_sequence", nil)
        json.key("usage")
        self.usage(&json, input: turn.promptTokens, output: turn.completionTokens)
        json.closeObject()
        return json.output
    }

    static func stream(_ turn: SimulatedTurn, model: String, id: String, created: Int, includeUsage: Bool) -> [SimulatedEvent] {
        var events: [SimulatedEvent] = []
        func event(_ name: String, paced: Bool = false, _ body: (inout JSONWriter) -> Void) {
            var json = JSONWriter()
            json.openObject()
            json.field("type", name)
            body(&json)
            json.closeObject()
            events.append(SimulatedEvent(text: "event: \(name)\ndata: \(json.output)\n\n", paced: paced))
        }
        event("message_start") { json in
            json.key("message")
            json.openObject()
            json.field("id", "msg_" + id)
            json.field("type", "message")
            json.field("role", "assistant")
            json.field("model", model)
            json.key("content")
            json.openArray()
            json.closeArray()
            json.field("stop_reason", nil)
            json.field("stop_sequence", nil)
            json.key("usage")
            self.usage(&json, input: turn.promptTokens, output: 1)
            json.closeObject()
        }
        var index = 0
        if !turn.textTokens.isEmpty {
            event("content_block_start") { json in
                json.field("index", index)
                json.key("content_block")
                json.openObject()
                json.field("type", "text")
                json.field("text", "")
                json.closeObject()
            }
            events.append(SimulatedEvent(text: "event: ping\ndata: {\"type\": \"ping\"}\n\n", paced: false))
            for token in turn.textTokens {
                event("content_block_delta", paced: true) { json in
                    json.field("index", index)
                    json.key("delta")
                    json.openObject()
                    json.field("type", "text_delta")
                    json.field("text", token)
                    json.closeObject()
                }
            }
            event("content_block_stop") { $0.field("index", index) }
            index += 1
        }
        for call in turn.toolCalls {
            event("content_block_start", paced: true) { json in
                json.field("index", index)
                json.key("content_block")
                json.openObject()
                json.field("type", "tool_use")
                json.field("id", "toolu_" + call.id)
                json.field("name", call.name)
                json.key("input")
                json.openObject()
                json.closeObject()
                json.closeObject()
            }
            for fragment in [""] + call.argumentFragments {
                event("content_block_delta", paced: !fragment.isEmpty) { json in
                    json.field("index", index)
                    json.key("delta")
                    json.openObject()
                    json.field("type", "input_json_delta")
                    json.field("partial_json", fragment)
                    json.closeObject()
                }
            }
            event("content_block_stop") { $0.field("index", index) }
            index += 1
        }
        event("message_delta") { json in
            json.key("delta")
            json.openObject()
            json.field("stop_reason", self.stopReason(turn.finish))
            json.field("stop_sequence", nil)
            json.closeObject()
            json.key("usage")
            json.openObject()
            json.field("output_tokens", turn.completionTokens)
            json.closeObject()
        }
        event("message_stop") { _ in }
        return events
    }

    static func error(_ fault: SimulatedFault, requestID: String) -> SimulatedError {
        let (type, message): (String, String)
        switch fault {
        case .rateLimited, .quota: (type, message) = ("rate_limit_error", "Number of requests has exceeded your rate limit (simulated).")
        case .context: (type, message) = ("invalid_request_error", "prompt is too long: 250000 tokens > 200000 maximum")
        case .overloaded, .unavailable: (type, message) = ("overloaded_error", "Overloaded (simulated).")
        default: (type, message) = ("api_error", "Internal server error (simulated).")
        }
        return SimulatedError(status: self.faultStatus(fault), body: self.envelope(type, message, requestID: requestID), headers: self.retryHeaders(fault))
    }

    static func invalidRequest(_ message: String, requestID: String) -> SimulatedError {
        SimulatedError(status: 400, body: self.envelope("invalid_request_error", message, requestID: requestID), headers: [])
    }

    static func streamError(_ message: String) -> String {
        "event: error\ndata: \(ErrorEnvelope.anthropic(type: "overloaded_error", message: message, requestID: nil))\n\n"
    }

    private static func envelope(_ type: String, _ message: String, requestID: String) -> String {
        ErrorEnvelope.anthropic(type: type, message: message, requestID: "req_" + requestID)
    }

    /// Anthropic's `input_tokens` excludes cached tokens; the simulator has no prompt cache, so all count.
    private static func usage(_ json: inout JSONWriter, input: Int, output: Int) {
        json.openObject()
        json.field("input_tokens", input)
        json.field("cache_creation_input_tokens", 0)
        json.field("cache_read_input_tokens", 0)
        json.field("output_tokens", output)
        json.closeObject()
    }

    private static func stopReason(_ finish: SimulatedTurn.Finish) -> String {
        switch finish {
        case .stop: return "end_turn"
        case .length: return "max_tokens"
        case .toolCalls: return "tool_use"
        }
    }
}
