/// What a local inference server says about its own load, read from its own endpoints.
public struct BackendLoad: Sendable, Equatable {
    /// Requests it holds beyond ours: vLLM's waiting plus running requests.
    public var queued: Int
    /// Ollama: the models loaded in memory now. A target whose model is not among them pays a cold
    /// load, counted as `coldPenalty` queued requests. Nil for backends that do not say.
    public var warmModels: Set<String>?

    /// A cold model load costs seconds: about as much as waiting behind a few requests.
    public static let coldPenalty = 4

    public init(queued: Int, warmModels: Set<String>? = nil) {
        self.queued = queued
        self.warmModels = warmModels
    }

    /// vLLM's Prometheus text (`GET /metrics`): the sum of `vllm:num_requests_waiting` and
    /// `vllm:num_requests_running` over all its series (one per served model). Nil if neither is there.
    public static func vllm(metrics text: String) -> BackendLoad? {
        var total = 0.0
        var found = false
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard line.hasPrefix("vllm:num_requests_waiting") || line.hasPrefix("vllm:num_requests_running") else { continue }
            guard let value = line.split(separator: " ").last.flatMap({ Double($0) }), value.isFinite, value >= 0 else { continue }
            total += value
            found = true
        }
        return found ? BackendLoad(queued: UntrustedNumber.count(total.rounded(), ceiling: UntrustedNumber.queueCeiling)) : nil
    }

    /// Ollama's `GET /api/ps`: `{"models":[{"name":"llama3.2:latest","model":"llama3.2:latest",…}]}`.
    /// Ollama reports no queue, so the signal is which models are warm; `llama3.2` and
    /// `llama3.2:latest` are the same model.
    public static func ollama(ps json: JSONValue) -> BackendLoad? {
        guard let models = json["models"]?.array else { return nil }
        var warm = Set<String>()
        for model in models {
            for name in [model["name"]?.string, model["model"]?.string].compactMap({ $0 }) {
                warm.insert(name)
                if name.hasSuffix(":latest") { warm.insert(String(name.dropLast(":latest".count))) }
            }
        }
        return BackendLoad(queued: 0, warmModels: warm)
    }
}
