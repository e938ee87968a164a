import Engine

/// OpenAI's Responses API (`POST /v1/responses`), as the recordings in `Tests/EngineTests/Fixtures`
/// show it: a Response object, or its event stream (`response.created` … `response.completed`, each
/// event with its `sequence_number`, no `[DONE]`). Errors are OpenAI's envelope.
enum ResponsesSimulatorDialect: SimulatorDialect {
    static func body(_ turn: SimulatedTurn, model: String, id: String, created: Int) -> String {
        var json = JSONWriter()
        self.response(&json, turn, model: model, id: id, created: created, done: true)
        return json.output
    }

    static func stream(_ turn: SimulatedTurn, model: String, id: String, created: Int, includeUsage: Bool) -> [SimulatedEvent] {
        var events: [SimulatedEvent] = []
        func event(_ type: String, paced: Bool = false, _ body: (inout JSONWriter) -> Void) {
            var json = JSONWriter()
            json.openObject()
            json.field("type", type)
            json.field("sequence_number", events.count)
            body(&json)
            json.closeObject()
            events.append(SimulatedEvent(text: "event: \(type)\ndata: \(json.output)\n\n", paced: paced))
        }
        for type in ["response.created", "response.in_progress"] {
            event(type) { json in
                json.key("response")
                self.response(&json, turn, model: model, id: id, created: created, done: false)
            }
        }
        if turn.toolCalls.isEmpty {
            let item = "msg_" + id
            event("response.output_item.added") { json in
                json.field("output_index", 0)
                json.key("item")
                self.message(&json, id: item, text: nil)
            }
            event("response.content_part.added") { json in
                self.place(&json, item: item)
                json.key("part")
                self.textPart(&json, "")
            }
            for token in turn.textTokens {
                event("response.output_text.delta", paced: true) { json in
                    self.place(&json, item: item)
                    json.field("delta", token)
                    json.key("logprobs")
                    json.raw("[]")
                }
            }
            event("response.output_text.done") { json in
                self.place(&json, item: item)
                json.field("text", turn.text)
                json.key("logprobs")
                json.raw("[]")
            }
            event("response.content_part.done") { json in
                self.place(&json, item: item)
                json.key("part")
                self.textPart(&json, turn.text)
            }
            event("response.output_item.done") { json in
                json.field("output_index", 0)
                json.key("item")
                self.message(&json, id: item, text: turn.text)
            }
        }
        for (index, call) in turn.toolCalls.enumerated() {
            let item = "fc_\(id)_\(index)"
            event("response.output_item.added") { json in
                json.field("output_index", index)
                json.key("item")
                self.call(&json, call, id: item, arguments: "", status: "in_progress")
            }
            for fragment in call.argumentFragments {
                event("response.function_call_arguments.delta", paced: true) { json in
                    json.field("item_id", item)
                    json.field("output_index", index)
                    json.field("delta", fragment)
                }
            }
            // As recorded: the arguments in full, without the name the reference lists.
            event("response.function_call_arguments.done") { json in
                json.field("item_id", item)
                json.field("output_index", index)
                json.field("arguments", call.arguments)
            }
            event("response.output_item.done") { json in
                json.field("output_index", index)
                json.key("item")
                self.call(&json, call, id: item, arguments: call.arguments, status: "completed")
            }
        }
        event(turn.finish == .length ? "response.incomplete" : "response.completed") { json in
            json.key("response")
            self.response(&json, turn, model: model, id: id, created: created, done: true)
        }
        return events
    }

    static func error(_ fault: SimulatedFault, requestID: String) -> SimulatedError {
        OpenAISimulatorDialect.error(fault, requestID: requestID)
    }

    static func invalidRequest(_ message: String, requestID: String) -> SimulatedError {
        OpenAISimulatorDialect.invalidRequest(message, requestID: requestID)
    }

    /// As recorded: an `error` event with the details nested, then the stream ends.
    static func streamError(_ message: String) -> String {
        var json = JSONWriter()
        json.openObject()
        json.field("type", "error")
        json.key("error")
        json.openObject()
        json.field("type", "server_error")
        json.field("code", "server_error")
        json.field("message", message)
        json.field("param", nil)
        json.closeObject()
        json.closeObject()
        return "event: error\ndata: \(json.output)\n\n"
    }

    /// `resp_…` for the simulator's request id.
    static func responseID(_ id: String) -> String { "resp_" + id }

    private static func response(_ json: inout JSONWriter, _ turn: SimulatedTurn, model: String, id: String, created: Int, done: Bool) {
        json.openObject()
        json.field("id", self.responseID(id))
        json.field("object", "response")
        json.field("created_at", created)
        json.field("status", !done ? "in_progress" : turn.finish == .length ? "incomplete" : "completed")
        json.field("error", nil)
        json.key("incomplete_details")
        json.raw(done && turn.finish == .length ? #"{"reason":"max_output_tokens"}"# : "null")
        json.field("instructions", turn.echo.instructions)
        json.field("model", model)
        json.key("output")
        json.openArray()
        if done {
            if turn.toolCalls.isEmpty { self.message(&json, id: "msg_" + id, text: turn.text) }
            for (index, call) in turn.toolCalls.enumerated() { self.call(&json, call, id: "fc_\(id)_\(index)", arguments: call.arguments, status: "completed") }
        }
        json.closeArray()
        json.field("parallel_tool_calls", true)
        json.field("previous_response_id", turn.echo.previousResponseID)
        json.field("store", turn.echo.store)
        json.field("tool_choice", "auto")
        json.key("usage")
        if done {
            json.openObject()
            json.field("input_tokens", turn.promptTokens)
            json.key("input_tokens_details")
            json.raw(#"{"cached_tokens":0}"#)
            json.field("output_tokens", turn.completionTokens)
            json.key("output_tokens_details")
            json.raw(#"{"reasoning_tokens":0}"#)
            json.field("total_tokens", turn.promptTokens + turn.completionTokens)
            json.closeObject()
        } else {
            json.raw("null")
        }
        json.closeObject()
    }

    /// A message item; `text` nil while it is being written.
    private static func message(_ json: inout JSONWriter, id: String, text: String?) {
        json.openObject()
        json.field("id", id)
        json.field("type", "message")
        json.field("status", text == nil ? "in_progress" : "completed")
        json.field("role", "assistant")
        json.key("content")
        json.openArray()
        if let text { self.textPart(&json, text) }
        json.closeArray()
        json.closeObject()
    }

    private static func textPart(_ json: inout JSONWriter, _ text: String) {
        json.openObject()
        json.field("type", "output_text")
        json.key("annotations")
        json.raw("[]")
        json.field("text", text)
        json.closeObject()
    }

    private static func call(_ json: inout JSONWriter, _ call: SimulatedTurn.ToolCall, id: String, arguments: String, status: String) {
        json.openObject()
        json.field("id", id)
        json.field("type", "function_call")
        json.field("status", status)
        json.field("arguments", arguments)
        json.field("call_id", "call_" + call.id)
        json.field("name", call.name)
        json.closeObject()
    }

    private static func place(_ json: inout JSONWriter, item: String) {
        json.field("item_id", item)
        json.field("output_index", 0)
        json.field("content_index", 0)
    }
}
