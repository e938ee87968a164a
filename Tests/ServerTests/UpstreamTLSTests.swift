import Engine
import Foundation
import NIOCore
import NIOPosix
import Testing
@testable import Server

/// HTTPS upstreams, what every hosted vendor is: reached on both lanes, their certificates verified
/// against the system store and a provider's `tls.ca_file`, and never trusted otherwise.
@Suite(.serialized)
struct UpstreamTLSTests {
    @Test(arguments: Lane.allCases)
    func anHTTPSUpstreamServesWholeAndStreamedAnswers(lane: Lane) async throws {
        let fixture = try await GatewayFixture.start(lane: lane, upstream: .tls)
        defer { Task { await fixture.stop() } }
        let url = "\(fixture.gateway.url)/v1/chat/completions"
        let whole = try await TestClient.post(url, TestClient.chat(model: "fast"))
        #expect(whole.status == 200, "\(whole.body)")
        #expect(((whole.json["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] is String)
        #expect(((whole.json["usage"] as? [String: Any])?["total_tokens"] as? Int ?? 0) > 0)

        let stream = try await TestClient.post(url, TestClient.chat(model: "fast", stream: true))
        #expect(stream.status == 200)
        #expect(stream.events.last == "[DONE]")
        #expect(stream.events.count > 2)

        // Kept-alive connections carry the next requests (no handshake each).
        for _ in 0..<5 {
            #expect(try await TestClient.post(url, TestClient.chat(model: "fast")).status == 200)
        }
        try await fixture.expectServed(chats: 7)
    }

    /// A vendor closes idle keep-alive connections; the next connection resumes the session the
    /// first one was given, on either lane (both reach it over the same connections and context).
    @Test(arguments: Lane.allCases)
    func aNewConnectionResumesTheUpstreamsTLSSession(lane: Lane) async throws {
        let vendor = try await RunningService.servingTLS(
            SimulatorRouter(settings: SimulatorSettings(timeToFirstToken: .zero, tokensPerSecond: 0)).build(), idleTimeout: .milliseconds(100)
        )
        var config = GatewayConfig()
        config.server.fastLane = lane == .fast
        var provider = ProviderSettings(id: "vendor", kind: .openAICompatible, baseURL: "https://localhost:\(vendor.port)/v1")
        provider.tls.caFile = TestTLS.caFile
        config.providers = [provider]
        config.routes = [RouteSettings(alias: "fast", targets: [RouteTarget(provider: "vendor", model: "gpt-4o-mini")])]
        let gateway = try await RunningService.gateway(config)
        defer {
            Task {
                await gateway.stop()
                await vendor.stop()
            }
        }
        let url = "\(gateway.url)/v1/chat/completions"
        for round in 0..<3 {
            let answer = try await TestClient.post(url, TestClient.chat(model: "fast", stream: round == 1))
            #expect(answer.status == 200, "\(answer.body)")
            // Well past the vendor's idle timeout (ten times over, for a busy machine): the connection
            // is gone, and the next request opens another.
            try await Task.sleep(for: .seconds(1))
        }
        let metrics = try await TestClient.get("\(gateway.url)/metrics").body
        #expect(metrics.contains(#"switchyard_upstream_tls_handshakes_total{provider="vendor",resumed="false"} 1"#), "\(metrics)")
        #expect(metrics.contains(#"switchyard_upstream_tls_handshakes_total{provider="vendor",resumed="true"} 2"#), "\(metrics)")
        let lint = try Promtool.check(metrics)
        #expect(lint.ok, "promtool: \(lint.report)")
        try await GatewayOnLane(gateway: gateway, lane: lane).expectServed(chats: 3)
    }

    @Test(arguments: Lane.allCases)
    func aCertificateNotSignedByATrustedCAIsRefused(lane: Lane) async throws {
        // The same TLS upstream without the test CA: the system store does not know it.
        let fixture = try await GatewayFixture.start(lane: lane, upstream: .tls) { config in
            config.providers[0].tls.caFile = nil
        }
        defer { Task { await fixture.stop() } }
        let answer = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", TestClient.chat(model: "fast"))
        #expect(answer.status == 502, "\(answer.body)")
        let error = answer.json["error"] as? [String: Any]
        #expect((error?["message"] as? String)?.contains("sim") == true, "\(answer.body)")
        try await fixture.expectServed(chats: 1)
    }

    @Test(arguments: Lane.allCases)
    func theUpstreamsNameOrAddressIsCheckedAgainstTheCertificate(lane: Lane) async throws {
        // `localhost` is in the certificate and goes out as the server name. The same certificate
        // served on 127.0.0.2, an address it does not list, is refused.
        let elsewhere = try await RunningService.servingTLS(SimulatorRouter(settings: SimulatorSettings(timeToFirstToken: .zero, tokensPerSecond: 0)).build(), host: "127.0.0.2")
        let fixture = try await GatewayFixture.start(lane: lane, upstream: .tls) { config in
            let port = URL(string: config.providers[0].baseURL!)!.port!
            config.providers[0].baseURL = "https://localhost:\(port)/v1"
            var other = config.providers[0]
            other.id = "unlisted"
            other.baseURL = "https://127.0.0.2:\(elsewhere.port)/v1"
            config.providers.append(other)
            config.routes.append(RouteSettings(alias: "unlisted", targets: [RouteTarget(provider: "unlisted", model: "m")]))
        }
        defer {
            Task {
                await fixture.stop()
                await elsewhere.stop()
            }
        }
        let named = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", TestClient.chat(model: "fast"))
        #expect(named.status == 200, "\(named.body)")
        let unlisted = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", TestClient.chat(model: "unlisted"))
        #expect(unlisted.status == 502, "\(unlisted.body)")
        try await fixture.expectServed(chats: 2)
    }

    @Test func aCAFileThatCannotBeReadRefusesTheConfig() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        var provider = ProviderSettings(id: "vendor", kind: .openAICompatible, baseURL: "https://127.0.0.1:9/v1")
        for (file, message) in [("/nonexistent/ca.pem", "cannot be read"), (TestTLS.path("../../Harness.swift"), "cannot be read"), (TestTLS.path("key.pem"), "")] {
            provider.tls.caFile = file
            #expect {
                _ = try UpstreamPool(providers: [provider], simulatorURL: nil, proxy: .none, eventLoopGroup: group)
            } throws: { error in
                let issue = (error as? ConfigError)?.issues.first
                return issue?.path == "providers.vendor.tls.ca_file" && (message.isEmpty || issue?.message.contains(message) == true)
            }
        }
        provider.tls.caFile = TestTLS.caFile
        let pool = try UpstreamPool(providers: [provider], simulatorURL: nil, proxy: .none, eventLoopGroup: group)
        guard case .success(let endpoint) = pool["vendor"]?.fastLane else {
            Issue.record("an https upstream is the fast lane's")
            return
        }
        #expect(endpoint.tls != nil && endpoint.port == 9 && endpoint.serverName == nil)
        await pool.shutdown()
    }

    @Test func anHTTPSUpstreamBehindTheEgressProxyIsTunnelledAndAPlainOneIsTheFrameworkLanes() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let proxy = try EgressProxy(environment: ["HTTPS_PROXY": "http://127.0.0.2:3128", "HTTP_PROXY": "http://127.0.0.2:3128", "NO_PROXY": "internal.example"])
        let providers = [
            ProviderSettings(id: "vendor", kind: .openAICompatible, baseURL: "https://api.vendor.example/v1"),
            ProviderSettings(id: "plain", kind: .openAICompatible, baseURL: "http://api.vendor.example/v1"),
            ProviderSettings(id: "inside", kind: .openAICompatible, baseURL: "https://llm.internal.example/v1"),
            ProviderSettings(id: "local", kind: .vllm, baseURL: "http://127.0.0.1:8000/v1"),
        ]
        let pool = try UpstreamPool(providers: providers, simulatorURL: nil, proxy: proxy, eventLoopGroup: group)
        #expect(try pool["vendor"]?.fastLane.get().tunnel?.description == "127.0.0.2:3128")
        #expect(try pool["vendor"]?.fastLane.get().authorityForTunnel == "api.vendor.example:443")
        #expect(throws: FastLaneSkip.egressProxy) { try pool["plain"]?.fastLane.get() }
        #expect(try pool["inside"]?.fastLane.get().tunnel == nil)
        #expect(try pool["local"]?.fastLane.get().tunnel == nil)
        await pool.shutdown()
    }
}

/// An egress proxy, as companies put in front of every hosted vendor: `https` upstreams are reached
/// through its `CONNECT` tunnel, the certificate still checked against the vendor's name; `NO_PROXY`
/// hosts and loopback directly.
@Suite(.serialized)
struct ProxiedUpstreamTests {
    /// A gateway on `lane` whose one route leads to the provider at `baseURL` (trusting the test CA),
    /// with `HTTPS_PROXY` naming `proxy`.
    private func gateway(lane: Lane, baseURL: String, proxy: TunnelProxy) async throws -> RunningService {
        var config = GatewayConfig()
        config.server.fastLane = lane == .fast
        var provider = ProviderSettings(id: "vendor", kind: .openAICompatible, baseURL: baseURL)
        provider.tls.caFile = TestTLS.caFile
        config.providers = [provider]
        config.routes = [RouteSettings(alias: "fast", targets: [RouteTarget(provider: "vendor", model: "gpt-4o-mini")])]
        let environment = ["HTTPS_PROXY": "http://127.0.0.1:\(proxy.port)", "NO_PROXY": "internal.example"]
        return try await RunningService.gateway(config, egressProxy: try EgressProxy(environment: environment))
    }

    private func vendor() async throws -> RunningService {
        try await RunningService.servingTLS(SimulatorRouter(settings: SimulatorSettings(timeToFirstToken: .zero, tokensPerSecond: 0)).build())
    }

    @Test(arguments: Lane.allCases)
    func anHTTPSUpstreamIsReachedThroughTheProxysTunnel(lane: Lane) async throws {
        let (proxy, vendor) = (try await TunnelProxy(), try await self.vendor())
        let gateway = try await self.gateway(lane: lane, baseURL: "https://vendor.test:\(vendor.port)/v1", proxy: proxy)
        defer {
            Task {
                await gateway.stop()
                await vendor.stop()
                await proxy.stop()
            }
        }
        let url = "\(gateway.url)/v1/chat/completions"
        let whole = try await TestClient.post(url, TestClient.chat(model: "fast"))
        #expect(whole.status == 200, "\(whole.body)")
        let stream = try await TestClient.post(url, TestClient.chat(model: "fast", stream: true))
        #expect(stream.status == 200 && stream.events.last == "[DONE]", "\(stream.body)")
        #expect(!proxy.tunnels.isEmpty && proxy.tunnels.allSatisfy { $0 == "vendor.test:\(vendor.port)" }, "\(proxy.tunnels)")
        try await GatewayOnLane(gateway: gateway, lane: lane).expectServed(chats: 2)
    }

    @Test(arguments: Lane.allCases)
    func aTunnelTheProxyRefusesIsA502NamingTheProxy(lane: Lane) async throws {
        let proxy = try await TunnelProxy()
        // Nothing listens on port 1: the proxy answers the CONNECT with a 502.
        let gateway = try await self.gateway(lane: lane, baseURL: "https://vendor.test:1/v1", proxy: proxy)
        defer {
            Task {
                await gateway.stop()
                await proxy.stop()
            }
        }
        let answer = try await TestClient.post("\(gateway.url)/v1/chat/completions", TestClient.chat(model: "fast"))
        #expect(answer.status == 502, "\(answer.body)")
        #expect(answer.body.lowercased().contains("proxy"), "\(answer.body)")
        #expect(proxy.tunnels == ["vendor.test:1"])
        try await GatewayOnLane(gateway: gateway, lane: lane).expectServed(chats: 1)
    }

    /// A hostile or broken proxy holds nothing for long: one that never answers the `CONNECT` is given
    /// the provider's connect timeout, one that answers without end is cut off after 16 KiB; both are a
    /// 502 on either lane.
    @Test(arguments: Lane.allCases)
    func aProxyThatNeverOpensTheTunnelIsBounded(lane: Lane) async throws {
        let silent = try await ScriptedUpstream(.init(answers: false))
        let endless = try await RawUpstream(answer: String(repeating: "x", count: 64 << 10), closeAfterAnswer: false)
        for proxyPort in [silent.port, endless.port] {
            var config = GatewayConfig()
            config.server.fastLane = lane == .fast
            var provider = ProviderSettings(id: "vendor", kind: .openAICompatible, baseURL: "https://vendor.test:443/v1")
            provider.tls.caFile = TestTLS.caFile
            provider.timeouts.connect = .milliseconds(300)
            config.providers = [provider]
            config.routes = [RouteSettings(alias: "fast", targets: [RouteTarget(provider: "vendor", model: "gpt-4o-mini")])]
            let gateway = try await RunningService.gateway(config, egressProxy: try EgressProxy(environment: ["HTTPS_PROXY": "http://127.0.0.1:\(proxyPort)"]))
            // An unbounded wait would outlast the test client's 20 s read timeout and throw here.
            let answer = try await TestClient.post("\(gateway.url)/v1/chat/completions", TestClient.chat(model: "fast"))
            #expect(answer.status == 502 || answer.status == 504, "\(answer.status) \(answer.body)")
            await gateway.stop()
        }
        await silent.stop()
        await endless.stop()
    }

    @Test func loopbackIsReachedDirectly() async throws {
        let (proxy, vendor) = (try await TunnelProxy(), try await self.vendor())
        let gateway = try await self.gateway(lane: .fast, baseURL: "https://localhost:\(vendor.port)/v1", proxy: proxy)
        defer {
            Task {
                await gateway.stop()
                await vendor.stop()
                await proxy.stop()
            }
        }
        #expect(try await TestClient.post("\(gateway.url)/v1/chat/completions", TestClient.chat(model: "fast")).status == 200)
        #expect(proxy.tunnels.isEmpty)
        try await GatewayOnLane(gateway: gateway, lane: .fast).expectServed(chats: 1)
    }
}
