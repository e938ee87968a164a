import Engine

/// Gemini `generateContent` answers and `streamGenerateContent?alt=sse` events, after
/// `fixtures/providers/gemini-stream-tool-call.data.jsonl`.
enum GeminiSimulatorDialect: SimulatorDialect {
    static func body(_ turn: SimulatedTurn, model: String, id: String, created: Int) -> String {
        self.response(model: model, id: id) { json in
            self.parts(&json, text: turn.text, calls: turn.toolCalls)
            json.field("finishReason", turn.finish == .length ? "MAX_TOKENS" : "STOP")
        } usage: { json in
            self.usage(&json, turn)
        }
    }

    static func stream(_ turn: SimulatedTurn, model: String, id: String, created: Int, includeUsage: Bool) -> [SimulatedEvent] {
        var events = turn.textTokens.map { token in
            SimulatedEvent(text: "data: " + self.response(model: model, id: id, candidate: { self.parts(&$0, text: token, calls: []) }) + "\n\n", paced: true)
        }
        if !turn.toolCalls.isEmpty {
            events.append(SimulatedEvent(text: "data: " + self.response(model: model, id: id, candidate: { self.parts(&$0, text: "", calls: turn.toolCalls) }) + "\n\n", paced: true))
        }
        // The last event carries the finish reason and the usage; Gemini sends no end marker.
        events.append(SimulatedEvent(text: "data: " + self.response(model: model, id: id) { json in
            self.parts(&json, text: "", calls: [])
            json.field("finishReason", turn.finish == .length ? "MAX_TOKENS" : "STOP")
        } usage: { json in
            self.usage(&json, turn)
        } + "\n\n", paced: false))
        return events
    }

    static func error(_ fault: SimulatedFault, requestID: String) -> SimulatedError {
        let status = self.faultStatus(fault)
        if fault == .context {
            return SimulatedError(status: 400, body: self.envelope(400, "INVALID_ARGUMENT", "The input token count (250000) exceeds the maximum number of tokens allowed (131072)."), headers: [])
        }
        let name = status == 429 ? "RESOURCE_EXHAUSTED" : status == 503 ? "UNAVAILABLE" : "INTERNAL"
        return SimulatedError(status: status, body: self.envelope(status, name, "simulated failure (\(fault.rawValue))"), headers: self.retryHeaders(fault))
    }

    static func invalidRequest(_ message: String, requestID: String) -> SimulatedError {
        SimulatedError(status: 400, body: self.envelope(400, "INVALID_ARGUMENT", message), headers: [])
    }

    static func streamError(_ message: String) -> String {
        "data: \(self.envelope(503, "UNAVAILABLE", message))\n\n"
    }

    private static func envelope(_ code: Int, _ status: String, _ message: String) -> String {
        var json = JSONWriter()
        json.openObject()
        json.key("error")
        json.openObject()
        json.field("code", code)
        json.field("message", message)
        json.field("status", status)
        json.closeObject()
        json.closeObject()
        return json.output
    }

    private static func response(
        model: String,
        id: String,
        candidate: (inout JSONWriter) -> Void,
        usage: ((inout JSONWriter) -> Void)? = nil
    ) -> String {
        var json = JSONWriter()
        json.openObject()
        json.key("candidates")
        json.openArray()
        json.openObject()
        candidate(&json)
        json.field("index", 0)
        json.closeObject()
        json.closeArray()
        if let usage {
            json.key("usageMetadata")
            usage(&json)
        }
        json.field("modelVersion", model)
        json.field("responseId", id)
        json.closeObject()
        return json.output
    }

    private static func parts(_ json: inout JSONWriter, text: String, calls: [SimulatedTurn.ToolCall]) {
        json.key("content")
        json.openObject()
        json.key("parts")
        json.openArray()
        if calls.isEmpty {
            json.openObject()
            json.field("text", text)
            json.closeObject()
        }
        for call in calls {
            json.openObject()
            json.key("functionCall")
            json.openObject()
            json.field("name", call.name)
            json.key("args")
            json.raw(call.arguments)
            json.closeObject()
            json.closeObject()
        }
        json.closeArray()
        json.field("role", "model")
        json.closeObject()
    }

    private static func usage(_ json: inout JSONWriter, _ turn: SimulatedTurn) {
        json.openObject()
        json.field("promptTokenCount", turn.promptTokens)
        json.field("candidatesTokenCount", turn.completionTokens)
        json.field("totalTokenCount", turn.promptTokens + turn.completionTokens)
        json.closeObject()
    }
}
