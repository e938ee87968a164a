import Engine
import Foundation
import Testing

struct TelemetryTests {
    @Test func histogramQuantilesLandInTheRightBucket() {
        var histogram = LatencyHistogram()
        for millis in 1...100 { histogram.record(seconds: Double(millis) / 1000) }
        // Buckets are 1.5× wide; interpolating by rank within one keeps the estimate close.
        let p50 = histogram.quantile(0.5) ?? 0
        let p99 = histogram.quantile(0.99) ?? 0
        #expect(abs(p50 - 0.050) < 0.005)
        #expect(p99 >= 0.095 && p99 < 0.13)
        #expect(LatencyHistogram().quantile(0.5) == nil)
    }

    @Test func windowsCountOnlyTheirOwnSeconds() {
        var window = RollingWindow(span: 900)
        for second in Int64(0)..<100 {
            window.record(RequestOutcome(failure: second % 10 == 0 ? .provider : nil, latency: .milliseconds(20)), at: second)
        }
        let tenSeconds = window.summary(last: 10, now: 99)
        #expect(tenSeconds.requests == 10 && tenSeconds.requestsPerSecond == 1)
        #expect(tenSeconds.errors["provider"] == 1 && tenSeconds.errorRate == 0.1)
        #expect(window.summary(last: 60, now: 99).requests == 60)
        // Much later, the old seconds have left every window.
        #expect(window.summary(last: 900, now: 2_000).requests == 0)
    }

    @Test func aRingReusesItsBucketsWithoutMixingOldCounts() {
        var window = RollingWindow(span: 60)
        window.record(RequestOutcome(failure: nil, latency: .seconds(5)), at: 3)
        window.record(RequestOutcome(failure: nil, latency: .milliseconds(10)), at: 63)
        let summary = window.summary(last: 60, now: 63)
        #expect(summary.requests == 1)
        #expect((summary.latencyMs.p99 ?? 0) < 20)
    }

    @Test func tokensAndCostAddUp() {
        var telemetry = GatewayTelemetry()
        var outcome = RequestOutcome(failure: nil, latency: .milliseconds(100), timeToFirstToken: .milliseconds(30))
        outcome.inputTokens = 10
        outcome.outputTokens = 5
        outcome.costUSD = 0.002
        let target = TargetKey(provider: "p", model: "m")
        for second in Int64(0)..<30 { telemetry.record(outcome, route: "r", target: target, at: second) }
        let minute = telemetry.gatewayWindows(now: 29)["1m"]
        #expect(minute?.inputTokens == 300 && minute?.outputTokens == 150)
        #expect(abs((minute?.costPerMinuteUsd ?? 0) - 0.06) < 1e-9)
        #expect(minute?.timeToFirstTokenMs.p50 != nil)
        #expect(telemetry.route("r", now: 29)?.requests == 30)
        #expect(telemetry.target(target, now: 29)?.requests == 30)
        telemetry.keep(routes: [], targets: [])
        #expect(telemetry.route("r", now: 29) == nil)
    }
}

struct AdminMessageTests {
    static let route = RouteSettings(alias: "r", targets: [RouteTarget(provider: "a", model: "m", price: TokenPrice(input: 1, output: 2))])

    @Test func aRouteEditIsValidatedWhole() throws {
        let edit = RouteEdit(strategy: "least-busy", targets: [.init(provider: "a", model: "m", weight: 2), .init(provider: "b", model: "x", priority: 1)])
        let edited = try edit.applied(to: Self.route, providers: ["a", "b"])
        #expect(edited.strategy == .leastBusy)
        #expect(edited.targets == [
            RouteTarget(provider: "a", model: "m", weight: 2, price: TokenPrice(input: 1, output: 2)),
            RouteTarget(provider: "b", model: "x", priority: 1),
        ])
        #expect {
            try RouteEdit(strategy: "fast", targets: [.init(provider: "z", model: "", weight: -1)]).applied(to: Self.route, providers: ["a"])
        } throws: { error in
            let problem = error as? AdminProblem
            return problem?.status == 422 && problem?.message.contains("unknown strategy 'fast'") == true
                && problem?.message.contains("unknown provider 'z'") == true && problem?.message.contains("weight must be 0 to 1000000") == true
        }
        #expect(throws: AdminProblem.self) { try RouteEdit(targets: []).applied(to: Self.route, providers: ["a"]) }
    }

    @Test func theConfigDiffNamesWhatChangedAndWhatNeedsARestart() {
        var old = GatewayConfig(providers: [ProviderSettings(id: "a", kind: .simulator, baseURL: nil), ProviderSettings(id: "gone", kind: .simulator, baseURL: nil)], routes: [Self.route])
        old.server.listen = ListenAddress(host: "127.0.0.1", port: 8080)
        var new = old
        new.providers = [ProviderSettings(id: "a", kind: .simulator, baseURL: "http://127.0.0.1:1/v1"), ProviderSettings(id: "new", kind: .simulator, baseURL: nil)]
        new.routes[0].strategy = .cost
        new.routes.append(RouteSettings(alias: "extra", targets: [RouteTarget(provider: "new", model: "m")]))
        new.server.listen = ListenAddress(host: "0.0.0.0", port: 8080)
        let diff = ConfigDiff.between(old, new)
        #expect(diff.changes == [
            "provider a: changed", "provider new: added", "provider gone: removed",
            "route r: changed (strategy weighted → cost)", "route extra: added",
        ])
        #expect(diff.needsRestart == ["server.listen"])
        #expect(ConfigDiff.between(old, old).changes.isEmpty)
    }

    @Test func theSnapshotRoundTripsThroughJSON() throws {
        var telemetry = GatewayTelemetry()
        let target = TargetKey(provider: "a", model: "m")
        telemetry.record(RequestOutcome(failure: nil, latency: .milliseconds(12)), route: "r", target: target, at: 5)
        var health = RoutingHealth(config: GatewayConfig(providers: [ProviderSettings(id: "a", kind: .simulator, baseURL: nil)], routes: [Self.route]))
        // Two attempts: one failed (another target answered for it), one served.
        let now = ContinuousClock.now
        let first = health.begin(target, at: now)
        let failed = try #require(first)
        health.failed(failed, .serverError, detail: "503", at: now)
        let second = health.begin(target, at: now)
        let served = try #require(second)
        health.succeeded(served, route: "r", firstToken: nil, total: .milliseconds(12), at: now)
        #expect(health.statuses(at: now + .seconds(61)).first?.attempts1m == 0, "a minute later they have left the window")
        health.drain("a")
        let snapshot = AdminSnapshot.build(
            config: GatewayConfig(routes: [Self.route]), configVersion: 3, configSource: "x.yaml", uptime: .seconds(9),
            targets: health.statuses(at: now), telemetry: telemetry, now: 5, editedRoutes: ["r"]
        )
        #expect(snapshot.targets.first?.health == "drained" && snapshot.targets.first?.requests1m == 2 && snapshot.targets.first?.errorRate1m == 0.5)
        #expect(snapshot.routes.first?.targets.first?.share1m == 1 && snapshot.routes.first?.editedAtRuntime == true)
        let data = try AdminJSON.encoder().encode(snapshot)
        #expect(try AdminJSON.decoder().decode(AdminSnapshot.self, from: data) == snapshot)
    }

    /// A console reads an older gateway's cache section (before the semantic index's counters).
    @Test func anOlderCacheSectionDecodesWithZeros() throws {
        let cache = AdminCache(entries: 3, bytes: 900, hitRate: 0.5, semanticHitRate: 0.1, missRate: 0.4, vectors: 2, partitions: 1, embeddingFailures: 1)
        #expect(try AdminJSON.decoder().decode(AdminCache.self, from: AdminJSON.encoder().encode(cache)) == cache)
        let older = #"{"entries":3,"bytes":900,"hitRate":0.5,"semanticHitRate":0.1,"missRate":0.4}"#
        let decoded = try AdminJSON.decoder().decode(AdminCache.self, from: Data(older.utf8))
        #expect(decoded == AdminCache(entries: 3, bytes: 900, hitRate: 0.5, semanticHitRate: 0.1, missRate: 0.4))
    }
}
