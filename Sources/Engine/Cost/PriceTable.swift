/// A model's prices in USD per million tokens, and when they were read off the vendor's page.
public struct ModelPrice: Sendable, Equatable {
    public var input: Double
    /// Prompt tokens served from the provider's prompt cache.
    public var cachedInput: Double
    /// Prompt tokens written to the provider's prompt cache (Anthropic charges extra for those).
    public var cacheWrite: Double
    public var output: Double
    /// `YYYY-MM-DD` the price was checked, or where it came from (`config`, `litellm`).
    public var checked: String

    public init(input: Double, cachedInput: Double? = nil, cacheWrite: Double? = nil, output: Double, checked: String) {
        self.input = input
        self.cachedInput = cachedInput ?? input
        self.cacheWrite = cacheWrite ?? input
        self.output = output
        self.checked = checked
    }

    public static let free = ModelPrice(input: 0, output: 0, checked: "local")

    /// The cost of `usage`, canonical counting: cached and cache-write tokens are parts of
    /// `inputTokens`, each charged at its own rate; reasoning tokens are output tokens.
    public func cost(_ usage: Usage) -> Double {
        let cached = min(usage.cachedInputTokens, usage.inputTokens)
        let written = min(usage.cacheWriteInputTokens, usage.inputTokens - cached)
        let fresh = usage.inputTokens - cached - written
        return (Double(fresh) * self.input + Double(cached) * self.cachedInput + Double(written) * self.cacheWrite
            + Double(usage.outputTokens) * self.output) / 1_000_000
    }

    /// The most a request can cost: every prompt token fresh, every allowed output token used.
    public func worstCase(promptTokens: Int, maxOutputTokens: Int) -> Double {
        (Double(promptTokens) * max(self.input, self.cacheWrite) + Double(maxOutputTokens) * self.output) / 1_000_000
    }
}

/// Model name → price. Looked up by the name sent upstream: exactly, then without a date suffix
/// (`gpt-4o-2024-08-06` → `gpt-4o`), then by the longest known prefix (`claude-sonnet-4-5-20250929`).
public struct PriceTable: Sendable, Equatable {
    public private(set) var entries: [String: ModelPrice]

    public init(_ entries: [String: ModelPrice] = [:]) {
        self.entries = entries
    }

    public func price(for model: String) -> ModelPrice? {
        let name = model.lowercased()
        if let exact = self.entries[name] { return exact }
        let withoutVendor = name.split(separator: "/").last.map(String.init) ?? name
        if let exact = self.entries[withoutVendor] { return exact }
        let undated = withoutVendor.replacingDateSuffix()
        if let exact = self.entries[undated] { return exact }
        return self.entries.keys.filter { withoutVendor.hasPrefix($0 + "-") || withoutVendor.hasPrefix($0 + ":") }
            .max { $0.count < $1.count }.flatMap { self.entries[$0] }
    }

    /// `self` with `other`'s entries on top.
    public func overlaid(with other: PriceTable) -> PriceTable {
        PriceTable(self.entries.merging(other.entries) { _, new in new })
    }

    public subscript(model: String) -> ModelPrice? {
        get { self.entries[model.lowercased()] }
        set { self.entries[model.lowercased()] = newValue }
    }

    /// The main current models, transcribed by us from the vendors' public price pages (standard
    /// tier, prompts under any long-context surcharge). Prices change: override them in the config
    /// (`prices:`) or load a LiteLLM-format file (`prices_file:`).
    public static let builtIn: PriceTable = {
        let checked = "2025-10-01"
        func p(_ input: Double, _ cached: Double?, _ write: Double?, _ output: Double) -> ModelPrice {
            ModelPrice(input: input, cachedInput: cached, cacheWrite: write, output: output, checked: checked)
        }
        return PriceTable([
            // OpenAI
            "gpt-5": p(1.25, 0.125, nil, 10), "gpt-5-mini": p(0.25, 0.025, nil, 2), "gpt-5-nano": p(0.05, 0.005, nil, 0.4),
            "gpt-4.1": p(2, 0.5, nil, 8), "gpt-4.1-mini": p(0.4, 0.1, nil, 1.6), "gpt-4.1-nano": p(0.1, 0.025, nil, 0.4),
            "gpt-4o": p(2.5, 1.25, nil, 10), "gpt-4o-mini": p(0.15, 0.075, nil, 0.6),
            "o3": p(2, 0.5, nil, 8), "o4-mini": p(1.1, 0.275, nil, 4.4),
            "text-embedding-3-small": p(0.02, nil, nil, 0), "text-embedding-3-large": p(0.13, nil, nil, 0),
            // Anthropic: cache reads at 0.1×, 5-minute cache writes at 1.25× the input price
            "claude-opus-4-1": p(15, 1.5, 18.75, 75), "claude-opus-4": p(15, 1.5, 18.75, 75),
            "claude-sonnet-4-5": p(3, 0.3, 3.75, 15), "claude-sonnet-4": p(3, 0.3, 3.75, 15), "claude-3-7-sonnet": p(3, 0.3, 3.75, 15),
            "claude-haiku-4-5": p(1, 0.1, 1.25, 5), "claude-3-5-haiku": p(0.8, 0.08, 1, 4),
            // Google Gemini (prompts up to 200k tokens)
            "gemini-2.5-pro": p(1.25, 0.31, nil, 10), "gemini-2.5-flash": p(0.3, 0.075, nil, 2.5),
            "gemini-2.5-flash-lite": p(0.1, 0.025, nil, 0.4), "gemini-2.0-flash": p(0.1, 0.025, nil, 0.4),
            // Mistral
            "mistral-large-latest": p(2, nil, nil, 6), "mistral-medium-latest": p(0.4, nil, nil, 2),
            "mistral-small-latest": p(0.1, nil, nil, 0.3), "codestral-latest": p(0.3, nil, nil, 0.9),
            // Groq
            "llama-3.3-70b-versatile": p(0.59, nil, nil, 0.79), "llama-3.1-8b-instant": p(0.05, nil, nil, 0.08),
            // DeepSeek
            "deepseek-chat": p(0.28, 0.028, nil, 0.42), "deepseek-reasoner": p(0.28, 0.028, nil, 0.42),
        ])
    }()

    /// Reads LiteLLM's `model_prices_and_context_window.json` (prices per token; chat and
    /// embedding entries). Entries without both token prices are skipped, and counted.
    public static func liteLLM(_ json: JSONValue) -> (table: PriceTable, skipped: Int) {
        var table = PriceTable()
        var skipped = 0
        for name in json.keys where name != "sample_spec" {
            guard let entry = json[name], let input = entry["input_cost_per_token"]?.double,
                let mode = entry["mode"]?.string, mode == "chat" || mode == "embedding" || mode == "completion"
            else {
                skipped += 1
                continue
            }
            let output = entry["output_cost_per_token"]?.double ?? 0
            table[name] = ModelPrice(
                input: input * 1_000_000,
                cachedInput: entry["cache_read_input_token_cost"]?.double.map { $0 * 1_000_000 },
                cacheWrite: entry["cache_creation_input_token_cost"]?.double.map { $0 * 1_000_000 },
                output: output * 1_000_000,
                checked: "litellm"
            )
        }
        return (table, skipped)
    }
}

extension String {
    /// `gpt-4o-2024-08-06` → `gpt-4o`, `claude-sonnet-4-5-20250929` → `claude-sonnet-4-5`.
    func replacingDateSuffix() -> String {
        let parts = self.split(separator: "-")
        if parts.count > 3, parts.suffix(3).map(\.count) == [4, 2, 2], parts.suffix(3).allSatisfy({ $0.allSatisfy(\.isNumber) }) {
            return parts.dropLast(3).joined(separator: "-")
        }
        if parts.count > 1, let last = parts.last, last.count == 8, last.allSatisfy(\.isNumber) {
            return parts.dropLast().joined(separator: "-")
        }
        if parts.count > 1, let last = parts.last, last == "latest" {
            return parts.dropLast().joined(separator: "-")
        }
        return self
    }
}
