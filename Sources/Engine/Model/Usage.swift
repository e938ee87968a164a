/// Token usage in the gateway's canonical terms.
///
/// Dialects count differently, and every billing bug in gateways comes from mixing them up:
/// - OpenAI: `prompt_tokens` **includes** `prompt_tokens_details.cached_tokens`; `completion_tokens`
///   includes `completion_tokens_details.reasoning_tokens`.
/// - Anthropic: `input_tokens` **excludes** `cache_read_input_tokens` and `cache_creation_input_tokens`.
///
/// Canonical `inputTokens` is the whole prompt (OpenAI's meaning); the cache fields are subsets of it.
/// `outputTokens` is the whole completion; `reasoningTokens` is a subset of it.
public struct Usage: Sendable, Equatable, Hashable {
    public var inputTokens: Int
    /// Prompt tokens served from the provider's prompt cache (a subset of `inputTokens`).
    public var cachedInputTokens: Int
    /// Prompt tokens written to the provider's prompt cache (a subset of `inputTokens`).
    public var cacheWriteInputTokens: Int
    public var outputTokens: Int
    /// Reasoning ("thinking") tokens (a subset of `outputTokens`).
    public var reasoningTokens: Int

    public init(
        inputTokens: Int = 0,
        cachedInputTokens: Int = 0,
        cacheWriteInputTokens: Int = 0,
        outputTokens: Int = 0,
        reasoningTokens: Int = 0
    ) {
        self.inputTokens = inputTokens
        self.cachedInputTokens = cachedInputTokens
        self.cacheWriteInputTokens = cacheWriteInputTokens
        self.outputTokens = outputTokens
        self.reasoningTokens = reasoningTokens
    }

    public var totalTokens: Int { self.inputTokens + self.outputTokens }
}
