import Engine

/// Ollama's native `/api/chat` NDJSON, after `fixtures/providers/ollama-chat-stream.ndjson`.
enum OllamaSimulatorDialect: SimulatorDialect {
    static var streamContentType: String { "application/x-ndjson" }

    /// Ollama reports no ids; the timestamp is fixed so output is deterministic.
    static let createdAt = "2026-01-01T00:00:00.000000Z"

    static func body(_ turn: SimulatedTurn, model: String, id: String, created: Int) -> String {
        self.line(model: model, content: turn.text, toolCalls: turn.toolCalls, final: turn)
    }

    static func stream(_ turn: SimulatedTurn, model: String, id: String, created: Int, includeUsage: Bool) -> [SimulatedEvent] {
        var events = turn.textTokens.map { SimulatedEvent(text: self.line(model: model, content: $0, toolCalls: [], final: nil) + "\n", paced: true) }
        if !turn.toolCalls.isEmpty {
            // Tool calls arrive whole, in one line.
            events.append(SimulatedEvent(text: self.line(model: model, content: "", toolCalls: turn.toolCalls, final: nil) + "\n", paced: true))
        }
        events.append(SimulatedEvent(text: self.line(model: model, content: "", toolCalls: [], final: turn) + "\n", paced: false))
        return events
    }

    static func error(_ fault: SimulatedFault, requestID: String) -> SimulatedError {
        let message = fault == .context ? "the input exceeds the maximum context length of the model (simulated)" : "simulated failure (\(fault.rawValue))"
        return SimulatedError(status: self.faultStatus(fault), body: self.envelope(message), headers: self.retryHeaders(fault))
    }

    static func invalidRequest(_ message: String, requestID: String) -> SimulatedError {
        SimulatedError(status: 400, body: self.envelope(message), headers: [])
    }

    static func streamError(_ message: String) -> String {
        self.envelope(message) + "\n"
    }

    private static func envelope(_ message: String) -> String {
        var json = JSONWriter()
        json.openObject()
        json.field("error", message)
        json.closeObject()
        return json.output
    }

    private static func line(model: String, content: String, toolCalls: [SimulatedTurn.ToolCall], final turn: SimulatedTurn?) -> String {
        var json = JSONWriter()
        json.openObject()
        json.field("model", model)
        json.field("created_at", self.createdAt)
        json.key("message")
        json.openObject()
        json.field("role", "assistant")
        json.field("content", content)
        if !toolCalls.isEmpty {
            json.key("tool_calls")
            json.openArray()
            for (index, call) in toolCalls.enumerated() {
                json.openObject()
                json.field("id", "call_" + call.id.prefix(8))
                json.key("function")
                json.openObject()
                json.field("index", index)
                json.field("name", call.name)
                json.key("arguments")
                json.raw(call.arguments)
                json.closeObject()
                json.closeObject()
            }
            json.closeArray()
        }
        json.closeObject()
        json.field("done", turn != nil)
        if let turn {
            // Ollama says "stop" even after tool calls; clients infer tool use from `tool_calls`.
            json.field("done_reason", turn.finish == .length ? "length" : "stop")
            json.field("total_duration", 1_000_000 * (turn.completionTokens + 10))
            json.field("load_duration", 1_000_000)
            json.field("prompt_eval_count", turn.promptTokens)
            json.field("prompt_eval_duration", 100_000 * turn.promptTokens)
            json.field("eval_count", turn.completionTokens)
            json.field("eval_duration", 1_000_000 * turn.completionTokens)
        }
        json.closeObject()
        return json.output
    }
}
