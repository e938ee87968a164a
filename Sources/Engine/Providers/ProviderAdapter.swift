public import NIOCore

/// What the gateway needs to talk to an upstream of one wire format through the canonical model.
///
/// Small on purpose (encode, decode, a stream decoder): the same-dialect fast paths bypass it, and
/// auth lives apart in `AuthStyle`. Registering a format is one line in `ProviderAdapters.adapter(for:)`.
public protocol ProviderAdapter: Sendable {
    /// The path under the provider's base URL.
    var path: String { get }
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
        }
    }
}

struct OpenAIChatAdapter: ProviderAdapter {
    var path: String { "/chat/completions" }

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
    var path: String { "/messages" }

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
    var path: String { "/api/chat" }

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
