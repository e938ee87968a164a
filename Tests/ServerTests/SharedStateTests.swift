import Engine
import Foundation
import NIOPosix
import Redis
import RedisTestSupport
import Testing
@testable import Server

/// Replicas of one fleet: gateways with `state: redis://…` on one redis-server, in front of one
/// simulator, sharing a declared key limited to 10 requests a minute.
final class FleetFixture: @unchecked Sendable {
    static let secret = "sk-sy-fleet0123456789abcdef0123456789abcde"

    let redis: RedisServerProcess
    let simulator: RunningService
    private let config: GatewayConfig
    /// Every replica started, in order; only the test's task touches it.
    private(set) var replicas: [(gateway: RunningService, control: GatewayControl)] = []

    private init(redis: RedisServerProcess, simulator: RunningService, config: GatewayConfig) {
        self.redis = redis
        self.simulator = simulator
        self.config = config
    }

    static func start(
        replicas count: Int = 2, onError: RedisStateSettings.OnError = .deny, lane: Lane = .fast, configure: (inout GatewayConfig) -> Void = { _ in }
    ) async throws -> FleetFixture {
        let redis = try await RedisServerProcess()
        let simulator = try await RunningService.simulator(SimulatorRouter(settings: SimulatorSettings(timeToFirstToken: .zero, tokensPerSecond: 0)))
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
        config.server.fastLane = lane == .fast
        configure(&config)
        let fleet = FleetFixture(redis: redis, simulator: simulator, config: config)
        for _ in 0..<count { try await fleet.addReplica() }
        return fleet
    }

    /// Starts one more replica.
    func addReplica() async throws {
        var config = self.config
        config.server.stateDir = RunningService.temporaryStateDir()
        let (gateway, control) = try await RunningService.controlledGateway(config)
        self.replicas.append((gateway, control))
    }

    func chat(_ replica: Int, path: String = "/v1/chat/completions", stream: Bool = false) async throws -> Exchange {
        let body = path == "/v1/messages"
            ? #"{"model":"r","max_tokens":50,"messages":[{"role":"user","content":"Hello"}]\#(stream ? #","stream":true"# : "")}"#
            : TestClient.chat(model: "r", stream: stream, extra: #","max_tokens":50"#)
        return try await TestClient.post("\(self.replicas[replica].gateway.url)\(path)", body, headers: [("authorization", "Bearer \(Self.secret)")])
    }

    func stop() async {
        for replica in self.replicas { await replica.gateway.stop() }
        await self.simulator.stop()
    }
}

/// Replicas of one fleet: limits that hold across them, an answer that follows `on_state_error`
/// while Redis is gone, drains that are the fleet's, and a roll call.
@Suite(.serialized)
struct SharedStateTests {
    @Test(arguments: Lane.allCases)
    func aKeysRateLimitHoldsAcrossReplicas(lane: Lane) async throws {
        let fleet = try await FleetFixture.start(lane: lane)
        defer { Task { await fleet.stop() } }
        var statuses: [Int] = []
        var refusal: Exchange?
        let started = ContinuousClock.now
        for index in 0..<30 {
            let answer = try await fleet.chat(index % 2)
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
        // Admission is a round trip over the event loop's own connection to Redis: the fast lane waits
        // for it there. Only a request on a loop whose connection is not up yet goes the framework's way.
        for replica in fleet.replicas where lane == .fast {
            let counts = try await GatewayOnLane(gateway: replica.gateway, lane: .fast).laneCounts()
            #expect(counts.fast + (counts.skipped[FastLaneSkip.limitsElsewhere.rawValue] ?? 0) == 15)
            #expect(counts.fast >= 10, "\(counts)")
        }
    }

    @Test(arguments: [RedisStateSettings.OnError.deny, .allow], Lane.allCases)
    func withRedisGoneTheAnswerFollowsThePolicyInTheCallersDialect(policy: RedisStateSettings.OnError, lane: Lane) async throws {
        let fleet = try await FleetFixture.start(onError: policy, lane: lane)
        defer { Task { await fleet.stop() } }
        #expect(try await fleet.chat(0).status == 200)
        fleet.redis.stop()
        for path in ["/v1/chat/completions", "/v1/messages"] {
            let answer = try await fleet.chat(1, path: path)
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
        let metrics = try await TestClient.get("\(fleet.replicas[1].gateway.url)/metrics").body
        #expect(metrics.contains("switchyard_shared_state_unavailable_total{on_error=\"\(policy.rawValue)\"} 2"), "\(metrics)")
        let lint = try Promtool.check(metrics)
        #expect(lint.ok, "promtool: \(lint.report)")
        // Redis back: the replicas recover by themselves.
        try await fleet.redis.start()
        var recovered = false
        for _ in 0..<200 where !recovered {
            recovered = try await fleet.chat(1).status == 200
            if !recovered { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(recovered)
    }

    @Test func aDrainOnOneReplicaIsTheFleetsAndALaterReplicaStartsDrained() async throws {
        let fleet = try await FleetFixture.start()
        defer { Task { await fleet.stop() } }
        // Each replica subscribed before the drain (the first reconcile sees nothing drained).
        #expect(try await eventually { try await fleet.redis.subscribers(FleetSync.channel) == 2 })
        #expect(fleet.replicas[0].control.drain("sim", by: "test"))
        #expect(try await eventually { fleet.replicas[1].control.targets().allSatisfy(\.drained) })
        #expect(try await fleet.chat(1).status == 503)

        // Started after the drain: it reads the fleet's state when it subscribes.
        try await fleet.addReplica()
        #expect(try await eventually { fleet.replicas[2].control.targets().allSatisfy(\.drained) })

        #expect(fleet.replicas[2].control.undrain("sim"))
        for (_, control) in fleet.replicas {
            #expect(try await eventually { control.targets().allSatisfy { !$0.drained } })
        }
        #expect(try await fleet.chat(0).status == 200)
    }

    @Test func aRouteEditAndACacheFlushOnOneReplicaAreTheFleets() async throws {
        let fleet = try await FleetFixture.start { config in
            config.routes[0].cache = CacheSettings(ttl: .seconds(60))
            config.routes[0].cache?.always = true
        }
        defer { Task { await fleet.stop() } }
        #expect(try await eventually { try await fleet.redis.subscribers(FleetSync.channel) == 2 })
        let model = { (control: GatewayControl) in control.state.routing.config.routes.first { $0.alias == "r" }?.targets.first?.model }

        _ = try fleet.replicas[0].control.editRoute("r", RouteEdit(strategy: nil, targets: [.init(provider: "sim", model: "gpt-4o")]), by: "test")
        #expect(try await eventually { model(fleet.replicas[1].control) == "gpt-4o" })
        // The replica that edited hears its own announcement and skips it: one edit, one new version.
        #expect(fleet.replicas[0].control.state.routing.version == 2)
        // A replica started after the edit serves the edited route from its first request.
        try await fleet.addReplica()
        #expect(model(fleet.replicas[2].control) == "gpt-4o")

        // A cached answer on replica 1, flushed from replica 0.
        #expect(try await fleet.chat(1).headers.first(name: "x-switchyard-cache") == "miss")
        #expect(try await fleet.chat(1).headers.first(name: "x-switchyard-cache") == "hit")
        #expect(fleet.replicas[1].control.state.cache.stats.entries == 1)
        let ack = await fleet.replicas[0].control.flushCache(tenant: nil, route: "r", by: "test")
        #expect(ack.message.hasPrefix("cache flushed (route r)"))
        #expect(try await eventually { fleet.replicas[1].control.state.cache.stats.entries == 0 })
        #expect(try await fleet.chat(1).headers.first(name: "x-switchyard-cache") == "miss")
    }

    @Test func aSharedCacheServesOneReplicasAnswerOnAnotherStreamsIncluded() async throws {
        let fleet = try await FleetFixture.start(onError: .allow) { config in
            config.cacheShared = true
            config.routes[0].cache = CacheSettings(ttl: .seconds(60))
            config.routes[0].cache?.always = true
        }
        defer { Task { await fleet.stop() } }
        let cache = { (answer: Exchange) in answer.headers.first(name: "x-switchyard-cache") }
        let original = try await fleet.chat(0)
        #expect(cache(original) == "miss")
        // The store is written behind the answer: the other replica finds it once it lands.
        var copy: Exchange?
        #expect(try await eventually {
            copy = try await fleet.chat(1)
            return copy.map(cache) == "hit"
        })
        let text = { (answer: Exchange?) in ((answer?.json["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String }
        #expect(text(copy) != nil && text(copy) == text(original))
        #expect(fleet.replicas[1].control.state.cache.shared?.hits.load(ordering: .relaxed) == 1)

        // A streamed answer, and its replay as a stream in the other dialect.
        #expect(cache(try await fleet.chat(0, path: "/v1/messages", stream: true)) == "miss")
        var replay: Exchange?
        #expect(try await eventually {
            replay = try await fleet.chat(1, path: "/v1/messages", stream: true)
            return replay.map(cache) == "hit"
        })
        #expect(replay?.headers.first(name: "content-type")?.hasPrefix("text/event-stream") == true)
        #expect(replay?.body.contains("event: message_stop") == true, "\(replay?.body ?? "")")

        // A flush anywhere empties Redis too: no replica copies the flushed answer back.
        let ack = await fleet.replicas[1].control.flushCache(tenant: nil, route: nil, by: "test")
        #expect(ack.message.contains("shared entries removed from Redis"), "\(ack.message)")
        #expect(try await eventually { fleet.replicas[0].control.state.cache.stats.entries == 0 })
        #expect(cache(try await fleet.chat(0)) == "miss")

        // Redis away: a lookup is a miss, never a failed request (admission here allows).
        fleet.redis.stop()
        let alone = try await fleet.chat(1, path: "/v1/messages")
        #expect(alone.status == 200 && cache(alone) == "miss", "\(alone.body)")
        #expect((fleet.replicas[1].control.state.cache.shared?.failures.load(ordering: .relaxed) ?? 0) >= 1)
    }

    @Test(arguments: Lane.allCases)
    func aVendorsRateLimitHeardByOneReplicaRestsTheTargetFleetWide(lane: Lane) async throws {
        let fleet = try await FleetFixture.start(lane: lane) { config in
            config.routes[0].targets = [RouteTarget(provider: "sim", model: "gpt-4o-mini:fault=429:retry-after=30")]
        }
        defer { Task { await fleet.stop() } }
        #expect(try await eventually { try await fleet.redis.subscribers(FleetSync.channel) == 2 })
        #expect(fleet.replicas[1].control.targets().allSatisfy { $0.restingSeconds == nil })
        #expect(try await fleet.chat(0).status == 429)
        // Replica 1 never asked the vendor, and rests the target as long as replica 0 does.
        #expect(try await eventually { (fleet.replicas[1].control.targets().first?.restingSeconds ?? 0) > 25 })
        // Its caller hears so at once, without a request to the vendor.
        let answer = try await fleet.chat(1)
        #expect(answer.status == 503 && answer.body.contains("no_healthy_target"), "\(answer.body)")
        #expect(Int(answer.headers.first(name: "retry-after") ?? "") ?? 0 > 25)
    }

    @Test func announcementsThatAreNotOursOrAskTooMuchAreIgnored() async throws {
        let fleet = try await FleetFixture.start(replicas: 1)
        defer { Task { await fleet.stop() } }
        #expect(try await eventually { try await fleet.redis.subscribers(FleetSync.channel) == 1 })
        let redis = RedisClient(fleet.redis.configuration(), group: MultiThreadedEventLoopGroup.singleton)
        let target = #""provider":"sim","model":"gpt-4o-mini""#
        for message in [
            String(repeating: "x", count: 300 << 10),
            #"{"change":{"rest":{\#(target),"seconds":1e308}},"replica":"evil:1","actor":"x"}"#,
            #"{"change":{"rest":{\#(target),"seconds":-5}},"replica":"evil:1","actor":"x"}"#,
            #"{"change":{"route":{"alias":"r","edit":{"targets":[{"provider":"sim","model":"m","weight":9223372036854775807}]}}},"replica":"evil:1","actor":"x"}"#,
            "drain sim",
        ] {
            _ = try await redis.send(RedisCommand("PUBLISH", [RedisArgument(FleetSync.channel), RedisArgument(message)]))
        }
        // A real announcement after them is applied: the junk before it was read and dropped.
        _ = try await redis.send(RedisCommand(
            "PUBLISH", [RedisArgument(FleetSync.channel), RedisArgument(#"{"change":{"rest":{\#(target),"seconds":7}},"replica":"evil:1","actor":"x"}"#)]
        ))
        let control = fleet.replicas[0].control
        #expect(try await eventually { (control.targets().first?.restingSeconds ?? 0) > 0 })
        #expect((control.targets().first?.restingSeconds ?? 0) <= 7)
        #expect(control.state.routing.config.routes.first?.targets.first?.weight == 1)
        #expect(control.targets().allSatisfy { !$0.drained })
    }

    @Test func everyReplicaBeatsIntoTheFleetsRollCall() async throws {
        let fleet = try await FleetFixture.start()
        defer { Task { await fleet.stop() } }
        _ = try await fleet.chat(0)
        #expect(try await eventually { await fleet.replicas[1].control.snapshot().fleet?.count == 2 })
        let roll = try #require(await fleet.replicas[1].control.snapshot().fleet)
        #expect(Set(roll.map(\.id)).count == 2)
        #expect(Set(roll.map(\.address)) == Set(fleet.replicas.map { "127.0.0.1:\($0.gateway.port)" }))
        #expect(roll.allSatisfy { $0.version == GatewayVersion.current && $0.configDigest == "environment" && $0.lastSeenSecondsAgo < 10 })
        #expect(try await eventually { await fleet.replicas[1].control.snapshot().fleet?.first { $0.address.hasSuffix(":\(fleet.replicas[0].gateway.port)") }?.requestsLastMinute == 1 })

        // A heartbeat with hostile numbers (anything that can write to Redis can write one): bounded when read.
        let redis = RedisClient(fleet.redis.configuration(), group: MultiThreadedEventLoopGroup.singleton)
        let hostile = #"{"id":"evil:1","address":"127.0.0.9:1","version":"x","configDigest":"d","configVersion":1,"upSince":1e308,"requestsLastMinute":-5,"errorRate":1e308,"lastSeenSecondsAgo":0}"#
        _ = try await redis.send([
            RedisCommand("HSET", [RedisArgument(FleetSync.replicasKey), "evil:1", RedisArgument(hostile)]),
            RedisCommand("ZADD", [RedisArgument(FleetSync.beatsKey), "99999999999999", "evil:1"]),
        ])
        let evil = try #require(await fleet.replicas[0].control.snapshot().fleet?.first { $0.id == "evil:1" })
        #expect(evil.upSince <= 1e11 && evil.errorRate <= 1 && evil.requestsLastMinute == 0 && evil.lastSeenSecondsAgo == 0)
    }
}
