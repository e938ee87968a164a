import AsyncHTTPClient
import Engine
import Foundation
import NIOCore
import Testing
@testable import Server

/// Several simulated providers (all served by one simulator on loopback, told apart by their ids)
/// behind one gateway whose routes a test writes.
struct RoutingFixture: LaneFixture {
    let router: SimulatorRouter
    let simulator: RunningService
    let gateway: RunningService
    let control: GatewayControl
    let lane: Lane

    static func start(
        providers: [String] = ["a", "b", "c"],
        timeouts: UpstreamTimeouts = UpstreamTimeouts(),
        lane: Lane = .fast,
        configure: (inout GatewayConfig) -> Void
    ) async throws -> RoutingFixture {
        let router = SimulatorRouter(settings: SimulatorSettings(timeToFirstToken: .zero, tokensPerSecond: 0))
        let simulator = try await RunningService.simulator(router)
        var config = GatewayConfig()
        config.server.fastLane = lane == .fast
        config.providers = providers.map { ProviderSettings(id: $0, kind: .simulator, baseURL: "\(simulator.url)/v1", timeouts: timeouts) }
        configure(&config)
        let (gateway, control) = try await RunningService.controlledGateway(config)
        return RoutingFixture(router: router, simulator: simulator, gateway: gateway, control: control, lane: lane)
    }

    static func route(_ alias: String, _ targets: [(String, String)], strategy: RouteStrategy = .priority) -> RouteSettings {
        RouteSettings(alias: alias, targets: targets.map { RouteTarget(provider: $0.0, model: $0.1) }, strategy: strategy)
    }

    /// The route `r` over `(provider, upstream model)` targets.
    static func route(_ targets: [(String, String)], strategy: RouteStrategy = .priority) -> RouteSettings {
        self.route("r", targets, strategy: strategy)
    }

    func chat(_ model: String = "r", stream: Bool = false, headers: [(String, String)] = []) async throws -> Exchange {
        try await TestClient.post("\(self.gateway.url)/v1/chat/completions", TestClient.chat(model: model, stream: stream), headers: headers)
    }

    /// The state of `provider`'s target (its first, unless `model` says which).
    func status(_ provider: String, model: String? = nil) -> TargetStatus? {
        self.control.targets().first { $0.target.provider == provider && (model == nil || $0.target.model == model) }
    }

    func stop() async {
        await self.gateway.stop()
        await self.simulator.stop()
    }
}

extension Exchange {
    var provider: String? { self.headers.first(name: "x-switchyard-provider") }
    var attempts: Int? { self.headers.first(name: "x-switchyard-attempts").flatMap { Int($0) } }
}

struct FailoverTests {
    @Test(arguments: Lane.allCases)
    func aTargetFailing30PercentCostsClientsNothing(lane: Lane) async throws {
        let fixture = try await RoutingFixture.start(lane: lane) { config in
            var route = RoutingFixture.route([("a", "m:fault=503:fault-rate=0.3"), ("b", "m"), ("c", "m")], strategy: .weighted)
            route.retry = RetryPolicy(attempts: 3, backoff: .milliseconds(5), maxBackoff: .milliseconds(20))
            config.routes = [route]
            // Keep the flaky target in rotation, so the retries (not the breaker) are what is tested.
            config.providers[0].breaker = BreakerPolicy(consecutiveFailures: 1_000, errorRate: 1, minimumRequests: 1_000)
        }
        defer { Task { await fixture.stop() } }
        let results = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            var all: [(Int, Int)] = []
            for index in 0..<240 {
                // Eight at a time.
                if index >= 8, let result = try await group.next() { all.append(result) }
                group.addTask {
                    let exchange = try await fixture.chat()
                    return (exchange.status, exchange.attempts ?? 0)
                }
            }
            while let result = try await group.next() { all.append(result) }
            return all
        }
        #expect(results.count == 240)
        let statuses = results.map(\.0)
        #expect(statuses.allSatisfy { $0 == 200 }, "errors seen: \(statuses.filter { $0 != 200 })")
        let a = try #require(fixture.status("a"))
        #expect(a.failures > 5, "the fault should have hit some of a's \(a.requests) requests")
        #expect(results.contains { $0.1 > 1 }, "some requests should have needed a second attempt")
        try await fixture.expectServed(chats: 240)
    }

    @Test(arguments: Lane.allCases)
    func aRateLimitedTargetRestsForItsRetryAfter(lane: Lane) async throws {
        let fixture = try await RoutingFixture.start(lane: lane) { config in
            config.routes = [RoutingFixture.route([("a", "m:fault=429:retry-after=5"), ("b", "m")])]
        }
        defer { Task { await fixture.stop() } }
        let first = try await fixture.chat()
        #expect(first.status == 200 && first.provider == "b" && first.attempts == 2)
        let resting = try #require(fixture.status("a"))
        #expect(resting.unavailable == "resting")
        #expect((resting.restingSeconds ?? 0) > 3 && (resting.restingSeconds ?? 9) <= 5)
        // While it rests, nobody is sent there: b answers at once (requests sent well before the rest
        // ends; a loaded machine may send fewer than ten).
        let restEnds = ContinuousClock.now + .milliseconds(Int64((resting.restingSeconds ?? 0) * 1000)) - .seconds(1)
        var whileResting = 0
        while whileResting < 10, ContinuousClock.now < restEnds {
            let exchange = try await fixture.chat()
            #expect(exchange.provider == "b" && exchange.attempts == 1)
            whileResting += 1
        }
        #expect(whileResting > 0 && fixture.status("a")?.requests == 1)
        try await Task.sleep(for: .milliseconds(5_100))
        _ = try await fixture.chat()
        #expect(fixture.status("a")?.requests == 2, "after the rest, a is tried again")
        try await fixture.expectServed(chats: 2 + whileResting)
    }

    @Test(arguments: Lane.allCases)
    func aStalledProviderTimesOutAndFailsOverWithinTheDeadline(lane: Lane) async throws {
        let fixture = try await RoutingFixture.start(timeouts: UpstreamTimeouts(firstByte: .milliseconds(300), idle: .milliseconds(300)), lane: lane) { config in
            var route = RoutingFixture.route([("a", "m:fault=stall:stall=10s"), ("b", "m")])
            route.retry.deadline = .seconds(5)
            var streamed = RoutingFixture.route("s", [("a", "m:ttft=10s"), ("b", "m")])
            streamed.retry.deadline = .seconds(5)
            config.routes = [route, streamed]
            // Only a is on a short fuse: b answering late on a loaded machine is not what is tested.
            for index in config.providers.indices where config.providers[index].id != "a" {
                config.providers[index].timeouts = UpstreamTimeouts()
            }
        }
        defer { Task { await fixture.stop() } }
        let exchange = try await fixture.chat()
        #expect(exchange.status == 200 && exchange.provider == "b" && exchange.attempts == 2)
        // A stream whose first token never comes fails over too: nothing had reached the client yet.
        let stream = try await fixture.chat("s", stream: true)
        #expect(stream.status == 200 && stream.provider == "b", "\(stream.status) from \(stream.provider ?? "-"): \(stream.body)")
        #expect(stream.events.last == "[DONE]")
        #expect(fixture.status("a")?.lastError?.contains("timeout") == true)
        try await fixture.expectServed(chats: 2)
    }

    @Test(arguments: Lane.allCases)
    func aCutAfterTheFirstByteEndsTheStreamWithAnErrorAndIsNotRetried(lane: Lane) async throws {
        let fixture = try await RoutingFixture.start(lane: lane) { config in
            config.routes = [RoutingFixture.route([("a", "m:fault=cut"), ("b", "m")])]
        }
        defer { Task { await fixture.stop() } }
        let exchange = try await fixture.chat(stream: true)
        #expect(exchange.status == 200 && exchange.provider == "a" && exchange.attempts == 1)
        #expect(exchange.events.last?.contains(#""error""#) == true)
        #expect(!exchange.events.contains("[DONE]"))
        #expect(fixture.status("b")?.requests == 0)
        // It counts against a: the stream failed.
        #expect(fixture.status("a")?.failures == 1)
        try await fixture.expectServed(chats: 1)
    }

    @Test(arguments: Lane.allCases)
    func drainSendsNothingNewWhileInFlightRequestsFinish(lane: Lane) async throws {
        let fixture = try await RoutingFixture.start(lane: lane) { config in
            config.routes = [RoutingFixture.route([("a", "m:tps=40"), ("b", "m")])]
        }
        defer { Task { await fixture.stop() } }
        // Three slow streams on a (about a second each), then drain a while they run.
        let running = (0..<3).map { _ in Task { try await fixture.chat(stream: true) } }
        for _ in 0..<100 where (fixture.status("a")?.inFlight ?? 0) < 3 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(fixture.status("a")?.inFlight == 3)
        #expect(fixture.control.drain("a"))
        for _ in 0..<10 {
            let exchange = try await fixture.chat()
            #expect(exchange.status == 200 && exchange.provider == "b")
        }
        for task in running {
            let exchange = try await task.value
            #expect(exchange.provider == "a" && exchange.events.last == "[DONE]")
        }
        let drained = try #require(fixture.status("a"))
        #expect(drained.drained && drained.unavailable == "drained" && drained.requests == 3 && drained.inFlight == 0)
        #expect(!fixture.control.drain("nope"))
        fixture.control.undrain("a")
        #expect(try await fixture.chat().provider == "a")
        try await fixture.expectServed(chats: 14)
    }

    @Test func aHedgedRouteBeatsASlowTarget() async throws {
        let fixture = try await RoutingFixture.start { config in
            var route = RoutingFixture.route([("a", "m:ttft=3s"), ("b", "m")])
            route.hedge = HedgePolicy(initialDelay: .milliseconds(150))
            config.routes = [route]
        }
        defer { Task { await fixture.stop() } }
        for stream in [false, true] {
            let exchange = try await fixture.chat(stream: stream)
            #expect(exchange.status == 200 && exchange.provider == "b")
            #expect(exchange.headers.first(name: "x-switchyard-hedged") == "true" && exchange.attempts == 2)
        }
        // The loser was cancelled, not judged: no failure counts against it, and it holds nothing.
        for _ in 0..<100 where (fixture.status("a")?.inFlight ?? 0) > 0 { try await Task.sleep(for: .milliseconds(10)) }
        let a = try #require(fixture.status("a"))
        #expect(a.failures == 0 && a.inFlight == 0 && a.breaker == "closed")
    }

    @Test(arguments: Lane.allCases)
    func aFailingTargetOpensItsBreakerAndIsSkipped(lane: Lane) async throws {
        let fixture = try await RoutingFixture.start(lane: lane) { config in
            var route = RoutingFixture.route([("a", "m:fault=500"), ("b", "m")])
            route.retry.backoff = .milliseconds(1)
            config.routes = [route]
            config.providers[0].breaker = BreakerPolicy(consecutiveFailures: 3, openDuration: .seconds(30))
        }
        defer { Task { await fixture.stop() } }
        for _ in 0..<3 {
            let exchange = try await fixture.chat()
            #expect(exchange.status == 200 && exchange.provider == "b" && exchange.attempts == 2)
        }
        #expect(fixture.status("a")?.breaker == "open")
        let skipped = try await fixture.chat()
        #expect(skipped.provider == "b" && skipped.attempts == 1)
        #expect(fixture.status("a")?.requests == 3)
        try await fixture.expectServed(chats: 4)
    }

    @Test(arguments: Lane.allCases)
    func outOfQuotaIsNotRetriedThereAndContextOverflowGoesToTheLargerRoute(lane: Lane) async throws {
        let fixture = try await RoutingFixture.start(lane: lane) { config in
            var small = RoutingFixture.route("small", [("a", "m:fault=context")])
            small.contextFallback = "large"
            config.routes = [
                RoutingFixture.route("quota", [("a", "m:fault=quota"), ("b", "m")]),
                small,
                RoutingFixture.route("large", [("c", "m-long")]),
            ]
        }
        defer { Task { await fixture.stop() } }
        let quota = try await fixture.chat("quota")
        #expect(quota.status == 200 && quota.provider == "b" && quota.attempts == 2)
        let a = try #require(fixture.status("a", model: "m:fault=quota"))
        #expect(a.unavailable == "resting" && (a.restingSeconds ?? 0) > 200)
        #expect(a.failures == 0, "running out of quota says nothing about the target's health")

        let long = try await fixture.chat("small")
        #expect(long.status == 200 && long.provider == "c" && long.json["model"] as? String == "m-long")
        try await fixture.expectServed(chats: 2)
    }

    @Test(arguments: Lane.allCases)
    func everyTargetDownIsA503WithRetryAfterInTheCallersDialect(lane: Lane) async throws {
        let fixture = try await RoutingFixture.start(lane: lane) { config in
            config.routes = [RoutingFixture.route([("a", "m")])]
        }
        defer { Task { await fixture.stop() } }
        fixture.control.drain("a")
        let openAI = try await fixture.chat()
        #expect(openAI.status == 503)
        #expect((openAI.json["error"] as? [String: Any])?["code"] as? String == "no_healthy_target")
        let anthropic = try await TestClient.post(
            "\(fixture.gateway.url)/v1/messages", #"{"model":"r","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#
        )
        #expect(anthropic.status == 503)
        #expect((anthropic.json["error"] as? [String: Any])?["type"] as? String == "overloaded_error")
        // With no target to plan, the fast lane leaves both requests to the framework, which answers the 503s.
        try await fixture.expectServed(chats: 0, left: 2, because: .unroutable)
    }

    @Test(arguments: Lane.allCases)
    func rulesPickTheRouteByHeaderAndModelPattern(lane: Lane) async throws {
        let fixture = try await RoutingFixture.start(lane: lane) { config in
            config.routes = [RoutingFixture.route("r", [("a", "m")]), RoutingFixture.route("local", [("c", "small")])]
            var byHeader = RuleConditions()
            byHeader.headers = ["x-team": "data-*"]
            var byName = RuleConditions()
            byName.model = "classify-*"
            config.rules = [RouteRule(conditions: byHeader, route: "local"), RouteRule(conditions: byName, route: "local")]
        }
        defer { Task { await fixture.stop() } }
        #expect(try await fixture.chat().provider == "a")
        #expect(try await fixture.chat(headers: [("x-team", "data-science")]).provider == "c")
        let classified = try await fixture.chat("classify-tickets")
        #expect(classified.status == 200 && classified.provider == "c" && classified.json["model"] as? String == "small")
        try await fixture.expectServed(chats: 3)
    }

    @Test(arguments: Lane.allCases)
    func aFailingHealthCheckTakesTheProviderOutOfRotation(lane: Lane) async throws {
        let fixture = try await RoutingFixture.start(lane: lane) { config in
            config.routes = [RoutingFixture.route([("a", "m"), ("b", "m")])]
            config.providers[0].healthCheck = HealthCheckSettings(interval: .milliseconds(50), path: "/no-such-path")
            config.providers[1].healthCheck = HealthCheckSettings(interval: .milliseconds(50))
        }
        defer { Task { await fixture.stop() } }
        for _ in 0..<200 where fixture.status("a")?.unavailable == nil { try await Task.sleep(for: .milliseconds(10)) }
        #expect(fixture.status("a")?.unavailable == "health_check_failing")
        #expect(fixture.status("b")?.unavailable == nil)
        let exchange = try await fixture.chat()
        #expect(exchange.provider == "b" && exchange.attempts == 1)
        try await fixture.expectServed(chats: 1)
    }

    @Test(arguments: Lane.allCases)
    func leastBusyPrefersTheBackendThatReportsAnIdleQueue(lane: Lane) async throws {
        // Two vLLM-like backends; the first is kept busy by other clients the gateway does not see
        // (for longer than the test can take on a loaded machine).
        let busyRouter = SimulatorRouter(settings: SimulatorSettings(timeToFirstToken: .zero, tokensPerSecond: 0))
        let busy = try await RunningService.simulator(busyRouter)
        let fixture = try await RoutingFixture.start(providers: ["idle"], lane: lane) { config in
            var busyProvider = ProviderSettings(id: "busy", kind: .simulator, baseURL: "\(busy.url)/v1")
            busyProvider.loadPoll = .milliseconds(50)
            config.providers[0].loadPoll = .milliseconds(50)
            config.providers.append(busyProvider)
            config.routes = [RoutingFixture.route([("busy", "m"), ("idle", "m")], strategy: .leastBusy)]
        }
        defer {
            Task {
                await fixture.stop()
                await busy.stop()
            }
        }
        let others = (0..<4).map { _ in
            Task { try await TestClient.post("\(busy.url)/v1/chat/completions", TestClient.chat(model: "m:ttft=30s", stream: true)) }
        }
        for _ in 0..<200 where (fixture.status("busy")?.reportedQueue ?? 0) < 4 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(fixture.status("busy")?.reportedQueue == 4)
        for _ in 0..<20 {
            #expect(try await fixture.chat().provider == "idle")
        }
        for task in others { task.cancel() }
        try await fixture.expectServed(chats: 20)
    }
}
