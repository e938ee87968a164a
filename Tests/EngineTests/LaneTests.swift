import Testing
@testable import Engine

/// What decides the lane a request takes, and the settings around it: every configuration field
/// says what the fast lane does with it, TLS and proxy settings read as documented.
struct FastLaneCoverageTests {
    /// The stored fields of `value`, as its type declares them.
    private func fields(of value: Any) -> Set<String> {
        Set(Mirror(reflecting: value).children.compactMap(\.label))
    }

    /// Fails when a field is added to a setting without deciding what the fast lane does with it
    /// (and when one is removed without its entry).
    @Test func everySettingSaysWhatTheFastLaneDoesWithIt() {
        let provider = ProviderSettings(id: "p", kind: .openAICompatible, baseURL: "https://api.openai.com/v1")
        let route = RouteSettings(alias: "r", targets: [])
        #expect(self.fields(of: provider) == Set(FastLaneCoverage.provider.keys))
        #expect(self.fields(of: route) == Set(FastLaneCoverage.route.keys))
        #expect(self.fields(of: RouteTarget(provider: "p", model: "m")) == Set(FastLaneCoverage.target.keys))
        #expect(self.fields(of: ServerSettings()) == Set(FastLaneCoverage.server.keys))
        #expect(self.fields(of: GatewayConfig()) == Set(FastLaneCoverage.config.keys))
    }

    @Test func everySkipReasonIsAMetricLabel() {
        let labels = FastLaneSkip.allCases.map(\.rawValue)
        #expect(Set(labels).count == labels.count)
        #expect(labels.allSatisfy { label in label.allSatisfy { $0.isLowercase || $0 == "_" } })
    }
}

struct LaneConfigTests {
    private func load(_ yaml: String) throws(ConfigError) -> GatewayConfig {
        try ConfigLoader.load(yaml: yaml, source: "test.yaml", environment: [:])
    }

    @Test func tlsAndTheFastLaneSwitchAreRead() throws {
        let config = try self.load("""
            server: { fast_lane: false }
            providers:
              vllm: { kind: vllm, base_url: "https://vllm.internal:8443/v1", tls: { ca_file: /etc/switchyard/ca.pem } }
            """)
        #expect(config.server.fastLane == false)
        #expect(config.providers.first?.tls.caFile == "/etc/switchyard/ca.pem")
        #expect(try self.load("providers: { p: { kind: vllm, base_url: 'http://127.0.0.1:8000/v1' } }").server.fastLane)
    }

    @Test(arguments: [
        ("providers: { p: { kind: vllm, base_url: 'http://127.0.0.1:8000/v1', tls: { ca_file: ca.pem } } }", "providers.p.tls", "https://"),
        ("providers: { p: { kind: vllm, base_url: 'https://h/v1', tls: { ca_file: '' } } }", "providers.p.tls.ca_file", "PEM"),
        ("providers: { p: { kind: vllm, base_url: 'https://h/v1', tls: { verify: false } } }", "providers.p.tls.verify", "unknown"),
        ("server: { fast_lane: sometimes }", "server.fast_lane", "true or false"),
    ])
    func badLaneSettingsAreRefusedWithTheirPath(yaml: String, path: String, hint: String) {
        do {
            _ = try self.load(yaml)
            Issue.record("accepted: \(yaml)")
        } catch {
            let issue = error.issues.first { $0.path == path }
            #expect(issue?.message.contains(hint) == true, "\(error.issues)")
        }
    }
}

struct EgressProxyTests {
    @Test func theEnvironmentNamesTheProxyAndWhatBypassesIt() throws {
        let proxy = try EgressProxy(environment: [
            "HTTPS_PROXY": "http://user:p%40ss@proxy.corp:3128/", "http_proxy": "proxy.corp:8080", "NO_PROXY": " .internal.example, vllm:8000,[fd00::1]",
        ])
        #expect(proxy.https == EgressProxy.Server(host: "proxy.corp", port: 3128, credentials: ("user", "p@ss")))
        #expect(proxy.server(forHost: "api.openai.com", https: true)?.port == 3128)
        #expect(proxy.server(forHost: "api.openai.com", https: false)?.port == 8080)
        #expect(proxy.server(forHost: "llm.internal.example", https: true) == nil)
        #expect(proxy.server(forHost: "internal.example", https: true) == nil)
        #expect(proxy.server(forHost: "notinternal.example", https: true) != nil)
        #expect(proxy.server(forHost: "VLLM", https: false) == nil)
        #expect(proxy.server(forHost: "[fd00::1]", https: true) == nil)
        // Loopback is never proxied.
        for host in ["localhost", "127.0.0.1", "127.1.2.3", "::1", "[::1]"] {
            #expect(proxy.server(forHost: host, https: true) == nil, "\(host)")
        }
        #expect(proxy.server(forHost: "127.0.0.1.example", https: true) != nil)
        #expect("\(proxy.https!)" == "proxy.corp:3128")
    }

    @Test func lowercaseNamesWinAndAStarBypassesEverything() throws {
        let proxy = try EgressProxy(environment: ["https_proxy": "http://a:1", "HTTPS_PROXY": "http://b:2", "no_proxy": "*"])
        #expect(proxy.https?.host == "a")
        #expect(proxy.server(forHost: "api.openai.com", https: true) == nil)
        #expect(try EgressProxy(environment: [:]) == .none)
    }

    @Test(arguments: ["https://proxy:3128", "socks5://proxy:1080", "http://proxy:99999", "http://:3128", "http://u:secret@proxy:x"])
    func aValueThatIsNotAProxyURLIsRefusedWithoutItsPassword(value: String) {
        do {
            _ = try EgressProxy(environment: ["HTTPS_PROXY": value])
            Issue.record("accepted \(value)")
        } catch {
            #expect(error.issues.first?.path == "HTTPS_PROXY")
            #expect(error.description.contains("secret") == false)
        }
    }
}
