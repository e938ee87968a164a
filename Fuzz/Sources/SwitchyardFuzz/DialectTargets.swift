import NIOCore
@testable import Engine

/// A body the gateway wrote must be JSON (an upstream or a client parses it next).
private func requireJSON(_ body: ByteBuffer, _ what: String) {
    let valid = body.withUnsafeReadableBytes { (try? JSONScanner.validate($0)) != nil }
    require(valid, "\(what) is not JSON: \(String(buffer: body))")
}

private func requireJSON(_ text: String, _ what: String) {
    requireJSON(ByteBuffer(string: text), what)
}

/// Client request bodies, decoded by the client's dialect and encoded for every upstream dialect.
enum RequestTargets {
    static func openAI(_ bytes: UnsafeRawBufferPointer) {
        guard let decoded = try? OpenAIRequestDecoder.decode(ByteBuffer(bytes: bytes)) else { return }
        Self.encodeEverywhere(decoded.request)
    }

    static func anthropic(_ bytes: UnsafeRawBufferPointer) {
        // `count_tokens` bodies carry no `max_tokens`; the first byte says which endpoint this is.
        guard let endpoint = bytes.first else { return }
        let body = ByteBuffer(bytes: UnsafeRawBufferPointer(rebasing: bytes.dropFirst()))
        guard let decoded = try? AnthropicRequestDecoder.decode(body, requireMaxTokens: endpoint & 1 == 0) else { return }
        Self.encodeEverywhere(decoded.request)
    }

    private static func encodeEverywhere(_ request: ChatRequest) {
        requireJSON(OpenAIRequestEncoder.encode(request, upstreamModel: "gpt-4o", options: .init()), "the OpenAI request")
        requireJSON(
            OpenAIRequestEncoder.encode(request, upstreamModel: "o3", options: .init(maxTokensField: "max_completion_tokens", acceptsTopK: false, acceptsStreamOptions: false)),
            "the OpenAI request (max_completion_tokens)"
        )
        if let body = try? AnthropicRequestEncoder.encode(request, upstreamModel: "claude", defaultMaxTokens: 4096) { requireJSON(body, "the Anthropic request") }
        if let body = try? OllamaChat.encode(request, upstreamModel: "llama") { requireJSON(body, "the Ollama request") }
        if let body = try? GeminiGenerateContent.encode(request) { requireJSON(body, "the Gemini request") }
    }

    /// OpenAI embeddings bodies, translated for Ollama's and Gemini's embeddings APIs.
    static func embeddings(_ bytes: UnsafeRawBufferPointer) {
        let body = ByteBuffer(bytes: bytes)
        if let request = try? OllamaEmbeddings.encode(body, upstreamModel: "nomic-embed-text") { requireJSON(request.body, "the Ollama embeddings request") }
        if let request = try? GeminiEmbeddings.encode(body, upstreamModel: "gemini-embedding-001") {
            requireJSON(request.body, "the Gemini embeddings request")
            require(request.estimatedTokens >= 0, "a negative token estimate")
        }
    }
}

/// Whole upstream answers of every dialect, as the gateway reads them, and the client answers it
/// writes from them.
enum ResponseTargets {
    static func whole(_ bytes: UnsafeRawBufferPointer) {
        let body = ByteBuffer(bytes: bytes)
        _ = try? OpenAIResponseSummary.read(body, provider: "p", finishReason: true)
        _ = try? OpenAIEmbeddingsSummary.read(body, provider: "p")
        _ = try? OpenAIEmbeddings.unitVectors(body, count: 2, provider: "p")
        let request = OllamaEmbeddings.Request(body: ByteBuffer(), wantsBase64: true, estimatedTokens: 3)
        if let answer = try? OllamaEmbeddings.decode(body, model: "m", base64: true, provider: "p") { requireJSON(answer.json, "the embeddings list") }
        if let answer = try? OllamaEmbeddings.decode(body, model: "m", base64: false, provider: "p") { requireJSON(answer.json, "the embeddings list") }
        if let answer = try? GeminiEmbeddings.decode(body, model: "m", request: request, provider: "p") { requireJSON(answer.json, "the embeddings list") }
        for response in [
            try? OpenAIResponseDecoder.decode(body, provider: "p"),
            try? AnthropicResponseDecoder.decode(body, provider: "p"),
            try? GeminiGenerateContent.decode(body, provider: "p"),
            try? OllamaChat.decode(body, provider: "p"),
        ] {
            guard let response else { continue }
            requireJSON(OpenAIResponseEncoder.completion(response, model: "alias", created: 1_700_000_000), "the OpenAI answer")
            requireJSON(AnthropicResponseEncoder.message(response, model: "alias"), "the Anthropic answer")
        }
    }
}

/// Streamed upstream answers, fed in pieces: the events must not depend on the split, and are
/// written as both client dialects' streams.
enum StreamTargets {
    static func openAI(_ bytes: UnsafeRawBufferPointer) {
        Self.decode(bytes) { OpenAIStreamDecoder(provider: "p") }
    }

    static func anthropic(_ bytes: UnsafeRawBufferPointer) {
        Self.decode(bytes) { AnthropicStreamDecoder(provider: "p") }
    }

    static func gemini(_ bytes: UnsafeRawBufferPointer) {
        Self.decode(bytes) { GeminiStreamDecoder(provider: "p") }
    }

    static func ollama(_ bytes: UnsafeRawBufferPointer) {
        Self.decode(bytes) { OllamaStreamDecoder(provider: "p") }
    }

    private static func decode<Decoder: StreamDecoder>(_ bytes: UnsafeRawBufferPointer, _ make: () -> Decoder) {
        guard let input = SplitInput(bytes) else { return }
        let pieced = Self.events(input.pieces, make())
        let whole = Self.events([input.whole], make())
        require(pieced == whole, "stream events depend on the split:\n\(pieced)\nvs\n\(whole)")
        var openAI = OpenAIStreamEncoder(model: "alias", created: 1_700_000_000, includeUsage: true, fallbackID: "chatcmpl-x")
        var anthropic = AnthropicStreamEncoder(model: "alias", fallbackID: "msg_x")
        // Encoded event by event, as the relay hands them on.
        for event in pieced {
            _ = openAI.encode([event])
            _ = anthropic.encode([event])
        }
    }

    private static func events<Decoder: StreamDecoder>(_ pieces: [ByteBuffer], _ decoder: Decoder) -> [StreamEvent] {
        var decoder = decoder
        var events: [StreamEvent] = []
        for piece in pieces { events += decoder.feed(piece) }
        events += decoder.finish()
        return events
    }

    /// The same-dialect relay: what it forwards must not depend on the split and, when it forwards
    /// the usage chunk too, must be exactly the bytes it was given (whole events).
    static func openAIRelay(_ bytes: UnsafeRawBufferPointer) {
        guard let input = SplitInput(bytes) else { return }
        for forwardUsageChunk in [true, false] {
            let pieced = Self.relay(input.pieces, forwardUsageChunk: forwardUsageChunk)
            let whole = Self.relay([input.whole], forwardUsageChunk: forwardUsageChunk)
            require(pieced == whole, "the relay's output depends on the split: \(pieced) vs \(whole)")
            if forwardUsageChunk {
                var given = input.whole
                given.writeString("\n\n")
                let forwarded = Array(pieced.forwarded.readableBytesView)
                require(Array(given.readableBytesView.prefix(forwarded.count)) == forwarded, "the relay forwarded bytes it was not given")
            }
        }
    }

    private struct Relayed: Equatable {
        var forwarded = ByteBuffer()
        var failure: GatewayError?
        var usage: Usage?
        var finishReason: String?
        var sawDone = false
    }

    private static func relay(_ pieces: [ByteBuffer], forwardUsageChunk: Bool) -> Relayed {
        var relay = OpenAIStreamRelay(provider: "p", forwardUsageChunk: forwardUsageChunk)
        var relayed = Relayed()
        for index in 0...pieces.count {
            let step = index < pieces.count ? relay.feed(pieces[index]) : relay.finish()
            switch step {
            case .forward(var bytes):
                relayed.forwarded.writeBuffer(&bytes)
            case .fail(var bytes, let error):
                relayed.forwarded.writeBuffer(&bytes)
                relayed.failure = error
            }
            if relayed.failure != nil { break }
        }
        relayed.usage = relay.usage
        relayed.finishReason = relay.finishReason
        relayed.sawDone = relay.sawDone
        return relayed
    }
}

/// The config loader on YAML text (an operator's file, but it must refuse, never crash).
enum ConfigTarget {
    static func load(_ bytes: UnsafeRawBufferPointer) {
        let yaml = String(decoding: bytes, as: UTF8.self)
        _ = try? ConfigLoader.load(yaml: yaml, source: "fuzz.yaml", environment: ["OPENAI_API_KEY": "sk-test", "PORT": "8080", "EMPTY": ""])
    }
}
