public import NIOCore

/// Google Gemini's `generateContent` / `streamGenerateContent?alt=sse`: requests, answers and streams.
///
/// Roles are `user` and `model`; the system prompt is `systemInstruction`; tool results answer a
/// call by its function name (`functionResponse`), so names are looked up from the earlier calls; calls
/// arrive whole, usually without ids (stable ones are derived); `finishReason` says `STOP` even after
/// a call; every stream event is a full response, and there is no end marker but the last
/// `finishReason`. Gemini 3 rejects replayed calls without their `thoughtSignature`, which no other
/// dialect can carry back to us: replayed calls get Google's documented validator-skip sentinel
/// (the tool loop works; the model loses that step's reasoning context).
public enum GeminiGenerateContent {
    public static func encode(_ request: ChatRequest) throws(GatewayError) -> ByteBuffer {
        var toolNames: [String: String] = [:]
        var json = JSONWriter()
        json.openObject()
        if let system = request.system {
            json.key("systemInstruction")
            json.openObject()
            json.key("parts")
            json.openArray()
            json.openObject()
            json.field("text", system)
            json.closeObject()
            json.closeArray()
            json.closeObject()
        }
        json.key("contents")
        json.openArray()
        for message in request.messages where !message.content.isEmpty {
            json.openObject()
            json.field("role", message.role == .assistant ? "model" : "user")
            json.key("parts")
            json.openArray()
            for part in message.content {
                json.openObject()
                switch part {
                case .text(let text):
                    json.field("text", text)
                case .image(.base64(let mediaType, let data)):
                    json.key("inlineData")
                    json.openObject()
                    json.field("mimeType", mediaType)
                    json.field("data", data)
                    json.closeObject()
                case .image(.url(let url)):
                    guard url.hasPrefix("gs://") || url.contains("generativelanguage.googleapis.com") else {
                        throw .invalidRequest("Gemini takes inline (base64) images or uploaded file URIs, not web URLs (server.fetch_image_urls lets the gateway fetch them).", param: "messages")
                    }
                    json.key("fileData")
                    json.openObject()
                    json.field("fileUri", url)
                    json.closeObject()
                case .toolUse(let id, let name, let input):
                    toolNames[id] = name
                    json.key("functionCall")
                    json.openObject()
                    json.field("name", name)
                    json.key("args")
                    json.raw(input.jsonText)
                    json.closeObject()
                    json.field("thoughtSignature", Self.skipSignatureValidation)
                case .toolResult(let id, let content, let isError):
                    let text = content.text(separator: "\n")
                    json.key("functionResponse")
                    json.openObject()
                    json.field("name", toolNames[id] ?? id)
                    json.key("response")
                    json.openObject()
                    json.field(isError ? "error" : "result", text)
                    json.closeObject()
                    json.closeObject()
                }
                json.closeObject()
            }
            json.closeArray()
            json.closeObject()
        }
        json.closeArray()
        if !request.tools.isEmpty {
            json.key("tools")
            json.openArray()
            json.openObject()
            json.key("functionDeclarations")
            json.openArray()
            for tool in request.tools {
                json.openObject()
                json.field("name", tool.name)
                if let description = tool.description { json.field("description", description) }
                json.key("parametersJsonSchema")
                json.raw(tool.parameters.jsonText)
                json.closeObject()
            }
            json.closeArray()
            json.closeObject()
            json.closeArray()
        }
        if let choice = request.toolChoice {
            json.key("toolConfig")
            json.openObject()
            json.key("functionCallingConfig")
            json.openObject()
            switch choice {
            case .auto: json.field("mode", "AUTO")
            case .none: json.field("mode", "NONE")
            case .required: json.field("mode", "ANY")
            case .tool(let name):
                json.field("mode", "ANY")
                json.key("allowedFunctionNames")
                json.openArray()
                json.value(name)
                json.closeArray()
            }
            json.closeObject()
            json.closeObject()
        }
        json.key("generationConfig")
        json.openObject()
        if let temperature = request.temperature { json.field("temperature", temperature) }
        if let topP = request.topP { json.field("topP", topP) }
        if let topK = request.topK { json.field("topK", topK) }
        if let maxTokens = request.maxTokens { json.field("maxOutputTokens", maxTokens) }
        if let format = request.responseFormat {
            json.field("responseMimeType", "application/json")
            if case .jsonSchema(_, let schema) = format {
                json.key("responseJsonSchema")
                json.raw(schema.jsonText)
            }
        }
        if !request.stopSequences.isEmpty {
            json.key("stopSequences")
            json.openArray()
            for stop in request.stopSequences { json.value(stop) }
            json.closeArray()
        }
        json.closeObject()
        json.closeObject()
        return ByteBuffer(string: json.output)
    }

    static let skipSignatureValidation = "skip_thought_signature_validator"

    static func stopReason(_ finishReason: String?, hasToolCalls: Bool) -> StopReason {
        if hasToolCalls { return .toolUse }
        switch finishReason {
        case "MAX_TOKENS": return .maxTokens
        case "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY": return .refusal
        default: return .endTurn
        }
    }

    /// `promptTokenCount` includes cached content; thoughts are output the model generated and are
    /// billed as such, so they count in canonical output (as in OpenAI's `completion_tokens`).
    static func usage(_ json: JSONValue?) -> Usage? {
        guard let json else { return nil }
        let thoughts = json["thoughtsTokenCount"]?.tokenCount ?? 0
        return Usage(
            inputTokens: json["promptTokenCount"]?.tokenCount ?? 0,
            cachedInputTokens: json["cachedContentTokenCount"]?.tokenCount ?? 0,
            outputTokens: (json["candidatesTokenCount"]?.tokenCount ?? 0) + thoughts,
            reasoningTokens: thoughts
        )
    }

    /// The answer's parts in canonical terms; thought summaries (`thought: true`) are left out.
    static func parts(_ candidate: JSONValue?, callsSoFar: Int) -> [ContentPart] {
        var content: [ContentPart] = []
        var calls = callsSoFar
        for part in candidate?["content"]?["parts"]?.array ?? [] {
            if let call = part["functionCall"] {
                let name = call["name"]?.string ?? ""
                let input = call["args"] ?? .object([])
                content.append(.toolUse(id: call["id"]?.string ?? ToolCallID.derive(index: calls, name: name, input: input), name: name, input: input))
                calls += 1
            } else if part["thought"]?.bool != true, let text = part["text"]?.string, !text.isEmpty {
                content.append(.text(text))
            }
        }
        return content
    }

    public static func decode(_ body: ByteBuffer, provider: String) throws(GatewayError) -> ChatResponse {
        let parsed = JSONValue.parse(body)
        guard let json = parsed, let candidate = json["candidates"]?.array?.first else {
            // A blocked prompt has no candidates, only `promptFeedback.blockReason`: a refusal.
            if parsed?["promptFeedback"]?["blockReason"]?.string != nil {
                return ChatResponse(id: "", model: "", content: [], stopReason: .refusal, usage: self.usage(parsed?["usageMetadata"]) ?? Usage())
            }
            throw .upstreamMalformed(provider: provider, detail: "a 200 response without candidates")
        }
        let content = self.parts(candidate, callsSoFar: 0)
        let hasCalls = content.contains { if case .toolUse = $0 { return true } else { return false } }
        return ChatResponse(
            id: json["responseId"]?.string ?? "",
            model: json["modelVersion"]?.string ?? "",
            content: content,
            stopReason: self.stopReason(candidate["finishReason"]?.string, hasToolCalls: hasCalls),
            usage: self.usage(json["usageMetadata"]) ?? Usage()
        )
    }
}

/// Gemini's SSE stream (each event a whole `GenerateContentResponse`) into canonical events.
public struct GeminiStreamDecoder: SSEStreamDecoder {
    let provider: String
    var framer: SSEFramer
    private var started = false
    private var calls = 0
    private var finishReason: String?
    private var usage: Usage?
    var finished = false

    public init(provider: String) {
        self.provider = provider
        self.framer = SSEFramer(provider: provider)
    }

    public mutating func feed(_ chunk: ByteBuffer) -> [StreamEvent] {
        self.feedEvents(chunk)
    }

    /// Gemini sends no end marker: a stream is complete when its last event carried a `finishReason`.
    public mutating func finish() -> [StreamEvent] {
        guard !self.finished else { return [] }
        var events = self.framer.finish().flatMap { self.finished ? [] : self.decode($0) }
        guard !self.finished else { return events }
        self.finished = true
        guard let reason = self.finishReason else {
            return events + [.failure(.streamInterrupted(provider: self.provider, detail: "the stream ended without a finishReason"))]
        }
        events.append(.stop(GeminiGenerateContent.stopReason(reason, hasToolCalls: self.calls > 0)))
        events.append(.usage(self.usage ?? Usage()))
        events.append(.end)
        return events
    }

    mutating func decode(_ data: String) -> [StreamEvent] {
        guard let json = try? JSONValue.parse(data) else {
            self.finished = true
            return [.failure(.upstreamMalformed(provider: self.provider, detail: "invalid JSON in a stream event"))]
        }
        if let error = json["error"], case .object = error {
            self.finished = true
            return [.failure(.upstreamReported(provider: self.provider, status: error["code"]?.int ?? 502, message: error["message"]?.string ?? "error"))]
        }
        var events: [StreamEvent] = []
        if !self.started {
            self.started = true
            events.append(.start(id: json["responseId"]?.string ?? "", model: json["modelVersion"]?.string ?? ""))
        }
        let candidate = json["candidates"]?.array?.first
        for part in GeminiGenerateContent.parts(candidate, callsSoFar: self.calls) {
            switch part {
            case .text(let text):
                events.append(.textDelta(text))
            case .toolUse(let id, let name, let input):
                events.append(.toolCallStart(index: self.calls, id: id, name: name))
                events.append(.toolCallArguments(index: self.calls, fragment: input.jsonText))
                self.calls += 1
            default:
                continue
            }
        }
        if let reason = candidate?["finishReason"]?.string { self.finishReason = reason }
        if let usage = GeminiGenerateContent.usage(json["usageMetadata"]) { self.usage = usage }
        return events
    }
}
