/// How the gateway talks to a provider: the wire format and its defaults.
public enum ProviderKind: String, Sendable, CaseIterable {
    case openai
    case openAICompatible = "openai-compatible"
    case anthropic
    case ollama
    case vllm
    case gemini
    case azureOpenAI = "azure-openai"
    case simulator
}

/// The request format an upstream takes.
public enum WireFormat: String, Sendable, Equatable, CaseIterable {
    /// OpenAI Chat Completions at `{base_url}/chat/completions`.
    case openAIChat = "openai"
    /// Anthropic Messages at `{base_url}/messages`.
    case anthropicMessages = "anthropic"
    /// Ollama's native chat at `{base_url}/api/chat` (NDJSON streams).
    case ollamaChat = "ollama"
    /// Gemini at `{base_url}/models/{model}:generateContent` (`:streamGenerateContent?alt=sse`).
    case geminiGenerateContent = "gemini"
}

/// Data, not code: an OpenAI-compatible vendor is a base URL and how it takes its key.
public struct ProviderPreset: Sendable, Equatable {
    public let name: String
    public let baseURL: String
    /// False for local servers that run without a key.
    public let requiresKey: Bool
    /// Whether the vendor accepts `stream_options` (some OpenAI-compatible servers reject it).
    public let acceptsStreamOptions: Bool

    public static let all: [ProviderPreset] = [
        ProviderPreset(name: "openai", baseURL: "https://api.openai.com/v1", requiresKey: true, acceptsStreamOptions: true),
        ProviderPreset(name: "groq", baseURL: "https://api.groq.com/openai/v1", requiresKey: true, acceptsStreamOptions: true),
        ProviderPreset(name: "mistral", baseURL: "https://api.mistral.ai/v1", requiresKey: true, acceptsStreamOptions: true),
        ProviderPreset(name: "together", baseURL: "https://api.together.xyz/v1", requiresKey: true, acceptsStreamOptions: true),
        ProviderPreset(name: "deepseek", baseURL: "https://api.deepseek.com/v1", requiresKey: true, acceptsStreamOptions: true),
        ProviderPreset(name: "openrouter", baseURL: "https://openrouter.ai/api/v1", requiresKey: true, acceptsStreamOptions: true),
        ProviderPreset(name: "vllm", baseURL: "http://127.0.0.1:8000/v1", requiresKey: false, acceptsStreamOptions: true),
        ProviderPreset(name: "ollama", baseURL: "http://127.0.0.1:11434/v1", requiresKey: false, acceptsStreamOptions: true),
    ]

    /// Ollama's native API root (`kind: ollama`); its OpenAI-compatible API is the `ollama` preset.
    public static let ollamaNativeBaseURL = "http://127.0.0.1:11434"

    public static func named(_ name: String) -> ProviderPreset? {
        self.all.first { $0.name == name }
    }

    public static let anthropicBaseURL = "https://api.anthropic.com/v1"
    public static let geminiBaseURL = "https://generativelanguage.googleapis.com/v1beta"

    /// The preset a kind implies when the config names none.
    static func implied(by kind: ProviderKind) -> ProviderPreset? {
        switch kind {
        case .openai: return self.named("openai")
        case .vllm: return self.named("vllm")
        default: return nil
        }
    }
}

extension ProviderKind {
    /// `gen_ai.provider.name` of the OpenTelemetry GenAI conventions: their well-known values where
    /// one fits, else the kind's own name.
    public var genAIProviderName: String {
        switch self {
        case .openai: "openai"
        case .anthropic: "anthropic"
        case .gemini: "gcp.gemini"
        case .azureOpenAI: "azure.ai.openai"
        case .openAICompatible, .ollama, .vllm, .simulator: self.rawValue
        }
    }
}
