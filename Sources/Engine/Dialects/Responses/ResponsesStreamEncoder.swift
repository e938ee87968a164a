/// Canonical stream events as the Responses API's SSE sequence: `response.created` and
/// `response.in_progress`, then each output item opened (`response.output_item.added`), filled
/// (`response.output_text.delta`, `response.function_call_arguments.delta`) and closed (`….done`),
/// and `response.completed` (or `response.incomplete`) with the whole Response and its usage. Every
/// event has its `sequence_number`, from 0. A failure ends the stream with an `error` event and
/// `response.failed`, never a clean completion. There is no `[DONE]`: the terminal event ends it.
public struct ResponsesStreamEncoder: StreamEncoder {
    private enum Open {
        case none
        case message(index: Int, id: String, text: String)
        case call(index: Int, upstreamIndex: Int, id: String, callID: String, name: String, arguments: String)
    }

    private let id: String
    private let model: String
    private let createdAt: Int
    private let echo: ResponsesResponseEncoder.Echo
    private var sequence = 0
    private var started = false
    private var open = Open.none
    private var items: [ResponsesResponseEncoder.Item] = []
    private var stop: StopReason?
    private var usage: Usage?
    public private(set) var isFinished = false

    /// - Parameters:
    ///   - id: the response's id (`resp_…`).
    ///   - createdAt: seconds since 1970.
    public init(id: String, model: String, createdAt: Int, echo: ResponsesResponseEncoder.Echo) {
        self.id = id
        self.model = model
        self.createdAt = createdAt
        self.echo = echo
    }

    public mutating func encode(_ events: [StreamEvent]) -> String {
        var output = ""
        for event in events where !self.isFinished {
            self.encode(event, into: &output)
        }
        return output
    }

    private mutating func encode(_ event: StreamEvent, into output: inout String) {
        self.startIfNeeded(into: &output)
        switch event {
        case .start:
            break
        case .textDelta(let text):
            if case .message = self.open {} else {
                self.closeItem(into: &output)
                let index = self.items.count
                let id = ResponsesResponseEncoder.itemID("msg", self.id, index)
                self.open = .message(index: index, id: id, text: "")
                output += Self.event("response.output_item.added", self.nextSequence()) { json in
                    json.field("output_index", index)
                    json.key("item")
                    ResponsesResponseEncoder.write(.message(id: id, text: ""), status: "in_progress", into: &json)
                }
                output += Self.event("response.content_part.added", self.nextSequence()) { json in
                    Self.position(id, index, into: &json)
                    json.key("part")
                    ResponsesResponseEncoder.writeText("", into: &json)
                }
            }
            guard case .message(let index, let id, let sofar) = self.open else { return }
            self.open = .message(index: index, id: id, text: sofar + text)
            output += Self.event("response.output_text.delta", self.nextSequence()) { json in
                Self.position(id, index, into: &json)
                json.field("delta", text)
                json.key("logprobs")
                json.raw("[]")
            }
        case .toolCallStart(let upstreamIndex, let callID, let name):
            self.closeItem(into: &output)
            let index = self.items.count
            let id = ResponsesResponseEncoder.itemID("fc", self.id, index)
            self.open = .call(index: index, upstreamIndex: upstreamIndex, id: id, callID: callID, name: name, arguments: "")
            output += Self.event("response.output_item.added", self.nextSequence()) { json in
                json.field("output_index", index)
                json.key("item")
                ResponsesResponseEncoder.write(.functionCall(id: id, callID: callID, name: name, arguments: ""), status: "in_progress", into: &json)
            }
        case .toolCallArguments(let upstreamIndex, let fragment):
            // Calls arrive one after another; a fragment for another call than the open one has nowhere to go.
            guard case .call(let index, upstreamIndex, let id, let callID, let name, let sofar) = self.open else { return }
            self.open = .call(index: index, upstreamIndex: upstreamIndex, id: id, callID: callID, name: name, arguments: sofar + fragment)
            output += Self.event("response.function_call_arguments.delta", self.nextSequence()) { json in
                json.field("item_id", id)
                json.field("output_index", index)
                json.field("delta", fragment)
            }
        case .stop(let reason):
            self.closeItem(into: &output)
            self.stop = reason
        case .usage(let usage):
            self.usage = usage
        case .end:
            self.closeItem(into: &output)
            let (status, incomplete) = ResponsesResponseEncoder.status(self.stop)
            output += Self.event(incomplete == nil ? "response.completed" : "response.incomplete", self.nextSequence()) { json in
                json.key("response")
                self.snapshot(status: status, incomplete: incomplete, usage: self.usage ?? Usage(), error: nil, into: &json)
            }
            self.isFinished = true
        case .failure(let error):
            self.closeItem(into: &output)
            output += Self.errorEvent(error, sequence: self.nextSequence())
            output += Self.event("response.failed", self.nextSequence()) { json in
                json.key("response")
                self.snapshot(status: "failed", incomplete: nil, usage: self.usage, error: error, into: &json)
            }
            self.isFinished = true
        }
    }

    private mutating func startIfNeeded(into output: inout String) {
        guard !self.started else { return }
        self.started = true
        for name in ["response.created", "response.in_progress"] {
            output += Self.event(name, self.nextSequence()) { json in
                json.key("response")
                self.snapshot(status: "in_progress", incomplete: nil, usage: nil, error: nil, into: &json)
            }
        }
    }

    /// Closes the open item: its text or arguments in full, then the item as it ends.
    private mutating func closeItem(into output: inout String) {
        switch self.open {
        case .none:
            return
        case .message(let index, let id, let text):
            output += Self.event("response.output_text.done", self.nextSequence()) { json in
                Self.position(id, index, into: &json)
                json.field("text", text)
                json.key("logprobs")
                json.raw("[]")
            }
            output += Self.event("response.content_part.done", self.nextSequence()) { json in
                Self.position(id, index, into: &json)
                json.key("part")
                ResponsesResponseEncoder.writeText(text, into: &json)
            }
            self.items.append(.message(id: id, text: text))
        case .call(let index, _, let id, let callID, let name, let arguments):
            output += Self.event("response.function_call_arguments.done", self.nextSequence()) { json in
                json.field("item_id", id)
                json.field("output_index", index)
                json.field("name", name)
                json.field("arguments", arguments)
            }
            self.items.append(.functionCall(id: id, callID: callID, name: name, arguments: arguments))
        }
        self.open = .none
        let index = self.items.count - 1
        let item = self.items[index]
        output += Self.event("response.output_item.done", self.nextSequence()) { json in
            json.field("output_index", index)
            json.key("item")
            ResponsesResponseEncoder.write(item, status: "completed", into: &json)
        }
    }

    private func snapshot(status: String, incomplete: String?, usage: Usage?, error: GatewayError?, into json: inout JSONWriter) {
        ResponsesResponseEncoder.write(
            id: self.id, model: self.model, createdAt: self.createdAt, status: status, incomplete: incomplete, items: status == "in_progress" ? [] : self.items,
            usage: usage, error: error, echo: self.echo, into: &json
        )
    }

    private static func position(_ itemID: String, _ outputIndex: Int, into json: inout JSONWriter) {
        json.field("item_id", itemID)
        json.field("output_index", outputIndex)
        json.field("content_index", 0)
    }

    private mutating func nextSequence() -> Int {
        defer { self.sequence += 1 }
        return self.sequence
    }

    /// The `error` event that ends a broken stream (translated, or relayed as it came). The reference
    /// puts the details at the top; OpenAI's streams (and the SDKs, which raise on them) have them
    /// under `error`: both, so either reader finds them.
    static func errorEvent(_ error: GatewayError, sequence: Int) -> String {
        Self.event("error", sequence) { json in
            json.field("code", error.responsesCode)
            json.field("message", error.message)
            json.field("param", nil)
            json.key("error")
            json.openObject()
            json.field("type", error.openAIType)
            json.field("code", error.responsesCode)
            json.field("message", error.message)
            json.field("param", nil)
            json.closeObject()
        }
    }

    private static func event(_ name: String, _ sequence: Int, _ body: (inout JSONWriter) -> Void) -> String {
        var json = JSONWriter()
        json.openObject()
        json.field("type", name)
        json.field("sequence_number", sequence)
        body(&json)
        json.closeObject()
        return "event: \(name)\ndata: \(json.output)\n\n"
    }
}
