public import NIOCore

/// Anthropic Messages responses into canonical terms, for clients of another dialect, and as the
/// observer of same-dialect streams (usage, completion).
public enum AnthropicResponseDecoder {
    static func stopReason(_ text: String?) -> StopReason {
        switch text {
        case "max_tokens", "model_context_window_exceeded": return .maxTokens
        case "stop_sequence": return .stopSequence
        case "tool_use": return .toolUse
        case "refusal": return .refusal
        default: return .endTurn
        }
    }

    /// Anthropic's `input_tokens` excludes the cache reads and writes; canonical input is the whole prompt.
    static func usage(_ json: JSONValue?, into usage: inout Usage) {
        guard let json else { return }
        let input = json["input_tokens"]?.tokenCount
        let cacheRead = json["cache_read_input_tokens"]?.tokenCount
        let cacheWrite = json["cache_creation_input_tokens"]?.tokenCount
        if input != nil || cacheRead != nil || cacheWrite != nil {
            let read = cacheRead ?? usage.cachedInputTokens
            let write = cacheWrite ?? usage.cacheWriteInputTokens
            let uncached = input ?? (usage.inputTokens - usage.cachedInputTokens - usage.cacheWriteInputTokens)
            usage.inputTokens = uncached + read + write
            usage.cachedInputTokens = read
            usage.cacheWriteInputTokens = write
        }
        if let output = json["output_tokens"]?.tokenCount { usage.outputTokens = output }
    }

    /// Decodes a complete `message` body.
    /// - Throws: `upstreamMalformed` when it is not a message.
    public static func decode(_ body: ByteBuffer, provider: String) throws(GatewayError) -> ChatResponse {
        let parsed = JSONValue.parse(body)
        guard let json = parsed, json["type"]?.string == "message", let blocks = json["content"]?.array else {
            throw .upstreamMalformed(provider: provider, detail: "a 200 response that is not a message")
        }
        var content: [ContentPart] = []
        for block in blocks {
            switch block["type"]?.string {
            case "text":
                if let text = block["text"]?.string, !text.isEmpty { content.append(.text(text)) }
            case "tool_use":
                content.append(.toolUse(id: block["id"]?.string ?? "", name: block["name"]?.string ?? "", input: block["input"] ?? .object([])))
            default:
                continue
            }
        }
        var usage = Usage()
        self.usage(json["usage"], into: &usage)
        return ChatResponse(
            id: json["id"]?.string ?? "",
            model: json["model"]?.string ?? "",
            content: content,
            stopReason: self.stopReason(json["stop_reason"]?.string),
            usage: usage
        )
    }
}

/// An Anthropic SSE stream into canonical events. One per request; fed bytes as they arrive.
///
/// Tool calls are numbered in order of appearance (block indexes also count text and thinking
/// blocks, so they cannot serve as tool indexes); usage is taken from `message_start` and updated by
/// `message_delta`, whose counts are cumulative; a stream without `message_stop` was cut.
public struct AnthropicStreamDecoder: SSEStreamDecoder {
    let provider: String
    var framer: SSEFramer
    private var toolIndexByBlock: [Int: Int] = [:]
    private var usage = Usage()
    var finished = false

    public init(provider: String) {
        self.provider = provider
        self.framer = SSEFramer(provider: provider)
    }

    /// The usage known so far.
    public var currentUsage: Usage { self.usage }

    public mutating func feed(_ chunk: ByteBuffer) -> [StreamEvent] {
        self.feedEvents(chunk)
    }

    public mutating func finish() -> [StreamEvent] {
        self.finishEvents(endedBy: "message_stop")
    }

    mutating func decode(_ data: String) -> [StreamEvent] {
        guard let json = try? JSONValue.parse(data) else {
            self.finished = true
            return [.failure(.upstreamMalformed(provider: self.provider, detail: "invalid JSON in a stream event"))]
        }
        switch json["type"]?.string {
        case "message_start":
            let message = json["message"]
            AnthropicResponseDecoder.usage(message?["usage"], into: &self.usage)
            return [.start(id: message?["id"]?.string ?? "", model: message?["model"]?.string ?? "")]
        case "content_block_start":
            guard let block = json["content_block"], block["type"]?.string == "tool_use", let index = json["index"]?.int else { return [] }
            let toolIndex = self.toolIndexByBlock.count
            self.toolIndexByBlock[index] = toolIndex
            return [.toolCallStart(index: toolIndex, id: block["id"]?.string ?? "", name: block["name"]?.string ?? "")]
        case "content_block_delta":
            let delta = json["delta"]
            switch delta?["type"]?.string {
            case "text_delta":
                guard let text = delta?["text"]?.string, !text.isEmpty else { return [] }
                return [.textDelta(text)]
            case "input_json_delta":
                guard let fragment = delta?["partial_json"]?.string, !fragment.isEmpty,
                    let index = json["index"]?.int, let toolIndex = self.toolIndexByBlock[index]
                else { return [] }
                return [.toolCallArguments(index: toolIndex, fragment: fragment)]
            default:
                return []
            }
        case "message_delta":
            AnthropicResponseDecoder.usage(json["usage"], into: &self.usage)
            var stop = AnthropicResponseDecoder.stopReason(json["delta"]?["stop_reason"]?.string)
            if !self.toolIndexByBlock.isEmpty && stop == .endTurn { stop = .toolUse }
            return [.stop(stop)]
        case "message_stop":
            self.finished = true
            return [.usage(self.usage), .end]
        case "error":
            self.finished = true
            let message = json["error"]?["message"]?.string ?? "the upstream reported an error"
            let status = json["error"]?["type"]?.string == "overloaded_error" ? 529 : 502
            return [.failure(.upstreamReported(provider: self.provider, status: status, message: message))]
        default:
            // `ping`, `content_block_stop` and event types added later carry nothing to translate.
            return []
        }
    }
}
