import AsyncHTTPClient
import Engine
import Foundation
import NIOCore
import Testing
@testable import Server

/// A gateway with tenants in front of one simulator, its state dir kept for a look at the ledger.
struct TenancyFixture: LaneFixture {
    let simulator: RunningService
    let gateway: RunningService
    let control: GatewayControl
    let stateDir: String
    let lane: Lane

    static func start(
        anonymous: Bool = false, price: TokenPrice? = nil, lane: Lane = .fast, configure: (inout GatewayConfig) -> Void = { _ in }
    ) async throws -> TenancyFixture {
        let simulator = try await RunningService.simulator(SimulatorRouter(settings: SimulatorSettings(timeToFirstToken: .zero, tokensPerSecond: 0)))
        var config = GatewayConfig()
        config.server.anonymous = anonymous
        config.server.fastLane = lane == .fast
        config.server.stateDir = RunningService.temporaryStateDir()
        config.providers = [ProviderSettings(id: "sim", kind: .simulator, baseURL: "\(simulator.url)/v1")]
        config.routes = [
            RouteSettings(alias: "r", targets: [RouteTarget(provider: "sim", model: "gpt-4o-mini", price: price)]),
            RouteSettings(alias: "other", targets: [RouteTarget(provider: "sim", model: "m", price: price)]),
        ]
        configure(&config)
        let (gateway, control) = try await RunningService.controlledGateway(config)
        return TenancyFixture(simulator: simulator, gateway: gateway, control: control, stateDir: config.server.stateDir, lane: lane)
    }

    func key(_ request: KeyRequest) async throws -> String {
        try await self.control.createKey(request).key
    }

    func chat(key: String?, model: String = "r", extra: String = #","max_tokens":100"#) async throws -> Exchange {
        try await TestClient.post(
            "\(self.gateway.url)/v1/chat/completions", TestClient.chat(model: model, extra: extra),
            headers: key.map { [("authorization", "Bearer \($0)")] } ?? []
        )
    }

    func stop() async {
        await self.gateway.stop()
        await self.simulator.stop()
    }
}

struct TenancyTests {
    @Test(arguments: Lane.allCases)
    func aRequestThatFailsWithoutAnAnswerGivesItsReservationBack(lane: Lane) async throws {
        // No upstream listens: every attempt fails before any answer (a 502 after admission).
        let fixture = try await TenancyFixture.start(lane: lane) { config in
            config.providers.append(ProviderSettings(id: "dead", kind: .openAICompatible, baseURL: "http://127.0.0.1:1/v1"))
            config.routes.append(RouteSettings(alias: "gone", targets: [RouteTarget(provider: "dead", model: "m")]))
        }
        defer { Task { await fixture.stop() } }
        var request = KeyRequest(tenant: "acme", name: "ci")
        request.concurrency = 1
        let key = try await fixture.key(request)
        for _ in 0..<3 {
            // With the slot kept by the failed request before it, the next would be refused (429).
            #expect(try await fixture.chat(key: key, model: "gone").status == 502)
        }
        let usage = await fixture.control.tenants(fixture.control.state.routing.config).first { $0.name == "acme" }
        #expect(usage?.requestsToday == 3)
        try await fixture.expectServed(chats: 3)
    }

    @Test(arguments: Lane.allCases)
    func keysAreRequiredCheckedAndRevocable(lane: Lane) async throws {
        let fixture = try await TenancyFixture.start(price: TokenPrice(input: 0.15, output: 0.6), lane: lane)
        defer { Task { await fixture.stop() } }
        let missing = try await fixture.chat(key: nil)
        #expect(missing.status == 401 && (missing.json["error"] as? [String: Any])?["code"] as? String == "invalid_api_key")
        let anthropic = try await TestClient.post(
            "\(fixture.gateway.url)/v1/messages", #"{"model":"r","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#,
            headers: [("x-api-key", "sk-sy-thisIsNotAKeyOfOurs000000000000000000")]
        )
        #expect(anthropic.status == 401 && (anthropic.json["error"] as? [String: Any])?["type"] as? String == "authentication_error")

        var request = KeyRequest(tenant: "acme", name: "ci")
        request.rpm = 100
        let key = try await fixture.key(request)
        #expect(key.hasPrefix("sk-sy-") && key.count == 46)
        let ok = try await fixture.chat(key: key)
        #expect(ok.status == 200)
        #expect(ok.headers.first(name: "x-ratelimit-limit-requests") == "100" && ok.headers.first(name: "x-ratelimit-remaining-requests") == "99")
        #expect(Double(ok.headers.first(name: "x-switchyard-cost-usd") ?? "") ?? 0 > 0, "the route prices its target")
        // The store keeps a hash, never the key.
        let listed = fixture.control.keys()
        #expect(listed.count == 1 && listed[0].prefix == String(key.prefix(12)))

        let revoked = try await fixture.control.revokeKey(listed[0].prefix)
        #expect(revoked.message.contains("revoked"))
        let after = try await fixture.chat(key: key)
        #expect(after.status == 401 && after.body.contains("was revoked"))
        // A refused credential is the framework's to answer: the key that works is the fast lane's.
        try await fixture.expectServed(chats: 1, left: 3, because: .callerRefused)
    }

    @Test(arguments: Lane.allCases)
    func modelsOutsideAKeysListAre403(lane: Lane) async throws {
        let fixture = try await TenancyFixture.start(lane: lane)
        defer { Task { await fixture.stop() } }
        var request = KeyRequest(tenant: "acme")
        request.models = ["r"]
        let key = try await fixture.key(request)
        #expect(try await fixture.chat(key: key).status == 200)
        let refused = try await fixture.chat(key: key, model: "other")
        #expect(refused.status == 403 && refused.body.contains("not allowed for key"))
        try await fixture.expectServed(chats: 2)
    }

    @Test(arguments: Lane.allCases)
    func anonymousUseStaysPossibleWhereAllowedButOurKeysAreStillChecked(lane: Lane) async throws {
        let fixture = try await TenancyFixture.start(anonymous: true, lane: lane)
        defer { Task { await fixture.stop() } }
        #expect(try await fixture.chat(key: nil).status == 200)
        #expect(try await fixture.chat(key: "unused-locally").status == 200)
        #expect(try await fixture.chat(key: "sk-sy-forged0000000000000000000000000000000000").status == 401)
        try await fixture.expectServed(chats: 2, left: 1, because: .callerRefused)
    }

    /// 200 concurrent requests against a $1.00 budget: the reservations keep the settled total within it.
    @Test(arguments: Lane.allCases)
    func concurrentRequestsNeverOverspendABudget(lane: Lane) async throws {
        let fixture = try await TenancyFixture.start(price: TokenPrice(input: 1_000, output: 1_000), lane: lane) { config in
            var tenant = TenantSettings(name: "acme")
            tenant.limits.dailyBudgetUSD = 1
            config.tenants = [tenant]
        }
        defer { Task { await fixture.stop() } }
        let key = try await fixture.key(KeyRequest(tenant: "acme"))
        let results = try await withThrowingTaskGroup(of: (Int, Double).self) { group in
            for _ in 0..<200 {
                group.addTask {
                    let exchange = try await fixture.chat(key: key)
                    return (exchange.status, Double(exchange.headers.first(name: "x-switchyard-cost-usd") ?? "0") ?? 0)
                }
            }
            var all: [(Int, Double)] = []
            for try await result in group { all.append(result) }
            return all
        }
        let admitted = results.filter { $0.0 == 200 }
        let refused = results.filter { $0.0 == 429 }
        #expect(admitted.count + refused.count == 200)
        #expect(!admitted.isEmpty && !refused.isEmpty)
        var charged = admitted.map(\.1).reduce(0, +)
        #expect(charged <= 1.0, "charged \(charged)")
        // Then one at a time until the budget refuses: it is used up to less than one worst case
        // (about $0.13 here) short of the limit, never past it.
        var oneAtATime = 0
        for _ in 0..<100 {
            oneAtATime += 1
            let exchange = try await fixture.chat(key: key)
            guard exchange.status == 200 else {
                #expect(exchange.status == 429 && exchange.body.contains("Daily budget of $1.0"))
                break
            }
            charged += Double(exchange.headers.first(name: "x-switchyard-cost-usd") ?? "0") ?? 0
        }
        #expect(charged <= 1.0 && charged > 0.8, "charged \(charged)")
        // Settlement runs just after each answer: give it a moment, then the tenant's books agree.
        try await Task.sleep(for: .milliseconds(200))
        let acme = try #require(await fixture.control.snapshot().tenants.first { $0.name == "acme" })
        #expect(acme.costTodayUsd <= 1.0 && abs(acme.costTodayUsd - charged) < 1e-6)
        #expect(acme.limitRejections == refused.count + 1)
        try await fixture.expectServed(chats: 200 + oneAtATime)
    }

    /// A 60-requests-a-minute key hammered by 20 clients: GCRA admits the burst and then one a second.
    @Test(arguments: Lane.allCases)
    func aRequestsPerMinuteLimitHoldsUnderConcurrency(lane: Lane) async throws {
        let fixture = try await TenancyFixture.start(lane: lane)
        defer { Task { await fixture.stop() } }
        var request = KeyRequest(tenant: "acme")
        request.rpm = 60
        let key = try await fixture.key(request)
        let started = ContinuousClock.now
        let statuses = try await withThrowingTaskGroup(of: [Int].self) { group in
            for _ in 0..<20 {
                group.addTask {
                    var seen: [Int] = []
                    for _ in 0..<15 { seen.append(try await fixture.chat(key: key).status) }
                    return seen
                }
            }
            var all: [Int] = []
            for try await seen in group { all += seen }
            return all
        }
        let elapsed = (ContinuousClock.now - started).seconds
        let admitted = statuses.filter { $0 == 200 }.count
        #expect(statuses.count == 300 && Set(statuses).isSubset(of: [200, 429]))
        #expect(admitted >= 60 && Double(admitted) <= 60 + elapsed + 1, "admitted \(admitted) in \(elapsed) s")
        try await fixture.expectServed(chats: 300)
    }

    @Test(arguments: Lane.allCases)
    func everyRequestGetsExactlyOneLedgerRowByShutdown(lane: Lane) async throws {
        let fixture = try await TenancyFixture.start(anonymous: true, lane: lane)
        let key = try await fixture.key(KeyRequest(tenant: "acme"))
        var ids: [String] = []
        for index in 0..<40 {
            let exchange = index % 4 == 0 ? try await fixture.chat(key: nil, model: "missing") : try await fixture.chat(key: key)
            ids.append(exchange.headers.first(name: "x-request-id") ?? "")
        }
        try await fixture.expectServed(chats: 30, left: 10, because: .unroutable)
        await fixture.stop()
        let store = try Store(path: fixture.stateDir + "/switchyard.sqlite")
        let rows = try await store.pool.read { db in try LedgerRow.fetchAll(db) }
        #expect(rows.count == 40)
        #expect(Set(rows.map(\.requestId)) == Set(ids))
        #expect(rows.filter { $0.status == 404 }.count == 10 && rows.filter { $0.tenant == "acme" && $0.outcome == "success" }.count == 30)
        #expect(rows.filter { $0.status == 200 }.allSatisfy { $0.costUsd == 0 && $0.outputTokens > 0 && $0.keyId != nil }, "the simulator is free")
        let integrity = try await store.pool.read { db in try String.fetchOne(db, sql: "PRAGMA integrity_check") }
        #expect(integrity == "ok")
        try? FileManager.default.removeItem(atPath: fixture.stateDir)
    }

    /// Between two tokens of a slow stream the gateway only waits on the upstream; a hang-up then is
    /// still noticed at once (the request accounted as the caller's), not at the next token 5 s later.
    @Test(arguments: Lane.allCases, ["/v1/chat/completions", "/v1/messages"])
    func aHangUpBetweenTwoSlowTokensIsNoticedAtOnce(lane: Lane, path: String) async throws {
        let fixture = try await TenancyFixture.start(anonymous: true, lane: lane) { config in
            config.routes.append(RouteSettings(alias: "slow", targets: [RouteTarget(provider: "sim", model: "m:tps=0.2")]))
        }
        let body = path == "/v1/messages"
            ? #"{"model":"slow","max_tokens":20,"stream":true,"messages":[{"role":"user","content":"Hello there"}]}"#
            : TestClient.chat(model: "slow", stream: true)
        let (firstBytes, arrived) = AsyncStream<Void>.makeStream()
        let reader = Task {
            var request = HTTPClientRequest(url: "\(fixture.gateway.url)\(path)")
            request.method = .POST
            request.headers.add(name: "x-request-id", value: "slow-hangup")
            request.body = .bytes(ByteBuffer(string: body))
            let response = try await TestClient.client.execute(request, timeout: .seconds(30))
            for try await _ in response.body { arrived.yield() }
        }
        var received = firstBytes.makeAsyncIterator()
        _ = await received.next()
        reader.cancel()
        let store = try Store(path: fixture.stateDir + "/switchyard.sqlite")
        var row: LedgerRow?
        for _ in 0..<100 where row == nil {
            try await Task.sleep(for: .milliseconds(20))
            row = try await store.pool.read { db in try LedgerRow.fetchAll(db) }.first { $0.requestId == "slow-hangup" }
        }
        #expect(row?.status == 499, "no row within 2 s of the hang-up: \(String(describing: row))")
        await fixture.stop()
    }

    /// The whole-answer counterpart of `FastLaneTests.aClientThatHangsUpMidStreamLeavesItsLedgerRow`:
    /// hung up on while the upstream (one that never answers) has not answered yet, the upstream
    /// request is cancelled and the request accounted as the caller's.
    @Test(arguments: Lane.allCases)
    func aClientThatHangsUpBeforeTheAnswerCancelsTheUpstreamRequestAndLeavesItsLedgerRow(lane: Lane) async throws {
        let upstream = try await ScriptedUpstream(.init(answers: false))
        let fixture = try await TenancyFixture.start(anonymous: true, lane: lane) { config in
            config.providers.append(ProviderSettings(id: "silent", kind: .openAICompatible, baseURL: "http://127.0.0.1:\(upstream.port)/v1"))
            config.routes.append(RouteSettings(alias: "quiet", targets: [RouteTarget(provider: "silent", model: "m")]))
        }
        let client = Task {
            try await TestClient.post(
                "\(fixture.gateway.url)/v1/chat/completions", TestClient.chat(model: "quiet"), headers: [("x-request-id", "hangup-whole")]
            )
        }
        for _ in 0..<100 where upstream.openConnections == 0 { try await Task.sleep(for: .milliseconds(20)) }
        #expect(upstream.openConnections == 1)
        client.cancel()
        // The first-byte timeout is 60 s; only the hang-up can end the upstream request this soon.
        for _ in 0..<100 where upstream.openConnections > 0 { try await Task.sleep(for: .milliseconds(20)) }
        #expect(upstream.openConnections == 0)
        try await fixture.expectServed(chats: 1)
        await fixture.stop()
        await upstream.stop()
        let store = try Store(path: fixture.stateDir + "/switchyard.sqlite")
        let row = try await store.pool.read { db in try LedgerRow.fetchAll(db) }.first { $0.requestId == "hangup-whole" }
        #expect(row?.status == 499 && row?.outcome == FaultDomain.caller.rawValue, "\(String(describing: row))")
        try? FileManager.default.removeItem(atPath: fixture.stateDir)
    }
}
