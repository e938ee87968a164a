public import NIOCore

/// OpenAI Chat Completions responses into canonical terms, for clients of another dialect.
public enum OpenAIResponseDecoder {
    /// `finish_reason` → canonical. OpenAI does not say whether `stop` was a stop sequence.
    static func stopReason(_ finishReason: String?) -> StopReason {
        switch finishReason {
        case "length": return .maxTokens
        case "tool_calls", "function_call": return .toolUse
        case "content_filter": return .refusal
        default: return .endTurn
        }
    }

    /// Decodes a complete response body.
    /// - Throws: `upstreamMalformed` when it is not a completion.
    public static func decode(_ body: ByteBuffer, provider: String) throws(GatewayError) -> ChatResponse {
        let parsed = JSONValue.parse(body)
        guard let json = parsed, let choice = json["choices"]?.array?.first else {
            throw .upstreamMalformed(provider: provider, detail: "a 200 response that is not a chat completion")
        }
        let message = choice["message"]
        var content: [ContentPart] = []
        if let text = message?["content"]?.string, !text.isEmpty { content.append(.text(text)) }
        for call in message?["tool_calls"]?.array ?? [] {
            let function = call["function"]
            content.append(
                .toolUse(
                    id: call["id"]?.string ?? "",
                    name: function?["name"]?.string ?? "",
                    input: self.arguments(function?["arguments"]?.string ?? "")
                )
            )
        }
        var stop = self.stopReason(choice["finish_reason"]?.string)
        // A tool call always ends the turn with the tool stop reason, whatever the upstream said.
        if content.contains(where: { if case .toolUse = $0 { return true } else { return false } }) && stop == .endTurn {
            stop = .toolUse
        }
        return ChatResponse(
            id: json["id"]?.string ?? "",
            model: json["model"]?.string ?? "",
            content: content,
            stopReason: stop,
            usage: json["usage"].map(self.usage) ?? Usage()
        )
    }

    /// Tool arguments arrive as JSON text; a truncated or broken one (a `length` stop mid-call) is
    /// kept whole under `_raw_arguments` rather than dropped or guessed at.
    static func arguments(_ text: String) -> JSONValue {
        if text.isEmpty { return .object([]) }
        if let value = try? JSONValue.parse(text), case .object = value { return value }
        return .object([(key: "_raw_arguments", value: .string(text))])
    }

    static func usage(_ json: JSONValue) -> Usage {
        Usage(
            inputTokens: json["prompt_tokens"]?.tokenCount ?? 0,
            cachedInputTokens: json["prompt_tokens_details"]?["cached_tokens"]?.tokenCount ?? 0,
            cacheWriteInputTokens: json["prompt_tokens_details"]?["cache_write_tokens"]?.tokenCount ?? 0,
            outputTokens: json["completion_tokens"]?.tokenCount ?? 0,
            reasoningTokens: json["completion_tokens_details"]?["reasoning_tokens"]?.tokenCount ?? 0
        )
    }
}

/// An OpenAI SSE stream into canonical events. One per request; fed bytes as they arrive.
public struct OpenAIStreamDecoder: SSEStreamDecoder {
    let provider: String
    var framer: SSEFramer
    private var started = false
    private var openedTools = Set<Int>()
    var finished = false

    public init(provider: String) {
        self.provider = provider
        self.framer = SSEFramer(provider: provider)
    }

    public mutating func feed(_ chunk: ByteBuffer) -> [StreamEvent] {
        self.feedEvents(chunk)
    }

    /// The upstream body ended: a stream without `[DONE]` was cut.
    public mutating func finish() -> [StreamEvent] {
        self.finishEvents(endedBy: "[DONE]")
    }

    mutating func decode(_ data: String) -> [StreamEvent] {
        if data.trimmingWhitespace() == "[DONE]" {
            self.finished = true
            return [.end]
        }
        guard let json = try? JSONValue.parse(data) else {
            self.finished = true
            return [.failure(.upstreamMalformed(provider: self.provider, detail: "invalid JSON in a stream event"))]
        }
        if let error = json["error"], !error.isNull {
            self.finished = true
            let message = error["message"]?.string ?? "the upstream reported an error"
            return [.failure(.upstreamReported(provider: self.provider, status: 502, message: message))]
        }
        var events: [StreamEvent] = []
        if !self.started, let id = json["id"]?.string, !id.isEmpty {
            self.started = true
            events.append(.start(id: id, model: json["model"]?.string ?? ""))
        }
        for choice in json["choices"]?.array ?? [] where (choice["index"]?.int ?? 0) == 0 {
            let delta = choice["delta"]
            if let text = delta?["content"]?.string, !text.isEmpty { events.append(.textDelta(text)) }
            for call in delta?["tool_calls"]?.array ?? [] {
                let index = call["index"]?.int ?? self.openedTools.count
                let function = call["function"]
                if !self.openedTools.contains(index) {
                    self.openedTools.insert(index)
                    events.append(.toolCallStart(index: index, id: call["id"]?.string ?? "call_\(index)", name: function?["name"]?.string ?? ""))
                }
                if let fragment = function?["arguments"]?.string, !fragment.isEmpty {
                    events.append(.toolCallArguments(index: index, fragment: fragment))
                }
            }
            if let reason = choice["finish_reason"]?.string {
                var stop = OpenAIResponseDecoder.stopReason(reason)
                if !self.openedTools.isEmpty && stop == .endTurn { stop = .toolUse }
                events.append(.stop(stop))
            }
        }
        if let usage = json["usage"], case .object = usage {
            events.append(.usage(OpenAIResponseDecoder.usage(usage)))
        }
        return events
    }
}

/// Splits an SSE byte stream into the `data` of each event (multi-line data joined with "\n"), an
/// event over the cap ending the stream (`StreamEventFramer`).
struct SSEFramer {
    private var events: StreamEventFramer

    init(provider: String) {
        self.events = StreamEventFramer(.blankLine, provider: provider)
    }

    /// The payloads of the events `chunk` completes, and the failure that ends the stream after them.
    mutating func feed(_ chunk: ByteBuffer) -> (payloads: [String], failure: GatewayError?) {
        let framed = self.events.feed(chunk)
        return (framed.events.compactMap { $0.content.withUnsafeReadableBytes(SSE.data) }, framed.failure)
    }

    /// A last event that lacked its blank line.
    mutating func finish() -> [String] {
        self.events.finish().flatMap { $0.withUnsafeReadableBytes(SSE.data) }.map { [$0] } ?? []
    }

}

/// Server-sent events.
public enum SSE {
    /// The `data` of one event (its lines without the empty line that ended it), multi-line data
    /// joined with "\n"; nil when it has none.
    public static func data(of event: UnsafeRawBufferPointer) -> String? {
        var lines: [String] = []
        for line in SSELines(event) {
            guard let value = SSELines.dataValue(of: line, in: event) else { continue }
            lines.append(String(decoding: UnsafeRawBufferPointer(rebasing: event[value]), as: UTF8.self))
        }
        return lines.isEmpty ? nil : lines.joined(separator: "\n")
    }
}
