/// The configuration used when there is no config file: providers come from the environment, and with
/// no provider variables at all, the built-in simulated providers serve so a fresh machine works.
public enum ZeroConfig {
    public struct Result: Sendable {
        public let config: GatewayConfig
        /// What was found, for the startup log.
        public let notes: [String]
        public let usesSimulator: Bool
    }

    static let openAIModels = ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o4-mini"]
    static let anthropicModels = ["claude-sonnet-4-5", "claude-opus-4-1", "claude-haiku-4-5"]

    public static func make(environment: [String: String]) -> Result {
        var config = GatewayConfig()
        var notes: [String] = []

        func nonEmpty(_ name: String) -> String? {
            guard let value = environment[name], !value.isEmpty else { return nil }
            return value
        }
        func models(_ name: String, default fallback: [String]) -> [String] {
            guard let list = nonEmpty(name) else { return fallback }
            return list.split(separator: ",").map { $0.trimmingWhitespace() }.filter { !$0.isEmpty }
        }
        func addRoutes(_ names: [String], provider: String) {
            for name in names where !config.routes.contains(where: { $0.alias == name }) {
                config.routes.append(RouteSettings(alias: name, targets: [RouteTarget(provider: provider, model: name)]))
            }
        }

        if let key = nonEmpty("OPENAI_API_KEY") {
            let base = nonEmpty("OPENAI_BASE_URL") ?? "https://api.openai.com/v1"
            config.providers.append(ProviderSettings(id: "openai", kind: .openai, baseURL: base, apiKey: Secret(key)))
            addRoutes(self.openAIModels, provider: "openai")
            notes.append("provider openai from OPENAI_API_KEY (\(base))")
        }
        if let host = nonEmpty("OLLAMA_HOST") {
            let base = host.hasPrefix("http") ? host : "http://\(host)"
            config.providers.append(ProviderSettings(id: "ollama", kind: .ollama, baseURL: base))
            addRoutes(models("OLLAMA_MODELS", default: ["llama3.2"]), provider: "ollama")
            notes.append("provider ollama from OLLAMA_HOST (\(base))")
        }
        if let base = nonEmpty("VLLM_BASE_URL") {
            let names = models("VLLM_MODELS", default: [])
            config.providers.append(ProviderSettings(id: "vllm", kind: .vllm, baseURL: base))
            addRoutes(names, provider: "vllm")
            notes.append(
                names.isEmpty
                    ? "provider vllm from VLLM_BASE_URL, but no routes: set VLLM_MODELS=name1,name2"
                    : "provider vllm from VLLM_BASE_URL (\(base))"
            )
        }
        if let key = nonEmpty("GEMINI_API_KEY") {
            config.providers.append(ProviderSettings(id: "gemini", kind: .gemini, baseURL: ProviderPreset.geminiBaseURL, apiKey: Secret(key)))
            addRoutes(["gemini-2.5-flash", "gemini-2.5-pro"], provider: "gemini")
            notes.append("provider gemini from GEMINI_API_KEY")
        }
        if let key = nonEmpty("ANTHROPIC_API_KEY") {
            let base = nonEmpty("ANTHROPIC_BASE_URL") ?? ProviderPreset.anthropicBaseURL
            config.providers.append(ProviderSettings(id: "anthropic", kind: .anthropic, baseURL: base, apiKey: Secret(key)))
            addRoutes(self.anthropicModels, provider: "anthropic")
            notes.append("provider anthropic from ANTHROPIC_API_KEY (\(base))")
        }

        let usesSimulator = config.providers.isEmpty
        if usesSimulator {
            config.providers = [
                ProviderSettings(id: "sim-openai", kind: .simulator, baseURL: nil),
                ProviderSettings(id: "sim-anthropic", kind: .simulator, baseURL: nil, wire: .anthropicMessages),
                ProviderSettings(id: "sim-ollama", kind: .simulator, baseURL: nil, wire: .ollamaChat),
                ProviderSettings(id: "sim-gemini", kind: .simulator, baseURL: nil, wire: .geminiGenerateContent),
            ]
            addRoutes(["gpt-4o-mini", "gpt-4o"], provider: "sim-openai")
            addRoutes(["claude-sonnet-4-5"], provider: "sim-anthropic")
            addRoutes(["llama3.2"], provider: "sim-ollama")
            addRoutes(["gemini-2.5-flash"], provider: "sim-gemini")
            notes.append("no provider keys in the environment: the built-in simulated providers serve (no real model is called)")
        }
        return Result(config: config, notes: notes, usesSimulator: usesSimulator)
    }
}
