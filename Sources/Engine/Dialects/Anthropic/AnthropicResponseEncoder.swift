/// Canonical answers written as Anthropic Messages responses: whole messages and SSE event streams.
public enum AnthropicResponseEncoder {
    static func stopReason(_ reason: StopReason) -> String {
        switch reason {
        case .endTurn: return "end_turn"
        case .maxTokens: return "max_tokens"
        case .stopSequence: return "stop_sequence"
        case .toolUse: return "tool_use"
        case .refusal: return "refusal"
        }
    }

    /// Anthropic ids must match `^[a-zA-Z0-9_-]+$`. Others are rewritten deterministically (the same
    /// id always gives the same result, with a hash suffix against collisions), so a client echoing it
    /// back in a `tool_result` reaches the upstream consistently.
    public static func toolID(_ id: String) -> String {
        if !id.isEmpty && id.unicodeScalars.allSatisfy({ Self.isIDScalar($0) || $0 == "_" }) { return id }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in id.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        let cleaned = String(id.unicodeScalars.map { Self.isIDScalar($0) ? Character($0) : "_" })
        return "toolu_" + cleaned.prefix(40) + "_" + String(hash, radix: 16)
    }

    /// ASCII letters, digits and `-`; `_` is allowed too, but is also what replaces everything else.
    private static func isIDScalar(_ scalar: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar) || scalar == "-"
    }

    /// The usage object: Anthropic's `input_tokens` excludes the tokens read from or written to the
    /// prompt cache, which canonical `inputTokens` includes.
    static func writeUsage(_ usage: Usage, into json: inout JSONWriter) {
        json.openObject()
        json.field("input_tokens", max(0, usage.inputTokens - usage.cachedInputTokens - usage.cacheWriteInputTokens))
        json.field("cache_creation_input_tokens", usage.cacheWriteInputTokens)
        json.field("cache_read_input_tokens", usage.cachedInputTokens)
        json.field("output_tokens", usage.outputTokens)
        json.closeObject()
    }

    /// A whole `message` object.
    public static func message(_ response: ChatResponse, model: String) -> String {
        var json = JSONWriter()
        json.openObject()
        json.field("id", self.messageID(response.id))
        json.field("type", "message")
        json.field("role", "assistant")
        json.field("model", model)
        json.key("content")
        json.openArray()
        for part in response.content {
            switch part {
            case .text(let text):
                json.openObject()
                json.field("type", "text")
                json.field("text", text)
                json.closeObject()
            case .toolUse(let id, let name, let input):
                json.openObject()
                json.field("type", "tool_use")
                json.field("id", self.toolID(id))
                json.field("name", name)
                json.key("input")
                json.raw(input.jsonText)
                json.closeObject()
            case .image, .toolResult:
                continue
            }
        }
        json.closeArray()
        json.field("stop_reason", self.stopReason(response.stopReason))
        json.field("stop_sequence", nil)
        json.key("usage")
        self.writeUsage(response.usage, into: &json)
        json.closeObject()
        return json.output
    }

    static func messageID(_ upstreamID: String) -> String {
        if upstreamID.hasPrefix("msg_") { return upstreamID }
        let safe = self.toolID(upstreamID)
        return "msg_" + (safe.hasPrefix("toolu_") ? String(safe.dropFirst(6)) : safe)
    }
}

/// Canonical stream events as Anthropic's SSE grammar: `message_start`, content blocks opened and
/// closed one at a time, `message_delta` with the stop reason and final usage, `message_stop`.
///
/// The stop reason is held until the usage arrives (OpenAI sends it after the finish chunk), a tool
/// call always ends with `tool_use`, and a failure ends with an `error` event, never `message_stop`.
public struct AnthropicStreamEncoder: StreamEncoder {
    private enum OpenBlock {
        case none
        case text(index: Int)
        case tool(index: Int, upstreamIndex: Int)
    }

    private let model: String
    private let fallbackID: String
    private var started = false
    private var open = OpenBlock.none
    private var nextBlock = 0
    private var sawToolUse = false
    private var stop: StopReason?
    private var usage: Usage?
    public private(set) var isFinished = false

    /// - Parameters:
    ///   - model: the model name echoed in `message_start`.
    ///   - fallbackID: the id to use when the upstream gives none (the gateway's request id).
    public init(model: String, fallbackID: String) {
        self.model = model
        self.fallbackID = fallbackID
    }

    public mutating func encode(_ events: [StreamEvent]) -> String {
        var output = ""
        for event in events where !self.isFinished {
            self.encode(event, into: &output)
        }
        return output
    }

    private mutating func encode(_ event: StreamEvent, into output: inout String) {
        switch event {
        case .start(let id, _):
            self.startIfNeeded(id: id, into: &output)
        case .textDelta(let text):
            self.startIfNeeded(id: "", into: &output)
            if case .text = self.open {} else {
                self.closeBlock(into: &output)
                let index = self.nextBlock
                self.nextBlock += 1
                self.open = .text(index: index)
                Self.event("content_block_start", into: &output) { json in
                    json.field("index", index)
                    json.key("content_block")
                    json.openObject()
                    json.field("type", "text")
                    json.field("text", "")
                    json.closeObject()
                }
            }
            guard case .text(let index) = self.open else { return }
            Self.event("content_block_delta", into: &output) { json in
                json.field("index", index)
                json.key("delta")
                json.openObject()
                json.field("type", "text_delta")
                json.field("text", text)
                json.closeObject()
            }
        case .toolCallStart(let upstreamIndex, let id, let name):
            self.startIfNeeded(id: "", into: &output)
            self.closeBlock(into: &output)
            let index = self.nextBlock
            self.nextBlock += 1
            self.open = .tool(index: index, upstreamIndex: upstreamIndex)
            self.sawToolUse = true
            Self.event("content_block_start", into: &output) { json in
                json.field("index", index)
                json.key("content_block")
                json.openObject()
                json.field("type", "tool_use")
                json.field("id", AnthropicResponseEncoder.toolID(id))
                json.field("name", name)
                json.key("input")
                json.openObject()
                json.closeObject()
                json.closeObject()
            }
        case .toolCallArguments(let upstreamIndex, let fragment):
            // Anthropic blocks cannot interleave; OpenAI streams one call after another, so a fragment
            // for another call than the open one is out of order and has nowhere to go.
            guard case .tool(let index, upstreamIndex) = self.open else { return }
            Self.event("content_block_delta", into: &output) { json in
                json.field("index", index)
                json.key("delta")
                json.openObject()
                json.field("type", "input_json_delta")
                json.field("partial_json", fragment)
                json.closeObject()
            }
        case .stop(let reason):
            self.closeBlock(into: &output)
            self.stop = reason
        case .usage(let usage):
            self.usage = usage
        case .end:
            self.startIfNeeded(id: "", into: &output)
            self.closeBlock(into: &output)
            var reason = self.stop ?? .endTurn
            if self.sawToolUse && reason == .endTurn { reason = .toolUse }
            let usage = self.usage ?? Usage()
            Self.event("message_delta", into: &output) { json in
                json.key("delta")
                json.openObject()
                json.field("stop_reason", AnthropicResponseEncoder.stopReason(reason))
                json.field("stop_sequence", nil)
                json.closeObject()
                json.key("usage")
                AnthropicResponseEncoder.writeUsage(usage, into: &json)
            }
            Self.event("message_stop", into: &output) { _ in }
            self.isFinished = true
        case .failure(let error):
            output += "event: error\ndata: \(error.anthropicBody(requestID: nil))\n\n"
            self.isFinished = true
        }
    }

    private mutating func startIfNeeded(id: String, into output: inout String) {
        guard !self.started else { return }
        self.started = true
        let model = self.model
        let fallbackID = self.fallbackID
        Self.event("message_start", into: &output) { json in
            json.key("message")
            json.openObject()
            json.field("id", AnthropicResponseEncoder.messageID(id.isEmpty ? fallbackID : id))
            json.field("type", "message")
            json.field("role", "assistant")
            json.field("model", model)
            json.key("content")
            json.openArray()
            json.closeArray()
            json.field("stop_reason", nil)
            json.field("stop_sequence", nil)
            json.key("usage")
            // The real counts come with `message_delta`, once the upstream has sent them.
            AnthropicResponseEncoder.writeUsage(Usage(), into: &json)
            json.closeObject()
        }
        output += "event: ping\ndata: {\"type\": \"ping\"}\n\n"
    }

    private mutating func closeBlock(into output: inout String) {
        let index: Int
        switch self.open {
        case .none: return
        case .text(let open): index = open
        case .tool(let open, _): index = open
        }
        self.open = .none
        Self.event("content_block_stop", into: &output) { $0.field("index", index) }
    }

    private static func event(_ name: String, into output: inout String, _ body: (inout JSONWriter) -> Void) {
        var json = JSONWriter()
        json.openObject()
        json.field("type", name)
        body(&json)
        json.closeObject()
        output += "event: \(name)\ndata: \(json.output)\n\n"
    }
}
