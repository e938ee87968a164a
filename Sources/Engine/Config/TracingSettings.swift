import Foundation

/// `tracing:` — OpenTelemetry spans exported over OTLP/HTTP: one server span per request, a client
/// span per upstream attempt, and spans for admission and the cache. Off unless this block or the
/// standard `OTEL_*` variables configure it; the variables win over the block, as everywhere else.
public struct TracingSettings: Sendable, Equatable {
    /// `OTEL_TRACES_SAMPLER`'s values.
    public enum Sampler: String, Sendable, CaseIterable {
        case alwaysOn = "always_on"
        case alwaysOff = "always_off"
        case traceIDRatio = "traceidratio"
        case parentBasedAlwaysOn = "parentbased_always_on"
        case parentBasedAlwaysOff = "parentbased_always_off"
        case parentBasedTraceIDRatio = "parentbased_traceidratio"

        /// Whether `sample_ratio` (`OTEL_TRACES_SAMPLER_ARG`) means something to it.
        public var takesRatio: Bool { self == .traceIDRatio || self == .parentBasedTraceIDRatio }
    }

    /// `OTEL_EXPORTER_OTLP_PROTOCOL`'s HTTP values (gRPC is not built in).
    public enum WireProtocol: String, Sendable, CaseIterable {
        case protobuf = "http/protobuf"
        case json = "http/json"
    }

    /// The collector's base URL; spans go to its `/v1/traces`.
    public var endpoint = "http://127.0.0.1:4318"
    public var serviceName = "switchyard"
    /// A client's sampled `traceparent` is followed by default, so its trace is never cut in two.
    public var sampler = Sampler.parentBasedAlwaysOn
    /// The share of traces kept by the ratio samplers, 0...1.
    public var sampleRatio = 1.0
    /// `OTEL_RESOURCE_ATTRIBUTES`: `deployment.environment`, `k8s.pod.name`, …
    public var resourceAttributes: [String: String] = [:]
    /// `OTEL_EXPORTER_OTLP_HEADERS`: a hosted collector's credentials, never logged.
    public var headers: [String: Secret] = [:]
    public var wireProtocol = WireProtocol.protobuf
    /// Prompts and completions recorded on spans (`gen_ai.input.messages`, `gen_ai.output.messages`).
    /// Off by default: they are the tenants' data, and traces are read by operators.
    public var captureContent = false
    /// Spans waiting for export; past it, new spans are dropped (and counted), never waited for.
    public var maxQueueSize = 2048
    /// How long one export may take before it is given up (its spans counted as lost).
    public var exportTimeout = Duration.seconds(10)

    public init() {}

    /// The most spans that may wait: about 64 MiB of spans at most.
    public static let largestQueue = 100_000

    /// The spans' URL: the base endpoint's `/v1/traces`.
    public var tracesURL: String {
        self.endpoint.hasSuffix("/") ? self.endpoint + "v1/traces" : self.endpoint + "/v1/traces"
    }

    /// The settings in force: the config's block (nil when it has none) under the process's `OTEL_*`
    /// variables. Nil when tracing is off: no block and no `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT`,
    /// `OTEL_SDK_DISABLED=true`, or `OTEL_TRACES_EXPORTER=none`.
    /// - Throws: a variable's value that means nothing, named (a typo must not silently turn tracing off).
    public static func resolve(_ configured: TracingSettings?, environment: [String: String]) throws(ConfigError) -> TracingSettings? {
        func value(_ name: String) -> String? {
            environment[name].map { $0.trimmingCharacters(in: .whitespaces) }.flatMap { $0.isEmpty ? nil : $0 }
        }
        if value("OTEL_SDK_DISABLED")?.lowercased() == "true" { return nil }
        if let exporter = value("OTEL_TRACES_EXPORTER")?.lowercased() {
            if exporter == "none" { return nil }
            guard exporter == "otlp" else { throw Self.variable("OTEL_TRACES_EXPORTER", "must be otlp or none") }
        }
        let endpoint = value("OTEL_EXPORTER_OTLP_ENDPOINT")
        guard configured != nil || endpoint != nil || value("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != nil else { return nil }
        var settings = configured ?? TracingSettings()
        if let endpoint { settings.endpoint = endpoint }
        if let name = value("OTEL_SERVICE_NAME") { settings.serviceName = name }
        if let text = value("OTEL_TRACES_SAMPLER") {
            guard let sampler = Sampler(rawValue: text.lowercased()) else {
                throw Self.variable("OTEL_TRACES_SAMPLER", "must be one of \(Sampler.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            settings.sampler = sampler
        }
        if let text = value("OTEL_TRACES_SAMPLER_ARG") {
            guard let ratio = Double(text), (0...1).contains(ratio) else { throw Self.variable("OTEL_TRACES_SAMPLER_ARG", "must be a number from 0 to 1") }
            settings.sampleRatio = ratio
        }
        if let text = value("OTEL_RESOURCE_ATTRIBUTES") {
            for (key, attribute) in try Self.pairs(text, variable: "OTEL_RESOURCE_ATTRIBUTES") { settings.resourceAttributes[key] = attribute }
        }
        for name in ["OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"] {
            guard let text = value(name) else { continue }
            for (key, header) in try Self.pairs(text, variable: name) { settings.headers[key] = Secret(header) }
        }
        for name in ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] {
            guard let text = value(name) else { continue }
            guard let wire = WireProtocol(rawValue: text) else { throw Self.variable(name, "must be http/protobuf or http/json (gRPC is not built in)") }
            settings.wireProtocol = wire
        }
        if let text = value("OTEL_BSP_MAX_QUEUE_SIZE") {
            guard let size = Int(text), (1...Self.largestQueue).contains(size) else {
                throw Self.variable("OTEL_BSP_MAX_QUEUE_SIZE", "must be 1-\(Self.largestQueue)")
            }
            settings.maxQueueSize = size
        }
        return settings
    }

    /// `key=value,key=value`, values percent-decoded (the W3C Baggage form the OTel variables use).
    static func pairs(_ text: String, variable: String) throws(ConfigError) -> [(String, String)] {
        var pairs: [(String, String)] = []
        for item in text.split(separator: ",") {
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = parts[0].trimmingCharacters(in: .whitespaces)
            guard parts.count == 2, !key.isEmpty else { throw Self.variable(variable, "must be key=value pairs separated by commas") }
            pairs.append((key, URLText.percentDecoded(Substring(parts[1].trimmingCharacters(in: .whitespaces)))))
        }
        return pairs
    }

    private static func variable(_ name: String, _ message: String) -> ConfigError {
        ConfigError(source: "environment", issues: [ConfigIssue(line: nil, column: nil, path: name, message: message)])
    }
}
