import AsyncHTTPClient
import Engine
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Testing
@testable import Server

/// A gateway with its own state dir and config file, driven over its real admin socket.
struct AdminFixture: LaneFixture {
    let directory: String
    let configPath: String
    let router: SimulatorRouter
    let simulator: RunningService
    let gateway: RunningService
    let socket: String
    let lane: Lane

    static func start(routesYAML: String? = nil, lane: Lane = .fast) async throws -> AdminFixture {
        let directory = NSTemporaryDirectory() + "switchyard-admin-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let router = SimulatorRouter(settings: SimulatorSettings(timeToFirstToken: .zero, tokensPerSecond: 0))
        let simulator = try await RunningService.simulator(router)
        let configPath = directory + "/gateway.yaml"
        try Self.yaml(simulator: simulator.url, state: directory + "/state", routes: routesYAML ?? Self.defaultRoutes, lane: lane)
            .write(toFile: configPath, atomically: true, encoding: .utf8)
        let source = ConfigSource(path: configPath) { $0.server.listen = ListenAddress(host: "127.0.0.1", port: 0) }
        let config = try source.load()
        let gateway = try await RunningService.gateway(config, source: source)
        return AdminFixture(
            directory: directory, configPath: configPath, router: router, simulator: simulator, gateway: gateway,
            socket: config.server.adminSocketPath, lane: lane
        )
    }

    static let defaultRoutes = """
        routes:
          r:
            targets:
              - { provider: a, model: m, weight: 1 }
              - { provider: b, model: m, weight: 1 }
        """

    static func yaml(simulator: String, state: String, routes: String, lane: Lane = .fast) -> String {
        """
        server: { state_dir: \(state), fast_lane: \(lane == .fast) }
        providers:
          a: { kind: simulator, base_url: "\(simulator)/v1" }
          b: { kind: simulator, base_url: "\(simulator)/v1" }
        \(routes)
        """
    }

    func admin(_ method: HTTPMethod, _ path: String, body: String? = nil) async throws -> Exchange {
        let encoded = self.socket.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? self.socket
        var request = HTTPClientRequest(url: "http+unix://\(encoded)\(path)")
        request.method = method
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        return try await TestClient.send(request)
    }

    func snapshot() async throws -> AdminSnapshot {
        let exchange = try await self.admin(.GET, "/v1/snapshot")
        return try AdminJSON.decoder().decode(AdminSnapshot.self, from: Data(exchange.body.utf8))
    }

    func chat(_ count: Int) async throws -> [String: Int] {
        var providers: [String: Int] = [:]
        for _ in 0..<count {
            let exchange = try await TestClient.post("\(self.gateway.url)/v1/chat/completions", TestClient.chat(model: "r"))
            providers[exchange.provider ?? "error \(exchange.status)", default: 0] += 1
        }
        return providers
    }

    func stop() async {
        await self.gateway.stop()
        await self.simulator.stop()
        try? FileManager.default.removeItem(atPath: self.directory)
    }
}

extension RunningService {
    static func gateway(_ config: GatewayConfig, source: ConfigSource) async throws -> RunningService {
        try await self.start { started in
            GatewayService(config: config, source: source, logger: Self.logger) { await started($0.port) }
        }
    }
}

struct AdminSocketTests {
    @Test func theSocketIsOwnerOnlyAndGoneAfterAShutdown() async throws {
        let fixture = try await AdminFixture.start()
        let attributes = try FileManager.default.attributesOfItem(atPath: fixture.socket)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        #expect(attributes[.type] as? FileAttributeType == .typeSocket)
        await fixture.gateway.stop()
        #expect(!FileManager.default.fileExists(atPath: fixture.socket))
        await fixture.simulator.stop()
        try? FileManager.default.removeItem(atPath: fixture.directory)
    }

    @Test func aStaleSocketIsReplacedButALiveOneIsNot() async throws {
        let fixture = try await AdminFixture.start()
        defer { Task { await fixture.stop() } }
        // A live gateway owns its socket: a second one on the same state dir refuses to start.
        #expect(AdminSocket.answers(fixture.socket))
        #expect(throws: AdminSocket.InUse.self) { try AdminSocket.claim(fixture.socket) }
        // A file nobody answers on (a crash left it) is taken over.
        let stale = fixture.directory + "/stale.sock"
        FileManager.default.createFile(atPath: stale, contents: Data())
        try AdminSocket.claim(stale)
        #expect(!FileManager.default.fileExists(atPath: stale))
    }

    @Test(arguments: Lane.allCases)
    func theSnapshotMovesAsTrafficFlows(lane: Lane) async throws {
        let fixture = try await AdminFixture.start(lane: lane)
        defer { Task { await fixture.stop() } }
        let before = try await fixture.snapshot()
        #expect(before.windows["1m"]?.requests == 0)
        #expect(before.configVersion == 1 && before.configSource == fixture.configPath)
        _ = try await fixture.chat(10)
        _ = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", "{broken")
        let after = try await fixture.snapshot()
        let minute = try #require(after.windows["1m"])
        #expect(minute.requests == 11)
        #expect(minute.errors["caller"] == 1 && abs(minute.errorRate - 1.0 / 11.0) < 0.001)
        #expect(minute.latencyMs.p50 != nil && minute.outputTokens > 0)
        #expect(after.targets.map(\.requests1m).reduce(0, +) == 10)
        let route = try #require(after.routes.first)
        #expect(abs(route.targets.map(\.share1m).reduce(0, +) - 1) < 0.001 && route.requests1m == 10)
        try await fixture.expectServed(chats: 10, left: 1, because: .invalidBody)
    }

    @Test(arguments: Lane.allCases)
    func drainOverTheSocketStopsNewTrafficAndIsAudited(lane: Lane) async throws {
        let fixture = try await AdminFixture.start(lane: lane)
        defer { Task { await fixture.stop() } }
        let drained = try await fixture.admin(.POST, "/v1/providers/a/drain")
        #expect(drained.status == 200)
        #expect(try await fixture.chat(20) == ["b": 20])
        let snapshot = try await fixture.snapshot()
        #expect(snapshot.targets.first { $0.provider == "a" }?.health == "drained")
        let unknown = try await fixture.admin(.POST, "/v1/providers/nope/drain")
        #expect(unknown.status == 404 && unknown.body.contains("unknown_provider"))
        #expect(try await fixture.admin(.POST, "/v1/providers/a/undrain").status == 200)
        #expect(try await fixture.chat(40)["a"] ?? 0 > 0)

        let audit = try await fixture.admin(.GET, "/v1/audit")
        let entries = try JSONSerialization.jsonObject(with: Data(audit.body.utf8)) as? [[String: Any]] ?? []
        #expect(entries.map { $0["action"] as? String } == ["undrain", "drain", "drain"])
        #expect(entries.allSatisfy { ($0["actor"] as? String)?.hasPrefix("uid:") == true })
        #expect(entries.map { $0["ok"] as? Bool } == [true, false, true])
        // Each row names the replica that acted: its host and port.
        #expect(entries.allSatisfy { ($0["replica"] as? String)?.hasSuffix(":\(fixture.gateway.port)") == true }, "\(entries)")
        try await fixture.expectServed(chats: 60)
    }

    @Test(arguments: Lane.allCases)
    func aRouteEditChangesTheDistributionAndABadOneChangesNothing(lane: Lane) async throws {
        let fixture = try await AdminFixture.start(lane: lane)
        defer { Task { await fixture.stop() } }
        let edit = #"{"strategy":"priority","targets":[{"provider":"b","model":"m"},{"provider":"a","model":"m"}]}"#
        let edited = try await fixture.admin(.PUT, "/v1/routes/r", body: edit)
        #expect(edited.status == 200)
        #expect(try await fixture.chat(20) == ["b": 20])
        let snapshot = try await fixture.snapshot()
        #expect(snapshot.configVersion == 2 && snapshot.routes.first?.editedAtRuntime == true && snapshot.routes.first?.strategy == "priority")

        let bad = try await fixture.admin(.PUT, "/v1/routes/r", body: #"{"strategy":"fastest","targets":[{"provider":"zz","model":"m"}]}"#)
        #expect(bad.status == 422)
        #expect(bad.body.contains("unknown strategy 'fastest'") && bad.body.contains("unknown provider 'zz'"))
        #expect(try await fixture.snapshot().configVersion == 2)
        #expect(try await fixture.admin(.PUT, "/v1/routes/nope", body: edit).status == 404)
        #expect(try await fixture.admin(.PUT, "/v1/routes/r", body: "{not json").status == 400)
        try await fixture.expectServed(chats: 20)
    }

    @Test(arguments: Lane.allCases)
    func reloadValidatesTheWholeFileAndSwapsOnlyAGoodOne(lane: Lane) async throws {
        let fixture = try await AdminFixture.start(lane: lane)
        defer { Task { await fixture.stop() } }
        _ = try await fixture.admin(.PUT, "/v1/routes/r", body: #"{"targets":[{"provider":"a","model":"m"}]}"#)

        // A broken file: nothing changes, and the answer says which line and why.
        let broken = AdminFixture.yaml(simulator: fixture.simulator.url, state: fixture.directory + "/state", routes: """
            routes:
              r:
                targets:
                  - { provider: b, model: m, weight: heavy }
            """, lane: fixture.lane)
        try broken.write(toFile: fixture.configPath, atomically: true, encoding: .utf8)
        let rejected = try await fixture.admin(.POST, "/v1/config/reload")
        #expect(rejected.status == 422)
        #expect(rejected.body.contains("line 8") && rejected.body.contains("'heavy' is not a whole number"))
        #expect(try await fixture.chat(10) == ["a": 10], "traffic keeps the running config")

        let good = AdminFixture.yaml(simulator: fixture.simulator.url, state: fixture.directory + "/state", routes: """
            routes:
              r:
                targets: [{ provider: b, model: m }]
              extra:
                targets: [{ provider: a, model: m }]
            """, lane: fixture.lane)
        try good.write(toFile: fixture.configPath, atomically: true, encoding: .utf8)
        let reloaded = try await fixture.admin(.POST, "/v1/config/reload")
        #expect(reloaded.status == 200)
        let report = try AdminJSON.decoder().decode(ReloadReport.self, from: Data(reloaded.body.utf8))
        #expect(report.changes == ["route r: changed (targets)", "route extra: added"])
        #expect(report.discardedEdits == ["r"] && report.needsRestart.isEmpty)
        #expect(try await fixture.chat(10) == ["b": 10])
        let models = try await TestClient.get("\(fixture.gateway.url)/v1/models")
        #expect(models.body.contains(#""id":"extra""#))
        try await fixture.expectServed(chats: 20)
    }

    @Test func flushAnswersWithWhatItRemoved() async throws {
        let fixture = try await AdminFixture.start()
        defer { Task { await fixture.stop() } }
        let flush = try await fixture.admin(.POST, "/v1/cache/flush?route=r")
        #expect(flush.status == 200 && flush.body.contains("0 entries removed") && flush.body.contains("route r"))
    }

    @Test(arguments: Lane.allCases)
    func eventsStreamRequestsAndStateChanges(lane: Lane) async throws {
        let fixture = try await AdminFixture.start(lane: lane)
        defer { Task { await fixture.stop() } }
        let encoded = fixture.socket.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? fixture.socket
        let response = try await TestClient.client.execute(HTTPClientRequest(url: "http+unix://\(encoded)/v1/events"), timeout: .seconds(5))
        #expect(response.headers.first(name: "content-type") == "text/event-stream")
        let reader = Task {
            var seen: [AdminEvent] = []
            var pending = ""
            for try await chunk in response.body {
                pending += String(buffer: chunk)
                while let end = pending.range(of: "\n\n") {
                    let block = pending[..<end.lowerBound]
                    pending = String(pending[end.upperBound...])
                    if block.hasPrefix("data: "), let event = try? AdminJSON.decoder().decode(AdminEvent.self, from: Data(block.dropFirst(6).utf8)) {
                        seen.append(event)
                    }
                }
                if seen.count >= 3 { break }
            }
            return seen
        }
        // The subscription exists once the response head is here: the handler subscribes before answering.
        _ = try await fixture.chat(1)
        _ = try await fixture.admin(.POST, "/v1/providers/b/drain")
        _ = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", TestClient.chat(model: "missing"))
        let events = try await reader.value
        #expect(events.map(\.kind) == [.request, .drained, .request])
        #expect(events.map(\.seq) == [events[0].seq, events[0].seq + 1, events[0].seq + 2])
        #expect(events[0].status == 200 && events[0].route == "r" && events[2].status == 404 && events[2].failure == "caller")
        try await fixture.expectServed(chats: 1, left: 1, because: .unroutable)
    }

    @Test(arguments: Lane.allCases)
    func metricsPassPromtool(lane: Lane) async throws {
        let fixture = try await AdminFixture.start(lane: lane)
        defer { Task { await fixture.stop() } }
        _ = try await fixture.chat(5)
        _ = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", TestClient.chat(model: "r", stream: true))
        _ = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", "{broken")
        let metrics = try await TestClient.get("\(fixture.gateway.url)/metrics")
        #expect(metrics.status == 200)
        #expect(metrics.body.contains(#"switchyard_requests_total{route="r",provider="a",outcome="success"}"#) || metrics.body.contains(#"provider="b",outcome="success""#))
        #expect(metrics.body.contains(#"outcome="caller""#))
        #expect(metrics.body.contains("gen_ai_server_request_duration_seconds_bucket"))
        #expect(metrics.body.contains("gen_ai_server_time_to_first_token_seconds_bucket"))
        #expect(metrics.body.contains(#"gen_ai_token_type="input""#))
        #expect(metrics.body.contains(#"switchyard_breaker_state{provider="a",model="m"} 0"#))

        let lint = try Promtool.check(metrics.body)
        #expect(lint.ok, "promtool: \(lint.report)")
        try await fixture.expectServed(chats: 6, left: 1, because: .invalidBody)
    }

    @Test(arguments: Lane.allCases)
    func traceparentIsPassedOnAndAGarbledOneIsNot(lane: Lane) async throws {
        #expect(TraceContext.isValidTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
        #expect(!TraceContext.isValidTraceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"))
        #expect(!TraceContext.isValidTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"))
        #expect(!TraceContext.isValidTraceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"))
        let upstream = try await HeaderRecorder.start(recording: "traceparent")
        defer { Task { await upstream.service.stop() } }
        var config = GatewayConfig()
        config.server.fastLane = lane == .fast
        config.providers = [ProviderSettings(id: "up", kind: .openAICompatible, baseURL: "\(upstream.service.url)/v1")]
        config.routes = [RouteSettings(alias: "r", targets: [RouteTarget(provider: "up", model: "m")])]
        let gateway = try await RunningService.gateway(config)
        defer { Task { await gateway.stop() } }
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        _ = try await TestClient.post("\(gateway.url)/v1/chat/completions", TestClient.chat(model: "r"), headers: [("traceparent", traceparent)])
        _ = try await TestClient.post("\(gateway.url)/v1/chat/completions", TestClient.chat(model: "r"), headers: [("traceparent", "garbage")])
        #expect(upstream.values == [traceparent, nil])
        try await GatewayOnLane(gateway: gateway, lane: lane).expectServed(chats: 2)
    }
}

/// An OpenAI-compatible upstream that answers every chat with one recorded completion and remembers
/// a header of each request.
final class HeaderRecorder: Sendable {
    let service: RunningService
    private let seen: Seen

    final class Seen: Sendable {
        let values = Mutex<[String?]>([])
    }

    private init(service: RunningService, seen: Seen) {
        self.service = service
        self.seen = seen
    }

    static func start(recording name: String) async throws -> HeaderRecorder {
        let seen = Seen()
        let router = Router()
        let body = #"{"id":"chatcmpl-1","object":"chat.completion","created":0,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#
        let field = HTTPField.Name(name)!
        router.post("/v1/chat/completions") { request, _ in
            seen.values.withLock { $0.append(request.headers[field]) }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
        }
        let service = try await RunningService.serving(router)
        return HeaderRecorder(service: service, seen: seen)
    }

    var values: [String?] { self.seen.values.withLock { $0 } }
}

struct AdminTokenTests {
    @Test func theTCPAdminListenerRequiresItsToken() async throws {
        // An address of its own: a port found free on 127.0.0.1 could be taken by another test's server
        // before the listener binds it (the suite starts many at once).
        let host = "127.0.0.77"
        let port = try await Self.freePort(host: host)
        var config = GatewayConfig()
        config.providers = [ProviderSettings(id: "sim", kind: .simulator, baseURL: nil)]
        config.routes = [RouteSettings(alias: "r", targets: [RouteTarget(provider: "sim", model: "m")])]
        config.server.adminListen = ListenAddress(host: host, port: port)
        config.server.adminToken = Secret("admin-token-0123456789")
        let gateway = try await RunningService.gateway(config)
        defer { Task { await gateway.stop() } }
        let url = "http://\(host):\(port)/v1/snapshot"
        var exchange = Exchange(status: 0, headers: [:], body: "")
        // The TCP listener starts after the gateway reports ready: give it up to 10 s on a busy host.
        for _ in 0..<500 {
            if let answer = try? await TestClient.get(url) {
                exchange = answer
                break
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(exchange.status == 401 && exchange.body.contains("unauthorized"))
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "authorization", value: "Bearer admin-token-0123456789")
        #expect(try await TestClient.send(request).status == 200)
        request.headers.replaceOrAdd(name: "authorization", value: "Bearer admin-token-0123456788")
        #expect(try await TestClient.send(request).status == 401)
    }

    @Test func aTCPListenerWithoutATokenIsAConfigError() {
        #expect(throws: ConfigError.self) {
            try ConfigLoader.load(yaml: "server: { admin_listen: 127.0.0.1:9090 }\n", source: "t.yaml", environment: [:])
        }
    }

    static func freePort(host: String = "127.0.0.1") async throws -> Int {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: host, port: 0).get()
        let port = channel.localAddress?.port ?? 0
        try await channel.close()
        return port
    }
}

struct OperatorActionTests {
    @Test(arguments: Lane.allCases)
    func anOperatorOpensAndResetsABreakerAndItIsAudited(lane: Lane) async throws {
        let fixture = try await AdminFixture.start(lane: lane)
        defer { Task { await fixture.stop() } }
        let opened = try await fixture.admin(.POST, "/v1/providers/a/breaker/open?model=m")
        #expect(try opened.status == 200 && Self.ack(opened).hasPrefix("breaker opened: a/m"), "\(opened.body)")
        #expect(try await fixture.snapshot().targets.first { $0.provider == "a" }?.breaker == "open")
        #expect(try await fixture.chat(20) == ["b": 20], "an open breaker takes no requests")

        let reset = try await fixture.admin(.POST, "/v1/providers/a/breaker/reset")
        #expect(try reset.status == 200 && Self.ack(reset).hasPrefix("breaker reset: a/m closed"), "\(reset.body)")
        #expect(try await fixture.snapshot().targets.first { $0.provider == "a" }?.breaker == "closed")
        #expect(try await fixture.chat(40)["a"] ?? 0 > 0)

        let unknownModel = try await fixture.admin(.POST, "/v1/providers/a/breaker/open?model=zz")
        #expect(unknownModel.status == 404 && unknownModel.body.contains("known: m"), "\(unknownModel.body)")
        #expect(try await fixture.admin(.POST, "/v1/providers/zz/breaker/reset").status == 404)
        let audit = try await fixture.admin(.GET, "/v1/audit")
        let entries = try JSONSerialization.jsonObject(with: Data(audit.body.utf8)) as? [[String: Any]] ?? []
        #expect(entries.compactMap { $0["action"] as? String }.prefix(4) == ["breaker_reset", "breaker_open", "breaker_reset", "breaker_open"])
        #expect(entries.last { $0["action"] as? String == "breaker_open" }?["target"] as? String == "a/m", "the first one, refused later")
    }

    @Test(arguments: Lane.allCases)
    func aTargetFailingBehindAFailoverShowsItsErrorsAndTheirFaultDomain(lane: Lane) async throws {
        let fixture = try await AdminFixture.start(routesYAML: """
            routes:
              r:
                strategy: priority
                targets:
                  - { provider: a, model: "m:fault=500", priority: 0 }
                  - { provider: b, model: m, priority: 1 }
            """, lane: lane)
        defer { Task { await fixture.stop() } }
        #expect(try await fixture.chat(3) == ["b": 3], "every request answered by the failover")
        let snapshot = try await fixture.snapshot()
        let failing = try #require(snapshot.targets.first { $0.provider == "a" })
        #expect(failing.requests1m == 3 && failing.errorRate1m == 1, "its attempts count, though it served none")
        let errors = try #require(failing.recentErrors)
        #expect(errors.count == 3 && errors.allSatisfy { $0.kind == "server_error" && $0.faultDomain == "provider" }, "\(errors)")
        let serving = try #require(snapshot.targets.first { $0.provider == "b" })
        #expect(serving.requests1m == 3 && serving.errorRate1m == 0 && serving.recentErrors == [])
    }

    /// Names from the operator's side are escaped, bounded and answered, never trusted to be sane.
    @Test func oddOrHugeNamesInBreakerAndTenantCallsAreA404() async throws {
        let fixture = try await AdminFixture.start()
        defer { Task { await fixture.stop() } }
        let huge = String(repeating: "x", count: 60_000)
        for path in [
            "/v1/providers/a/breaker/open?model=\(huge)", "/v1/providers/\(huge)/breaker/reset",
            "/v1/providers/a/breaker/open?model=%00%FF%2F..%2F", "/v1/tenants/\(huge)", "/v1/tenants/%2E%2E%2Fetc",
        ] {
            let method: HTTPMethod = path.hasPrefix("/v1/tenants") ? .GET : .POST
            let exchange = try await fixture.admin(method, path)
            #expect([404, 431, 414].contains(exchange.status), "\(path.prefix(60)): \(exchange.status)")
        }
        #expect(try await fixture.snapshot().targets.allSatisfy { $0.breaker == "closed" })
        #expect(try await fixture.chat(4).values.reduce(0, +) == 4, "the gateway still serves")
    }

    static func ack(_ exchange: Exchange) throws -> String {
        try AdminJSON.decoder().decode(AdminAck.self, from: Data(exchange.body.utf8)).message
    }

    @Test(arguments: Lane.allCases)
    func aTenantsDayInDetailHasItsModelsKeysAndRefusals(lane: Lane) async throws {
        let fixture = try await AdminFixture.start(routesYAML: AdminFixture.defaultRoutes + """

            tenants:
              acme:
                limits: { rpm: 3 }
                budget: { daily_usd: 5 }
                keys:
                  web: { key: "sk-sy-testacmeweb00000000000000000000000000" }
                  idle: { key: "sk-sy-testacmeidle0000000000000000000000000" }
            """, lane: lane)
        defer { Task { await fixture.stop() } }
        var statuses: [Int] = []
        for _ in 0..<5 {
            let exchange = try await TestClient.post(
                "\(fixture.gateway.url)/v1/chat/completions", TestClient.chat(model: "r"),
                headers: [("authorization", "Bearer sk-sy-testacmeweb00000000000000000000000000")]
            )
            statuses.append(exchange.status)
        }
        #expect(statuses == [200, 200, 200, 429, 429])

        // The ledger is written in batches: its rows are read once they are in.
        var detail = AdminTenantDetail(name: "", models: [], keys: [], lastRejections: [])
        for _ in 0..<50 {
            detail = try AdminJSON.decoder().decode(AdminTenantDetail.self, from: Data(try await fixture.admin(.GET, "/v1/tenants/acme").body.utf8))
            if detail.keys.first?.requests ?? 0 >= 5 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(detail.models.filter { $0.name.hasSuffix("/m") }.map(\.requests).reduce(0, +) == 3, "\(detail)")
        #expect(detail.models.first { $0.name == GatewayControl.noModel }?.requests == 2, "the refused ones reached no model")
        #expect(detail.keys.map(\.name) == ["web", "idle"], "every live key, the spending one first")
        #expect(detail.keys.first?.requests == 5 && detail.keys.last?.requests == 0 && detail.keys.allSatisfy { $0.keyId != nil }, "the refused ones count for their key")
        #expect(detail.lastRejections.count == 2 && detail.lastRejections.allSatisfy { $0.reason == "rate_limited" && $0.status == 429 })

        let tenant = try #require(try await fixture.snapshot().tenants.first { $0.name == "acme" })
        #expect(tenant.rejectionsByReason == ["rate_limited": 2] && tenant.dailyBudgetUsd == 5)
        let unknown = try await fixture.admin(.GET, "/v1/tenants/nobody")
        #expect(unknown.status == 404 && unknown.body.contains("unknown_tenant"))
    }
}
