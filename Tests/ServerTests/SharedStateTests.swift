import Engine
import Foundation
import RedisTestSupport
import Testing
@testable import Server

/// Two gateways with `state: redis://…` in front of one simulator: replicas of one fleet, whose
/// limits hold across them, and whose answer when Redis is gone follows `on_state_error`.
@Suite(.serialized)
struct SharedStateTests {
    private static let secret = "sk-sy-fleet0123456789abcdef0123456789abcde"

    private func replicas(_ redis: RedisServerProcess, simulator: RunningService, onError: RedisStateSettings.OnError = .deny) async throws -> [RunningService] {
        try await self.controlledReplicas(redis, simulator: simulator, onError: onError).map(\.0)
    }

    private func controlledReplicas(
        _ redis: RedisServerProcess, simulator: RunningService, count: Int = 2, onError: RedisStateSettings.OnError = .deny
    ) async throws -> [(RunningService, GatewayControl)] {
        var config = GatewayConfig()
        config.providers = [ProviderSettings(id: "sim", kind: .simulator, baseURL: "\(simulator.url)/v1")]
        config.routes = [RouteSettings(alias: "r", targets: [RouteTarget(provider: "sim", model: "gpt-4o-mini")])]
        var key = DeclaredKey(name: "ci", secret: Secret(Self.secret))
        key.limits.requestsPerMinute = 10
        var tenant = TenantSettings(name: "acme")
        tenant.keys = [key]
        config.tenants = [tenant]
        var state = try RedisStateSettings.parse("redis://127.0.0.1:\(redis.port)")
        state.onError = onError
        state.timeout = .seconds(2)
        config.state = .redis(state)
        var gateways: [(RunningService, GatewayControl)] = []
        for _ in 0..<count {
            config.server.stateDir = RunningService.temporaryStateDir()
            gateways.append(try await RunningService.controlledGateway(config))
        }
        return gateways
    }

    private func chat(_ gateway: RunningService, path: String = "/v1/chat/completions") async throws -> Exchange {
        let body = path == "/v1/messages"
            ? #"{"model":"r","max_tokens":50,"messages":[{"role":"user","content":"Hello"}]}"#
            : TestClient.chat(model: "r", extra: #","max_tokens":50"#)
        return try await TestClient.post("\(gateway.url)\(path)", body, headers: [("authorization", "Bearer \(Self.secret)")])
    }

    @Test func aKeysRateLimitHoldsAcrossReplicas() async throws {
        let redis = try await RedisServerProcess()
        let simulator = try await RunningService.simulator(SimulatorRouter(settings: SimulatorSettings(timeToFirstToken: .zero, tokensPerSecond: 0)))
        let gateways = try await self.replicas(redis, simulator: simulator)
        defer {
            Task {
                for gateway in gateways { await gateway.stop() }
                await simulator.stop()
            }
        }
        var statuses: [Int] = []
        var refusal: Exchange?
        let started = ContinuousClock.now
        for index in 0..<30 {
            let answer = try await self.chat(gateways[index % 2])
            statuses.append(answer.status)
            if answer.status == 429 { refusal = answer }
        }
        // One limit for the fleet: 10 a minute in all (a burst of 10, then one every 6 s), not 10 a replica.
        let allowance = Int((ContinuousClock.now - started) / .seconds(6))
        let admitted = statuses.filter { $0 == 200 }.count
        #expect(admitted >= 10 && admitted <= 10 + allowance, "\(statuses)")
        #expect(statuses.filter { $0 == 429 }.count == 30 - admitted)
        #expect(refusal?.body.contains("10 requests per minute reached for key 'cfg_acme_ci'") == true)
        #expect(refusal?.headers.first(name: "retry-after") != nil)
        // Admission needs a round trip: such requests are the framework lane's, counted as so.
        for gateway in gateways {
            let counts = try await GatewayOnLane(gateway: gateway, lane: .fast).laneCounts()
            #expect(counts.skipped[FastLaneSkip.limitsElsewhere.rawValue] == 15)
        }
    }

    @Test(arguments: [RedisStateSettings.OnError.deny, .allow])
    func withRedisGoneTheAnswerFollowsThePolicyInTheCallersDialect(policy: RedisStateSettings.OnError) async throws {
        let redis = try await RedisServerProcess()
        let simulator = try await RunningService.simulator(SimulatorRouter(settings: SimulatorSettings(timeToFirstToken: .zero, tokensPerSecond: 0)))
        let gateways = try await self.replicas(redis, simulator: simulator, onError: policy)
        defer {
            Task {
                for gateway in gateways { await gateway.stop() }
                await simulator.stop()
            }
        }
        #expect(try await self.chat(gateways[0]).status == 200)
        redis.stop()
        for path in ["/v1/chat/completions", "/v1/messages"] {
            let answer = try await self.chat(gateways[1], path: path)
            switch policy {
            case .deny:
                #expect(answer.status == 503, "\(answer.body)")
                #expect(answer.headers.first(name: "retry-after") == "1")
                #expect(answer.body.contains("shared state") && answer.body.contains("on_state_error: deny"))
                let error = answer.json["error"] as? [String: Any]
                #expect(error?["type"] as? String == (path == "/v1/messages" ? "overloaded_error" : "server_error"), "\(answer.body)")
            case .allow:
                #expect(answer.status == 200, "\(answer.body)")
            }
        }
        // Redis back: the replicas recover by themselves.
        try await redis.start()
        var recovered = false
        for _ in 0..<200 where !recovered {
            recovered = try await self.chat(gateways[1]).status == 200
            if !recovered { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(recovered)
    }

    @Test func aDrainOnOneReplicaIsTheFleetsAndALaterReplicaStartsDrained() async throws {
        let redis = try await RedisServerProcess()
        let simulator = try await RunningService.simulator(SimulatorRouter(settings: SimulatorSettings(timeToFirstToken: .zero, tokensPerSecond: 0)))
        var replicas = try await self.controlledReplicas(redis, simulator: simulator)
        defer {
            let stopping = replicas
            Task {
                for (gateway, _) in stopping { await gateway.stop() }
                await simulator.stop()
            }
        }
        // Each replica subscribed before the drain (the first reconcile sees nothing drained).
        try await self.eventually { try await redis.subscribers(FleetSync.channel) == 2 }
        #expect(replicas[0].1.drain("sim", by: "test"))
        try await self.eventually { replicas[1].1.targets().allSatisfy(\.drained) }
        #expect(try await self.chat(replicas[1].0).status == 503)

        // Started after the drain: it reads the fleet's state when it subscribes.
        replicas += try await self.controlledReplicas(redis, simulator: simulator, count: 1)
        try await self.eventually { replicas[2].1.targets().allSatisfy(\.drained) }

        #expect(replicas[2].1.undrain("sim"))
        for (_, control) in replicas {
            try await self.eventually { control.targets().allSatisfy { !$0.drained } }
        }
        #expect(try await self.chat(replicas[0].0).status == 200)
    }

    @Test func everyReplicaBeatsIntoTheFleetsRollCall() async throws {
        let redis = try await RedisServerProcess()
        let simulator = try await RunningService.simulator(SimulatorRouter(settings: SimulatorSettings(timeToFirstToken: .zero, tokensPerSecond: 0)))
        let replicas = try await self.controlledReplicas(redis, simulator: simulator)
        defer {
            Task {
                for (gateway, _) in replicas { await gateway.stop() }
                await simulator.stop()
            }
        }
        _ = try await self.chat(replicas[0].0)
        try await self.eventually { await replicas[1].1.snapshot().fleet?.count == 2 }
        let fleet = try #require(await replicas[1].1.snapshot().fleet)
        #expect(Set(fleet.map(\.id)).count == 2)
        #expect(Set(fleet.map(\.address)) == Set(replicas.map { "127.0.0.1:\($0.0.port)" }))
        #expect(fleet.allSatisfy { $0.version == GatewayVersion.current && $0.configDigest == "environment" && $0.lastSeenSecondsAgo < 10 })
        try await self.eventually { await replicas[1].1.snapshot().fleet?.first { $0.address.hasSuffix(":\(replicas[0].0.port)") }?.requestsLastMinute == 1 }
    }

    /// Retries `check` until it holds, for at most 10 s.
    private func eventually(_ check: () async throws -> Bool) async throws {
        for _ in 0..<200 {
            if (try? await check()) == true { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("not within 10 s")
    }
}
