public import NIOCore

/// Ollama's native chat API (`POST /api/chat`): requests, whole answers and NDJSON streams.
///
/// Sampling lives under `options` (`num_predict` is max tokens), images are raw base64 only, tool
/// calls arrive whole with object arguments and no ids (we synthesize stable ones), tool results name
/// their tool instead of an id, and `done_reason` says `stop` even after tool calls.
public enum OllamaChat {
    /// - Throws: `invalidRequest` for image URLs (Ollama takes inline images only).
    public static func encode(_ request: ChatRequest, upstreamModel: String) throws(GatewayError) -> ByteBuffer {
        var toolNames: [String: String] = [:]
        var json = JSONWriter()
        json.openObject()
        json.field("model", upstreamModel)
        json.key("messages")
        json.openArray()
        if let system = request.system {
            json.openObject()
            json.field("role", "system")
            json.field("content", system)
            json.closeObject()
        }
        for message in request.messages {
            var texts: [String] = []
            var images: [String] = []
            var calls: [(String, JSONValue)] = []
            for part in message.content {
                switch part {
                case .text(let text): texts.append(text)
                case .image(.base64(_, let data)): images.append(data)
                case .image(.url):
                    throw .invalidRequest("Ollama takes inline (base64) images only, not image URLs (server.fetch_image_urls lets the gateway fetch them).", param: "messages")
                case .toolUse(let id, let name, let input):
                    toolNames[id] = name
                    calls.append((name, input))
                case .toolResult(let id, let content, let isError):
                    let text = content.text(separator: "\n")
                    json.openObject()
                    json.field("role", "tool")
                    json.field("content", isError ? "Error: \(text)" : text)
                    if let name = toolNames[id] { json.field("tool_name", name) }
                    json.closeObject()
                }
            }
            guard !texts.isEmpty || !images.isEmpty || !calls.isEmpty else { continue }
            json.openObject()
            json.field("role", message.role.rawValue)
            json.field("content", texts.joined(separator: "\n"))
            if !images.isEmpty {
                json.key("images")
                json.openArray()
                for image in images { json.value(image) }
                json.closeArray()
            }
            if !calls.isEmpty {
                json.key("tool_calls")
                json.openArray()
                for (name, input) in calls {
                    json.openObject()
                    json.key("function")
                    json.openObject()
                    json.field("name", name)
                    json.key("arguments")
                    json.raw(input.jsonText)
                    json.closeObject()
                    json.closeObject()
                }
                json.closeArray()
            }
            json.closeObject()
        }
        json.closeArray()
        if !request.tools.isEmpty && request.toolChoice != ToolChoice.none {
            json.functionTools(request.tools)
        }
        switch request.responseFormat {
        case .json?: json.field("format", "json")
        case .jsonSchema(_, let schema)?:
            json.key("format")
            json.raw(schema.jsonText)
        case nil: break
        }
        json.key("options")
        json.openObject()
        if let temperature = request.temperature { json.field("temperature", temperature) }
        if let topP = request.topP { json.field("top_p", topP) }
        if let topK = request.topK { json.field("top_k", topK) }
        if let maxTokens = request.maxTokens { json.field("num_predict", maxTokens) }
        if !request.stopSequences.isEmpty {
            json.key("stop")
            json.openArray()
            for stop in request.stopSequences { json.value(stop) }
            json.closeArray()
        }
        json.closeObject()
        // Ollama streams unless told not to.
        json.field("stream", request.stream)
        json.closeObject()
        return ByteBuffer(string: json.output)
    }

    /// Decodes a whole (`"stream": false`) answer.
    public static func decode(_ body: ByteBuffer, provider: String) throws(GatewayError) -> ChatResponse {
        let parsed = JSONValue.parse(body)
        guard let json = parsed, let message = json["message"] else {
            throw .upstreamMalformed(provider: provider, detail: "a 200 response that is not a chat answer")
        }
        var content: [ContentPart] = []
        if let text = message["content"]?.string, !text.isEmpty { content.append(.text(text)) }
        for (index, call) in (message["tool_calls"]?.array ?? []).enumerated() {
            let (id, name, input) = self.toolCall(call, index: index)
            content.append(.toolUse(id: id, name: name, input: input))
        }
        let hasTools = content.contains { if case .toolUse = $0 { return true } else { return false } }
        return ChatResponse(
            // Ollama gives no id; the gateway supplies its request id.
            id: "",
            model: json["model"]?.string ?? "",
            content: content,
            stopReason: self.stopReason(json["done_reason"]?.string, hasToolCalls: hasTools),
            usage: self.usage(json)
        )
    }

    static func stopReason(_ doneReason: String?, hasToolCalls: Bool) -> StopReason {
        if hasToolCalls { return .toolUse }
        return doneReason == "length" ? .maxTokens : .endTurn
    }

    /// `prompt_eval_count` is missing when the whole prompt came from Ollama's cache.
    static func usage(_ json: JSONValue) -> Usage {
        Usage(inputTokens: json["prompt_eval_count"]?.tokenCount ?? 0, outputTokens: json["eval_count"]?.tokenCount ?? 0)
    }

    /// A call with a stable id: Ollama's own when it sends one, else derived from its position and content.
    static func toolCall(_ call: JSONValue, index: Int) -> (String, String, JSONValue) {
        let function = call["function"]
        let name = function?["name"]?.string ?? ""
        let input: JSONValue
        if let arguments = function?["arguments"], case .object = arguments {
            input = arguments
        } else {
            input = OpenAIResponseDecoder.arguments(function?["arguments"]?.string ?? "")
        }
        if let id = call["id"]?.string, !id.isEmpty { return (id, name, input) }
        return (ToolCallID.derive(index: index, name: name, input: input), name, input)
    }
}

/// Ollama's NDJSON stream into canonical events: one JSON object a line, the last with `done: true`
/// and the counts; an `{"error": …}` line is a failure after the 200.
public struct OllamaStreamDecoder: FramedStreamDecoder {
    private let provider: String
    private var lines: StreamEventFramer
    private var started = false
    private var toolCalls = 0
    var finished = false

    public init(provider: String) {
        self.provider = provider
        self.lines = StreamEventFramer(.lineFeed, provider: provider)
    }

    public mutating func feed(_ chunk: ByteBuffer) -> [StreamEvent] {
        guard !self.finished else { return [] }
        let framed = self.lines.feed(chunk)
        return self.events(of: framed.events.map(\.content), failure: framed.failure)
    }

    public mutating func finish() -> [StreamEvent] {
        guard !self.finished else { return [] }
        let events = self.lines.finish().map { self.decode($0) } ?? []
        guard !self.finished else { return events }
        self.finished = true
        return events + [.failure(.streamInterrupted(provider: self.provider, detail: "the upstream closed the stream before its done line"))]
    }

    mutating func decode(_ line: ByteBuffer) -> [StreamEvent] {
        line.withUnsafeReadableBytes { self.decode(line: $0) }
    }

    private mutating func decode(line: UnsafeRawBufferPointer) -> [StreamEvent] {
        guard line.contains(where: { $0 != 0x20 && $0 != 0x0D && $0 != 0x09 }) else { return [] }
        guard let json = try? JSONValue.parse(line) else {
            self.finished = true
            return [.failure(.upstreamMalformed(provider: self.provider, detail: "invalid JSON in a stream line"))]
        }
        if let error = json["error"]?.string {
            self.finished = true
            return [.failure(.upstreamReported(provider: self.provider, status: 502, message: error))]
        }
        var events: [StreamEvent] = []
        if !self.started {
            self.started = true
            events.append(.start(id: "", model: json["model"]?.string ?? ""))
        }
        let message = json["message"]
        if let text = message?["content"]?.string, !text.isEmpty { events.append(.textDelta(text)) }
        for call in message?["tool_calls"]?.array ?? [] {
            let index = self.toolCalls
            self.toolCalls += 1
            let (id, name, input) = OllamaChat.toolCall(call, index: index)
            events.append(.toolCallStart(index: index, id: id, name: name))
            events.append(.toolCallArguments(index: index, fragment: input.jsonText))
        }
        if json["done"]?.bool == true {
            self.finished = true
            events.append(.stop(OllamaChat.stopReason(json["done_reason"]?.string, hasToolCalls: self.toolCalls > 0)))
            events.append(.usage(OllamaChat.usage(json)))
            events.append(.end)
        }
        return events
    }
}
