public import NIOCore

/// What the gateway needs to talk to an upstream of one wire format through the canonical model.
///
/// Small on purpose (encode, decode, a stream decoder): the same-dialect fast paths bypass it, and
/// auth lives apart in `AuthStyle`. Registering a format is one line in `ProviderAdapters.adapter(for:)`.
public protocol ProviderAdapter: Sendable {
    /// The path under the provider's base URL (Gemini names the model and the mode in it).
    func path(model: String, streaming: Bool) -> String
    func encode(_ request: ChatRequest, upstreamModel: String, settings: ProviderSettings) throws(GatewayError) -> ByteBuffer
    func decode(_ body: ByteBuffer, provider: String) throws(GatewayError) -> ChatResponse
    func makeStreamDecoder(provider: String) -> any StreamDecoder
}

public enum ProviderAdapters {
    public static func adapter(for wire: WireFormat) -> any ProviderAdapter {
        switch wire {
        case .openAIChat: return OpenAIChatAdapter()
        case .anthropicMessages: return AnthropicMessagesAdapter()
        case .ollamaChat: return OllamaChatAdapter()
        case .geminiGenerateContent: return GeminiAdapter()
        }
    }
}

struct OpenAIChatAdapter: ProviderAdapter {
    func path(model: String, streaming: Bool) -> String { "/chat/completions" }

    func encode(_ request: ChatRequest, upstreamModel: String, settings: ProviderSettings) throws(GatewayError) -> ByteBuffer {
        let isOpenAI = settings.kind == .openai
        let options = OpenAIRequestEncoder.Options(
            maxTokensField: isOpenAI ? "max_completion_tokens" : "max_tokens",
            acceptsTopK: !isOpenAI && settings.kind != .azureOpenAI,
            acceptsStreamOptions: settings.acceptsStreamOptions
        )
        return OpenAIRequestEncoder.encode(request, upstreamModel: upstreamModel, options: options)
    }

    func decode(_ body: ByteBuffer, provider: String) throws(GatewayError) -> ChatResponse {
        try OpenAIResponseDecoder.decode(body, provider: provider)
    }

    func makeStreamDecoder(provider: String) -> any StreamDecoder {
        OpenAIStreamDecoder(provider: provider)
    }
}

struct AnthropicMessagesAdapter: ProviderAdapter {
    func path(model: String, streaming: Bool) -> String { "/messages" }

    func encode(_ request: ChatRequest, upstreamModel: String, settings: ProviderSettings) throws(GatewayError) -> ByteBuffer {
        try AnthropicRequestEncoder.encode(request, upstreamModel: upstreamModel, defaultMaxTokens: settings.defaultMaxTokens)
    }

    func decode(_ body: ByteBuffer, provider: String) throws(GatewayError) -> ChatResponse {
        try AnthropicResponseDecoder.decode(body, provider: provider)
    }

    func makeStreamDecoder(provider: String) -> any StreamDecoder {
        AnthropicStreamDecoder(provider: provider)
    }
}

struct OllamaChatAdapter: ProviderAdapter {
    func path(model: String, streaming: Bool) -> String { "/api/chat" }

    func encode(_ request: ChatRequest, upstreamModel: String, settings: ProviderSettings) throws(GatewayError) -> ByteBuffer {
        try OllamaChat.encode(request, upstreamModel: upstreamModel)
    }

    func decode(_ body: ByteBuffer, provider: String) throws(GatewayError) -> ChatResponse {
        try OllamaChat.decode(body, provider: provider)
    }

    func makeStreamDecoder(provider: String) -> any StreamDecoder {
        OllamaStreamDecoder(provider: provider)
    }
}

struct GeminiAdapter: ProviderAdapter {
    func path(model: String, streaming: Bool) -> String {
        // The model is a path segment: nothing in it may end the segment or start a query.
        let name = String(model.map { "/?#% \n\r".contains($0) ? "_" : $0 })
        return streaming ? "/models/\(name):streamGenerateContent?alt=sse" : "/models/\(name):generateContent"
    }

    func encode(_ request: ChatRequest, upstreamModel: String, settings: ProviderSettings) throws(GatewayError) -> ByteBuffer {
        try GeminiGenerateContent.encode(request)
    }

    func decode(_ body: ByteBuffer, provider: String) throws(GatewayError) -> ChatResponse {
        try GeminiGenerateContent.decode(body, provider: provider)
    }

    func makeStreamDecoder(provider: String) -> any StreamDecoder {
        GeminiStreamDecoder(provider: provider)
    }
}
