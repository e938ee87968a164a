/// Canonical answers written as OpenAI Chat Completions responses: whole completions and chunk streams.
public enum OpenAIResponseEncoder {
    public static func finishReason(_ reason: StopReason) -> String {
        switch reason {
        case .endTurn, .stopSequence: return "stop"
        case .maxTokens: return "length"
        case .toolUse: return "tool_calls"
        case .refusal: return "content_filter"
        }
    }

    /// OpenAI's usage object: `prompt_tokens` includes cached tokens, `completion_tokens` reasoning ones.
    static func writeUsage(_ usage: Usage, into json: inout JSONWriter) {
        json.openObject()
        json.field("prompt_tokens", usage.inputTokens)
        json.field("completion_tokens", usage.outputTokens)
        json.field("total_tokens", usage.totalTokens)
        json.key("prompt_tokens_details")
        json.openObject()
        json.field("cached_tokens", usage.cachedInputTokens)
        json.closeObject()
        json.key("completion_tokens_details")
        json.openObject()
        json.field("reasoning_tokens", usage.reasoningTokens)
        json.closeObject()
        json.closeObject()
    }

    static func completionID(_ upstreamID: String) -> String {
        upstreamID.hasPrefix("chatcmpl-") ? upstreamID : "chatcmpl-" + upstreamID
    }

    /// A whole `chat.completion` object.
    /// - Parameter created: Unix seconds (the Engine reads no clock).
    public static func completion(_ response: ChatResponse, model: String, created: Int) -> String {
        var json = JSONWriter()
        json.openObject()
        json.field("id", self.completionID(response.id))
        json.field("object", "chat.completion")
        json.field("created", created)
        json.field("model", model)
        json.key("choices")
        json.openArray()
        json.openObject()
        json.field("index", 0)
        json.key("message")
        json.openObject()
        json.field("role", "assistant")
        let text = response.content.text()
        json.field("content", text.isEmpty ? nil : text)
        let calls = response.content.toolUses
        if !calls.isEmpty { json.openAIToolCalls(calls) }
        json.field("refusal", nil)
        json.closeObject()
        json.field("logprobs", nil)
        json.field("finish_reason", self.finishReason(response.stopReason))
        json.closeObject()
        json.closeArray()
        json.key("usage")
        self.writeUsage(response.usage, into: &json)
        json.closeObject()
        return json.output
    }
}

/// Canonical stream events as OpenAI `chat.completion.chunk`s: a role chunk first, content and tool-call
/// fragments, a finish chunk, the usage chunk when the client asked for it, then `[DONE]`. A failure
/// ends with an `error` event and no `[DONE]`.
public struct OpenAIStreamEncoder: StreamEncoder {
    private let model: String
    private let created: Int
    private let includeUsage: Bool
    private var id: String
    private var started = false
    private var sawToolCall = false
    private var stop: StopReason?
    private var usage: Usage?
    public private(set) var isFinished = false

    /// - Parameter fallbackID: the id to use when the upstream gives none (the gateway's request id).
    public init(model: String, created: Int, includeUsage: Bool, fallbackID: String) {
        self.id = OpenAIResponseEncoder.completionID(fallbackID)
        self.model = model
        self.created = created
        self.includeUsage = includeUsage
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
            if !id.isEmpty { self.id = OpenAIResponseEncoder.completionID(id) }
            self.startIfNeeded(into: &output)
        case .textDelta(let text):
            self.startIfNeeded(into: &output)
            self.chunk(into: &output) { $0.field("content", text) }
        case .toolCallStart(let index, let id, let name):
            self.startIfNeeded(into: &output)
            self.sawToolCall = true
            self.chunk(into: &output) { delta in
                Self.toolCall(&delta, index: index) { call in
                    call.field("id", id)
                    call.field("type", "function")
                    call.key("function")
                    call.openObject()
                    call.field("name", name)
                    call.field("arguments", "")
                    call.closeObject()
                }
            }
        case .toolCallArguments(let index, let fragment):
            self.chunk(into: &output) { delta in
                Self.toolCall(&delta, index: index) { call in
                    call.key("function")
                    call.openObject()
                    call.field("arguments", fragment)
                    call.closeObject()
                }
            }
        case .stop(let reason):
            self.stop = reason
        case .usage(let usage):
            self.usage = usage
        case .end:
            self.startIfNeeded(into: &output)
            var reason = self.stop ?? .endTurn
            if self.sawToolCall && reason == .endTurn { reason = .toolUse }
            self.chunk(into: &output, finish: OpenAIResponseEncoder.finishReason(reason)) { _ in }
            if self.includeUsage {
                let usage = self.usage ?? Usage()
                output += "data: "
                var json = JSONWriter()
                json.openObject()
                self.header(&json)
                json.key("choices")
                json.openArray()
                json.closeArray()
                json.key("usage")
                OpenAIResponseEncoder.writeUsage(usage, into: &json)
                json.closeObject()
                output += json.output + "\n\n"
            }
            output += "data: [DONE]\n\n"
            self.isFinished = true
        case .failure(let error):
            output += "data: \(error.openAIBody())\n\n"
            self.isFinished = true
        }
    }

    private mutating func startIfNeeded(into output: inout String) {
        guard !self.started else { return }
        self.started = true
        self.chunk(into: &output) { delta in
            delta.field("role", "assistant")
            delta.field("content", "")
        }
    }

    private func header(_ json: inout JSONWriter) {
        json.field("id", self.id)
        json.field("object", "chat.completion.chunk")
        json.field("created", self.created)
        json.field("model", self.model)
    }

    private func chunk(into output: inout String, finish: String? = nil, delta body: (inout JSONWriter) -> Void) {
        var json = JSONWriter()
        json.openObject()
        self.header(&json)
        json.key("choices")
        json.openArray()
        json.openObject()
        json.field("index", 0)
        json.key("delta")
        json.openObject()
        body(&json)
        json.closeObject()
        json.field("logprobs", nil)
        json.field("finish_reason", finish)
        json.closeObject()
        json.closeArray()
        json.closeObject()
        output += "data: \(json.output)\n\n"
    }

    private static func toolCall(_ delta: inout JSONWriter, index: Int, _ body: (inout JSONWriter) -> Void) {
        delta.key("tool_calls")
        delta.openArray()
        delta.openObject()
        delta.field("index", index)
        body(&delta)
        delta.closeObject()
        delta.closeArray()
    }
}
