import Testing
@testable import Engine

struct TracingSettingsTests {
    private static let oneRoute = """
        providers:
          sim: { kind: simulator }
        routes:
          r:
            targets: [{ provider: sim, model: c }]

        """

    private func load(_ yaml: String, environment: [String: String] = [:]) throws(ConfigError) -> GatewayConfig {
        try ConfigLoader.load(yaml: Self.oneRoute + yaml, source: "test.yaml", environment: environment)
    }

    private func issues(_ yaml: String) -> [ConfigIssue] {
        do {
            _ = try self.load(yaml)
            return []
        } catch {
            return error.issues
        }
    }

    @Test func theBlockSaysWhatTheOTelVariablesSay() throws {
        let config = try self.load("""
            tracing:
              endpoint: http://127.0.0.1:4318/
              service_name: gw-eu
              sampler: parentbased_traceidratio
              sample_ratio: 0.01
              resource_attributes: { deployment.environment: prod }
              headers: { x-honeycomb-team: "${TEAM_KEY}" }
              protocol: http/json
              capture_content: true
              max_queue_size: 4096
              export_timeout: 3s
            """, environment: ["TEAM_KEY": "hc-secret-value"])
        let tracing = try #require(config.tracing)
        #expect(tracing.tracesURL == "http://127.0.0.1:4318/v1/traces")
        #expect(tracing.serviceName == "gw-eu" && tracing.sampler == .parentBasedTraceIDRatio && tracing.sampleRatio == 0.01)
        #expect(tracing.resourceAttributes == ["deployment.environment": "prod"] && tracing.wireProtocol == .json)
        #expect(tracing.headers["x-honeycomb-team"]?.exposedValue == "hc-secret-value" && !"\(tracing.headers)".contains("hc-secret-value"))
        #expect(tracing.captureContent && tracing.maxQueueSize == 4096 && tracing.exportTimeout == .seconds(3))
        // Content is never captured unless asked, and `enabled: false` turns the block off.
        #expect(try self.load("tracing: { endpoint: 'http://127.0.0.1:4318' }").tracing?.captureContent == false)
        #expect(try self.load("tracing: { enabled: false }").tracing == nil)
        #expect(try self.load("").tracing == nil)
    }

    @Test(arguments: [
        ("tracing: { endpoint: 127.0.0.1:4318 }", "tracing.endpoint", "must be an http:// or https:// URL"),
        ("tracing: { sampler: sometimes }", "tracing.sampler", "must be one of always_on"),
        ("tracing: { sample_ratio: 1.5, sampler: traceidratio }", "tracing.sample_ratio", "must be from 0 to 1"),
        ("tracing: { sample_ratio: 0.5 }", "tracing.sample_ratio", "applies to the traceidratio samplers"),
        ("tracing: { protocol: grpc }", "tracing.protocol", "gRPC is not built in"),
        ("tracing: { max_queue_size: 0 }", "tracing.max_queue_size", "at least 1"),
        ("tracing: { max_queue_size: 100001 }", "tracing.max_queue_size", "at most 100000"),
        ("tracing: { export_timeout: 0s }", "tracing.export_timeout", "longer than zero"),
        ("tracing: { exporter: zipkin }", "tracing.exporter", "unknown key"),
    ])
    func aWrongBlockIsRefusedSayingWhy(_ text: String, _ path: String, _ problem: String) {
        let found = self.issues(text)
        #expect(found.contains { $0.path == path && $0.message.contains(problem) }, "\(text): \(found)")
    }

    @Test func theVariablesTurnTracingOnAndWinOverTheBlock() throws {
        #expect(try TracingSettings.resolve(nil, environment: [:]) == nil, "off unless configured")
        let fromEnvironment = try #require(try TracingSettings.resolve(nil, environment: [
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.9:4318", "OTEL_SERVICE_NAME": "edge", "OTEL_TRACES_SAMPLER": "traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25", "OTEL_RESOURCE_ATTRIBUTES": "k8s.pod.name=gw-0,team=ai%20platform",
            "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20t", "OTEL_BSP_MAX_QUEUE_SIZE": "512",
        ]))
        #expect(fromEnvironment.tracesURL == "http://127.0.0.9:4318/v1/traces" && fromEnvironment.serviceName == "edge")
        #expect(fromEnvironment.sampler == .traceIDRatio && fromEnvironment.sampleRatio == 0.25 && fromEnvironment.maxQueueSize == 512)
        #expect(fromEnvironment.resourceAttributes == ["k8s.pod.name": "gw-0", "team": "ai platform"])
        #expect(fromEnvironment.headers["authorization"]?.exposedValue == "Bearer t")

        var block = TracingSettings()
        block.serviceName = "from-the-file"
        block.captureContent = true
        let overridden = try #require(try TracingSettings.resolve(block, environment: ["OTEL_SERVICE_NAME": "from-the-environment"]))
        #expect(overridden.serviceName == "from-the-environment" && overridden.captureContent)
        #expect(try TracingSettings.resolve(block, environment: ["OTEL_SDK_DISABLED": "true"]) == nil)
        #expect(try TracingSettings.resolve(block, environment: ["OTEL_TRACES_EXPORTER": "none"]) == nil)
        #expect(try TracingSettings.resolve(block, environment: ["OTEL_EXPORTER_OTLP_ENDPOINT": " "])?.endpoint == block.endpoint, "an empty variable is unset")
    }

    @Test(arguments: [
        ("OTEL_TRACES_SAMPLER", "sometimes"), ("OTEL_TRACES_SAMPLER_ARG", "2"), ("OTEL_TRACES_SAMPLER_ARG", "nan"),
        ("OTEL_TRACES_EXPORTER", "zipkin"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"), ("OTEL_BSP_MAX_QUEUE_SIZE", "-1"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "99999999999999999999"), ("OTEL_RESOURCE_ATTRIBUTES", "novalue"),
    ])
    func aVariableThatMeansNothingIsRefusedNotIgnored(_ name: String, _ value: String) {
        #expect(throws: ConfigError.self) { try TracingSettings.resolve(TracingSettings(), environment: [name: value]) }
    }

    @Test func everyProviderKindHasAGenAIProviderName() {
        #expect(ProviderKind.openai.genAIProviderName == "openai" && ProviderKind.gemini.genAIProviderName == "gcp.gemini")
        #expect(ProviderKind.azureOpenAI.genAIProviderName == "azure.ai.openai" && ProviderKind.vllm.genAIProviderName == "vllm")
        #expect(Set(ProviderKind.allCases.map(\.genAIProviderName)).count == ProviderKind.allCases.count)
    }
}

struct TraceSamplerTests {
    @Test func aClientsDecisionIsFollowedByTheParentBasedSamplers() {
        let draws = SamplingDraws(seed: 7)
        for sampler in [TracingSettings.Sampler.parentBasedAlwaysOn, .parentBasedAlwaysOff, .parentBasedTraceIDRatio] {
            let decide = TraceSampler(sampler, ratio: 0.01)
            #expect((0..<100).allSatisfy { _ in decide.samples(parentSampled: true, draw: draws.next()) }, "\(sampler)")
            #expect((0..<100).allSatisfy { _ in !decide.samples(parentSampled: false, draw: draws.next()) }, "\(sampler)")
        }
        #expect(TraceSampler(.parentBasedAlwaysOn, ratio: 1).samples(parentSampled: nil, draw: 0))
        #expect(!TraceSampler(.parentBasedAlwaysOff, ratio: 1).samples(parentSampled: nil, draw: 0))
        #expect(TraceSampler(.alwaysOn, ratio: 0).samples(parentSampled: false, draw: 0))
        #expect(!TraceSampler(.alwaysOff, ratio: 1).samples(parentSampled: true, draw: 0))
    }

    @Test(arguments: [0.0, 0.01, 0.25, 1.0])
    func aRatioKeepsThatShareOfRootRequests(_ ratio: Double) {
        let draws = SamplingDraws(seed: 42)
        for sampler in [TracingSettings.Sampler.traceIDRatio, .parentBasedTraceIDRatio] {
            let decide = TraceSampler(sampler, ratio: ratio)
            let kept = (0..<100_000).filter { _ in decide.samples(parentSampled: nil, draw: draws.next()) }.count
            // Binomial: within six standard deviations, and exact at 0 and 1.
            let spread = 6 * (100_000 * ratio * (1 - ratio)).squareRoot()
            #expect(abs(Double(kept) - 100_000 * ratio) <= spread, "\(sampler) kept \(kept) at \(ratio)")
        }
        // The counter wraps rather than traps (a trap would end every request in flight).
        let wrapping = SamplingDraws(seed: .max - 1)
        #expect(wrapping.next() != wrapping.next())
        // `traceidratio` ignores the parent's flag.
        #expect(TraceSampler(.traceIDRatio, ratio: 1).samples(parentSampled: false, draw: UInt64.max))
    }

    @Test func theSampledFlagIsReadFromTheTraceparent() {
        #expect(TraceContext.isSampled("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
        #expect(!TraceContext.isSampled("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"))
        #expect(TraceContext.isSampled("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-extra"))
    }
}
