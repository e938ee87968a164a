public import NIOCore

/// OpenAI Responses answers into canonical terms: whole Response objects, and their SSE streams.
///
/// `message` items give text, `function_call` items tool calls (their `call_id` is the tool-call id);
/// `reasoning` items are OpenAI's own and carry nothing another dialect can show. `incomplete` with
/// `max_output_tokens` is a `maxTokens` stop. Usage is OpenAI's counting, the canonical one.
public enum ResponsesResponseDecoder {
    /// - Throws: `upstreamMalformed` when it is not a Response; `upstreamReported` for a failed one.
    public static func decode(_ body: ByteBuffer, provider: String) throws(GatewayError) -> ChatResponse {
        guard let json = JSONValue.parse(body), json["object"]?.string == "response", let output = json["output"]?.array else {
            throw .upstreamMalformed(provider: provider, detail: "a 200 response that is not a Responses object")
        }
        if json["status"]?.string == "failed" {
            throw .upstreamReported(provider: provider, status: 502, message: json["error"]?["message"]?.string ?? "the response failed")
        }
        var content: [ContentPart] = []
        for item in output {
            switch item["type"]?.string {
            case "message":
                let text = (item["content"]?.array ?? []).compactMap { $0["type"]?.string == "output_text" ? $0["text"]?.string : nil }.joined()
                if !text.isEmpty { content.append(.text(text)) }
            case "function_call":
                content.append(.toolUse(
                    id: item["call_id"]?.string ?? "", name: item["name"]?.string ?? "",
                    input: OpenAIResponseDecoder.arguments(item["arguments"]?.string ?? "")
                ))
            default:
                continue
            }
        }
        return ChatResponse(
            id: json["id"]?.string ?? "", model: json["model"]?.string ?? "", content: content,
            stopReason: self.stopReason(json, calledTools: content.contains { if case .toolUse = $0 { true } else { false } }),
            usage: self.usage(json["usage"])
        )
    }

    static func stopReason(_ response: JSONValue?, calledTools: Bool) -> StopReason {
        switch response?["incomplete_details"]?["reason"]?.string {
        case "max_output_tokens": return .maxTokens
        case "content_filter": return .refusal
        default: return calledTools ? .toolUse : .endTurn
        }
    }

    /// Counts are clamped, never trusted (an absurd one would trap the first sum).
    static func usage(_ json: JSONValue?) -> Usage {
        Usage(
            inputTokens: json?["input_tokens"]?.tokenCount ?? 0,
            cachedInputTokens: json?["input_tokens_details"]?["cached_tokens"]?.tokenCount ?? 0,
            cacheWriteInputTokens: json?["input_tokens_details"]?["cache_write_tokens"]?.tokenCount ?? 0,
            outputTokens: json?["output_tokens"]?.tokenCount ?? 0,
            reasoningTokens: json?["output_tokens_details"]?["reasoning_tokens"]?.tokenCount ?? 0
        )
    }
}

/// A Responses SSE stream into canonical events. One per request; fed bytes as they arrive.
///
/// Function calls are numbered in the order their items open; the stop reason and usage come with
/// the terminal event (`response.completed` or `response.incomplete`); `error` and `response.failed`
/// end it as a failure, and a stream that ends without a terminal event was cut.
public struct ResponsesStreamDecoder: SSEStreamDecoder {
    let provider: String
    var framer: SSEFramer
    /// Tool-call index by the item's `output_index`.
    private var callByItem: [Int: Int] = [:]
    var finished = false
    /// The highest `sequence_number` read so far: what an event added after them follows.
    public private(set) var lastSequence = -1

    public init(provider: String) {
        self.provider = provider
        self.framer = SSEFramer(provider: provider)
    }

    public mutating func feed(_ chunk: ByteBuffer) -> [StreamEvent] {
        self.feedEvents(chunk)
    }

    public mutating func finish() -> [StreamEvent] {
        self.finishEvents(endedBy: "response.completed")
    }

    mutating func decode(_ data: String) -> [StreamEvent] {
        guard let json = try? JSONValue.parse(data) else {
            self.finished = true
            return [.failure(.upstreamMalformed(provider: self.provider, detail: "invalid JSON in a stream event"))]
        }
        if let sequence = json["sequence_number"]?.int { self.lastSequence = max(self.lastSequence, sequence) }
        switch json["type"]?.string {
        case "response.created":
            return [.start(id: json["response"]?["id"]?.string ?? "", model: json["response"]?["model"]?.string ?? "")]
        case "response.output_item.added":
            guard let item = json["item"], item["type"]?.string == "function_call", let position = json["output_index"]?.int else { return [] }
            let index = self.callByItem.count
            self.callByItem[position] = index
            return [.toolCallStart(index: index, id: item["call_id"]?.string ?? "", name: item["name"]?.string ?? "")]
        case "response.output_text.delta":
            guard let text = json["delta"]?.string, !text.isEmpty else { return [] }
            return [.textDelta(text)]
        case "response.function_call_arguments.delta":
            guard let fragment = json["delta"]?.string, !fragment.isEmpty, let position = json["output_index"]?.int,
                let index = self.callByItem[position]
            else { return [] }
            return [.toolCallArguments(index: index, fragment: fragment)]
        case "response.completed", "response.incomplete":
            self.finished = true
            let response = json["response"]
            return [
                .stop(ResponsesResponseDecoder.stopReason(response, calledTools: !self.callByItem.isEmpty)),
                .usage(ResponsesResponseDecoder.usage(response?["usage"])), .end,
            ]
        case "error", "response.failed":
            self.finished = true
            // The recorded `error` event nests its fields under `error`; the API reference puts them at the top.
            let error = json["error"] ?? json["response"]?["error"]
            let message = error?["message"]?.string ?? json["message"]?.string ?? "the upstream reported an error"
            let code = error?["code"]?.string ?? json["code"]?.string
            return [.failure(.upstreamReported(provider: self.provider, status: code == "rate_limit_exceeded" ? 429 : 502, message: message))]
        default:
            // `response.in_progress`, content parts, `.done` events and later additions carry nothing new.
            return []
        }
    }
}
