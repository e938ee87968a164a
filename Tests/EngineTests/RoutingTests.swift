import Engine
import Foundation
import NIOCore
import Testing

/// A clock the test moves by hand.
struct FakeClock {
    var now = ContinuousClock.now

    mutating func advance(_ duration: Duration) {
        self.now += duration
    }
}


struct CircuitBreakerTests {
    let policy = BreakerPolicy(consecutiveFailures: 3, errorRate: 0.5, minimumRequests: 10, window: .seconds(10), openDuration: .seconds(5), maxOpenDuration: .seconds(20), probes: 1)

    @Test func consecutiveFailuresOpenItAndItRestsForOpenDuration() {
        var clock = FakeClock()
        var breaker = CircuitBreaker(policy: self.policy)
        for _ in 0..<3 {
            let admission = breaker.admit(at: clock.now)
            #expect(admission == .normal)
            breaker.recordFailure(.normal, at: clock.now)
        }
        #expect(breaker.state == .open(until: clock.now + .seconds(5)))
        #expect(breaker.admit(at: clock.now) == nil)
        clock.advance(.milliseconds(4_999))
        #expect(breaker.admit(at: clock.now) == nil)
        #expect(!breaker.isAvailable(at: clock.now))
        clock.advance(.milliseconds(1))
        #expect(breaker.isAvailable(at: clock.now))
    }

    @Test func halfOpenLetsOneProbeThroughAndASuccessCloses() {
        var clock = FakeClock()
        var breaker = CircuitBreaker(policy: self.policy)
        for _ in 0..<3 { breaker.recordFailure(.normal, at: clock.now) }
        clock.advance(.seconds(5))
        #expect(breaker.admit(at: clock.now) == .probe)
        #expect(breaker.state == .halfOpen)
        // A second request while the probe is out is refused.
        #expect(breaker.admit(at: clock.now) == nil)
        breaker.recordSuccess(.probe, at: clock.now)
        #expect(breaker.state == .closed)
        #expect(breaker.admit(at: clock.now) == .normal)
    }

    @Test func aFailedProbeReopensForTwiceAsLongUpToTheMaximum() {
        var clock = FakeClock()
        var breaker = CircuitBreaker(policy: self.policy)
        for _ in 0..<3 { breaker.recordFailure(.normal, at: clock.now) }
        var expectedRest = Duration.seconds(5)
        for _ in 0..<4 {
            clock.advance(expectedRest)
            #expect(breaker.admit(at: clock.now) == .probe)
            breaker.recordFailure(.probe, at: clock.now)
            expectedRest = min(expectedRest * 2, .seconds(20))
            #expect(breaker.state == .open(until: clock.now + expectedRest))
        }
    }

    @Test func anErrorRateOverTheWindowOpensItWithoutAStreak() {
        var clock = FakeClock()
        var breaker = CircuitBreaker(policy: self.policy)
        // Alternating success and failure: never 3 in a row, but 50% over 10 requests.
        for index in 0..<9 {
            if index % 2 == 0 { breaker.recordFailure(.normal, at: clock.now) } else { breaker.recordSuccess(.normal, at: clock.now) }
            clock.advance(.milliseconds(100))
        }
        #expect(breaker.state == .closed)
        breaker.recordFailure(.normal, at: clock.now)
        #expect(breaker.state == .open(until: clock.now + .seconds(5)))
    }

    @Test func oldOutcomesLeaveTheWindow() {
        var clock = FakeClock()
        var breaker = CircuitBreaker(policy: self.policy)
        for index in 0..<8 {
            if index % 2 == 0 { breaker.recordFailure(.normal, at: clock.now) } else { breaker.recordSuccess(.normal, at: clock.now) }
        }
        #expect(breaker.errorRate(at: clock.now) == 0.5)
        clock.advance(.seconds(11))
        #expect(breaker.errorRate(at: clock.now) == 0)
        breaker.recordFailure(.normal, at: clock.now)
        breaker.recordSuccess(.normal, at: clock.now)
        breaker.recordFailure(.normal, at: clock.now)
        #expect(breaker.state == .closed)
    }

    @Test func anAbandonedProbeFreesItsSlot() {
        var clock = FakeClock()
        var breaker = CircuitBreaker(policy: self.policy)
        for _ in 0..<3 { breaker.recordFailure(.normal, at: clock.now) }
        clock.advance(.seconds(5))
        #expect(breaker.admit(at: clock.now) == .probe)
        breaker.release(.probe)
        #expect(breaker.admit(at: clock.now) == .probe)
    }

    @Test func anOperatorsOpenRestsThenProbesAndAResetForgetsTheFailures() {
        var clock = FakeClock()
        var breaker = CircuitBreaker(policy: self.policy)
        breaker.forceOpen(at: clock.now)
        #expect(breaker.state == .open(until: clock.now + .seconds(5)) && breaker.admit(at: clock.now) == nil)
        clock.advance(.seconds(5))
        #expect(breaker.admit(at: clock.now) == .probe)
        breaker.recordFailure(.probe, at: clock.now)
        #expect(breaker.state == .open(until: clock.now + .seconds(10)), "the failed probe doubles the rest, as after a trip")

        breaker.reset()
        #expect(breaker.state == .closed && breaker.consecutiveFailures == 0 && breaker.admit(at: clock.now) == .normal)
        // Forgotten: two failures do not reach the streak of three, and the next trip rests the first length again.
        breaker.recordFailure(.normal, at: clock.now)
        breaker.recordFailure(.normal, at: clock.now)
        #expect(breaker.state == .closed)
        breaker.recordFailure(.normal, at: clock.now)
        #expect(breaker.state == .open(until: clock.now + .seconds(5)))
    }

    @Test func aTargetKeepsItsLastFailedAttemptsWithWhoseFaultTheyWere() throws {
        let key = TargetKey(provider: "a", model: "m")
        var health = RoutingHealth(config: BalancerTests.config([RouteSettings(alias: "r", targets: [RouteTarget(provider: "a", model: "m")])]))
        var clock = FakeClock()
        let failures: [AttemptFailure] = [.serverError, .timeout, .credentials, .caller, .rateLimited(retryAfter: nil), .connect, .serverError]
        for (index, failure) in failures.enumerated() {
            let admitted = health.begin(key, at: clock.now)
            let ticket = try #require(admitted)
            health.failed(ticket, failure, detail: "failure \(index) " + String(repeating: "x", count: 1_000), at: clock.now)
            clock.advance(.seconds(1))
        }
        let recent = try #require(health.statuses(at: clock.now).first).recentFailures
        #expect(recent.count == TargetFailure.kept)
        #expect(recent.map(\.kind) == ["server_error", "connect", "rate_limited", "caller", "credentials"], "newest first")
        #expect(recent.map(\.faultDomain) == [.provider, .provider, .provider, .caller, .gateway])
        #expect(recent.map(\.secondsAgo) == [1, 2, 3, 4, 5])
        #expect(recent.allSatisfy { $0.detail.count <= 301 })
    }

    @Test func breakersAreSetPerProviderOrPerModelAndOnlyForKnownTargets() {
        let route = RouteSettings(alias: "r", targets: [
            RouteTarget(provider: "a", model: "m1"), RouteTarget(provider: "a", model: "m2"), RouteTarget(provider: "b", model: "m1"),
        ])
        var health = RoutingHealth(config: BalancerTests.config([route]))
        let now = ContinuousClock.now
        #expect(health.setBreakers(of: "a", model: nil, open: true, at: now).map(\.model) == ["m1", "m2"])
        #expect(health.unavailability(of: TargetKey(provider: "a", model: "m2"), at: now)?.label == "breaker_open")
        #expect(health.unavailability(of: TargetKey(provider: "b", model: "m1"), at: now) == nil)
        #expect(health.setBreakers(of: "a", model: "m1", open: false, at: now).map(\.model) == ["m1"])
        #expect(health.unavailability(of: TargetKey(provider: "a", model: "m1"), at: now) == nil)
        #expect(health.setBreakers(of: "a", model: "zz", open: true, at: now).isEmpty)
        #expect(health.setBreakers(of: "zz", model: nil, open: true, at: now).isEmpty)
    }
}

struct LatencyTrackingTests {
    @Test func peakEWMAJumpsUpAtOnceAndDecaysDown() {
        var clock = FakeClock()
        var ewma = PeakEWMA(decay: .seconds(10))
        ewma.record(.milliseconds(100), at: clock.now)
        #expect(ewma.value == 0.1)
        clock.advance(.seconds(1))
        ewma.record(.milliseconds(900), at: clock.now)
        #expect(ewma.value == 0.9)
        // After one decay period, a fast sample pulls it about 63% of the way down.
        clock.advance(.seconds(10))
        ewma.record(.milliseconds(100), at: clock.now)
        let value = ewma.value ?? 0
        #expect(abs(value - (0.9 * 0.3679 + 0.1 * 0.6321)) < 0.001)
        // An instant later, a fast sample barely moves it.
        ewma.record(.milliseconds(100), at: clock.now)
        #expect(abs((ewma.value ?? 0) - value) < 0.0001)
    }

    @Test func recentSamplesGiveNearestRankQuantilesOverTheLatestOnly() {
        var samples = RecentSamples(capacity: 100)
        for millis in 1...100 { samples.record(.milliseconds(millis)) }
        #expect(samples.quantile(0.95) == .milliseconds(95))
        #expect(samples.quantile(0.5) == .milliseconds(50))
        for _ in 0..<100 { samples.record(.milliseconds(7)) }
        #expect(samples.quantile(0.99) == .milliseconds(7))
        #expect(RecentSamples().quantile(0.5) == nil)
    }
}

struct RetryPolicyTests {
    @Test func fullJitterBackoffDoublesUpToTheCap() {
        let policy = RetryPolicy(attempts: 5, backoff: .milliseconds(100), maxBackoff: .seconds(1))
        #expect(policy.backoff(retry: 0, random: 0.999_999) < .milliseconds(100))
        #expect(policy.backoff(retry: 0, random: 0.5) == .milliseconds(50))
        #expect(policy.backoff(retry: 1, random: 0.5) == .milliseconds(100))
        #expect(policy.backoff(retry: 2, random: 0.5) == .milliseconds(200))
        #expect(policy.backoff(retry: 3, random: 0.5) == .milliseconds(400))
        #expect(policy.backoff(retry: 4, random: 0.5) == .milliseconds(500))
        #expect(policy.backoff(retry: 40, random: 0.5) == .milliseconds(500))
        #expect(policy.backoff(retry: 3, random: 0) == .zero)
    }

    /// The documented matrix (docs/routing.md), one row at a time.
    @Test func theRetryMatrix() {
        #expect(AttemptFailure.classify(.upstreamUnreachable(provider: "p", detail: "refused")) == .connect)
        #expect(AttemptFailure.classify(.upstreamTimeout(provider: "p", phase: "first_byte", limit: "1s")) == .timeout)
        #expect(AttemptFailure.classify(.upstreamStatus(provider: "p", status: 429), retryAfter: .seconds(3)) == .rateLimited(retryAfter: .seconds(3)))
        #expect(AttemptFailure.classify(.upstreamStatus(provider: "p", status: 429), upstreamCode: "insufficient_quota") == .quotaExhausted)
        for status in [500, 502, 503, 504, 529, 408, 409] {
            #expect(AttemptFailure.classify(.upstreamStatus(provider: "p", status: status)) == .serverError)
        }
        for status in [400, 404, 413, 422] {
            #expect(AttemptFailure.classify(.upstreamStatus(provider: "p", status: status)) == .caller)
        }
        #expect(AttemptFailure.classify(.upstreamCredentials(provider: "p", status: 401)) == .credentials)
        #expect(AttemptFailure.classify(.upstreamMalformed(provider: "p", detail: "x")) == .serverError)
        #expect(AttemptFailure.classify(.upstreamStatus(provider: "p", status: 400), upstreamCode: "context_length_exceeded") == .contextTooLong)
        let anthropic = GatewayError.upstreamReported(provider: "p", status: 400, message: "prompt is too long: 250000 tokens > 200000 maximum")
        #expect(AttemptFailure.classify(anthropic, upstreamCode: "invalid_request_error") == .contextTooLong)
        #expect(AttemptFailure.rateLimited(retryAfter: nil).countsAgainstTarget == false)
        #expect(AttemptFailure.serverError.countsAgainstTarget)
        #expect(AttemptFailure.quotaExhausted.rest == AttemptFailure.quotaRest)
    }

    @Test func retryAfterInMillisecondsSecondsOrADate() {
        #expect(RetryAfter.parse(milliseconds: "1500", header: "9") == .milliseconds(1500))
        #expect(RetryAfter.parse(milliseconds: nil, header: "2") == .seconds(2))
        #expect(RetryAfter.parse(milliseconds: nil, header: "0.5") == .milliseconds(500))
        #expect(RetryAfter.parse(milliseconds: nil, header: "soon") == nil)
        #expect(RetryAfter.parse(milliseconds: nil, header: nil) == nil)
        let now = Date(timeIntervalSince1970: 1_700_000_000)
        #expect(RetryAfter.parse(milliseconds: nil, header: "Tue, 14 Nov 2023 22:13:50 GMT", now: now) == .seconds(30))
    }
}

struct BalancerTests {
    static func config(_ routes: [RouteSettings]) -> GatewayConfig {
        let providers = Set(routes.flatMap { $0.targets.map(\.provider) }).sorted().map { ProviderSettings(id: $0, kind: .simulator, baseURL: nil) }
        return GatewayConfig(providers: providers, routes: routes)
    }

    func shares(_ route: RouteSettings, picks: Int = 10_000, health: RoutingHealth? = nil, request: RequestFeatures? = nil) throws -> [String: Double] {
        let table = RouteTable([route])
        let health = health ?? RoutingHealth(config: Self.config([route]))
        var random = SplitMix(seed: 42)
        var counts: [String: Int] = [:]
        let now = ContinuousClock.now
        for _ in 0..<picks {
            let plan = try table.plan(request ?? RequestFeatures(model: route.alias, streaming: false), health: health, at: now, using: &random)
            counts[plan.first.provider, default: 0] += 1
        }
        return counts.mapValues { Double($0) / Double(picks) }
    }

    @Test func weightsThreeToOneGiveSeventyFivePercent() throws {
        let route = RouteSettings(alias: "r", targets: [RouteTarget(provider: "a", model: "m", weight: 3), RouteTarget(provider: "b", model: "m", weight: 1)])
        let shares = try self.shares(route)
        #expect(abs((shares["a"] ?? 0) - 0.75) < 0.03)
        #expect(abs((shares["b"] ?? 0) - 0.25) < 0.03)
    }

    @Test func weightZeroOnlyServesAsFailover() throws {
        let route = RouteSettings(alias: "r", targets: [RouteTarget(provider: "a", model: "m", weight: 0), RouteTarget(provider: "b", model: "m", weight: 1)])
        let shares = try self.shares(route, picks: 1_000)
        #expect(shares["b"] == 1)
        var random = SplitMix(seed: 1)
        let plan = try RouteTable([route]).plan(RequestFeatures(model: "r", streaming: false), health: RoutingHealth(config: Self.config([route])), at: .now, using: &random)
        #expect(plan.candidates.map(\.provider) == ["b", "a"])
    }

    @Test func priorityTiersComeFirstAndTheNextTierIsTheFailover() throws {
        let route = RouteSettings(alias: "r", targets: [
            RouteTarget(provider: "backup", model: "m", priority: 1),
            RouteTarget(provider: "a", model: "m", weight: 1),
            RouteTarget(provider: "b", model: "m", weight: 1),
        ])
        let shares = try self.shares(route)
        #expect(shares["backup"] == nil)
        #expect(abs((shares["a"] ?? 0) - 0.5) < 0.03)
        var random = SplitMix(seed: 3)
        let plan = try RouteTable([route]).plan(RequestFeatures(model: "r", streaming: false), health: RoutingHealth(config: Self.config([route])), at: .now, using: &random)
        #expect(plan.candidates.last?.provider == "backup")
    }

    @Test func priorityStrategyKeepsConfigOrderWithinATier() throws {
        let route = RouteSettings(alias: "r", targets: [RouteTarget(provider: "x", model: "m"), RouteTarget(provider: "y", model: "m")], strategy: .priority)
        #expect(try self.shares(route, picks: 100) == ["x": 1])
    }

    @Test func leastBusyAvoidsTheLoadedTarget() throws {
        let route = RouteSettings(alias: "r", targets: [RouteTarget(provider: "a", model: "m"), RouteTarget(provider: "b", model: "m"), RouteTarget(provider: "c", model: "m")], strategy: .leastBusy)
        var health = RoutingHealth(config: Self.config([route]))
        let now = ContinuousClock.now
        for _ in 0..<5 { _ = health.begin(TargetKey(provider: "a", model: "m"), at: now) }
        _ = health.begin(TargetKey(provider: "b", model: "m"), at: now)
        let shares = try self.shares(route, health: health)
        // Power of two choices: the busiest target wins no draw; the idle one wins every draw it is in
        // (2 of 3 pairs), the middle one wins the pair without the idle one.
        #expect(shares["a"] == nil)
        #expect(abs((shares["c"] ?? 0) - 2.0 / 3.0) < 0.03)
        #expect(abs((shares["b"] ?? 0) - 1.0 / 3.0) < 0.03)
    }

    @Test func leastBusyCountsTheBackendsOwnQueue() throws {
        let route = RouteSettings(alias: "r", targets: [RouteTarget(provider: "a", model: "m"), RouteTarget(provider: "b", model: "m")], strategy: .leastBusy)
        var health = RoutingHealth(config: Self.config([route]))
        health.recordLoad(BackendLoad(queued: 7), provider: "a")
        #expect(try self.shares(route, picks: 500, health: health) == ["b": 1])
        // Ollama: a target whose model is not loaded pays the cold-start penalty.
        var ollama = RoutingHealth(config: Self.config([route]))
        ollama.recordLoad(BackendLoad(queued: 0, warmModels: ["other"]), provider: "a")
        ollama.recordLoad(BackendLoad(queued: 0, warmModels: ["m"]), provider: "b")
        #expect(try self.shares(route, picks: 500, health: ollama) == ["b": 1])
    }

    @Test func latencyPrefersTheFasterTargetByPeakEWMA() throws {
        let route = RouteSettings(alias: "r", targets: [RouteTarget(provider: "slow", model: "m"), RouteTarget(provider: "fast", model: "m")], strategy: .latency)
        var health = RoutingHealth(config: Self.config([route]))
        let now = ContinuousClock.now
        for (provider, millis) in [("slow", 900), ("fast", 120)] {
            let ticketAdmitted = health.begin(TargetKey(provider: provider, model: "m"), at: now)
            let ticket = try #require(ticketAdmitted)
            health.succeeded(ticket, route: "r", firstToken: .milliseconds(millis / 3), total: .milliseconds(millis), at: now)
        }
        #expect(try self.shares(route, picks: 500, health: health) == ["fast": 1])
        // Streams are judged by time to first token.
        #expect(try self.shares(route, picks: 500, health: health, request: RequestFeatures(model: "r", streaming: true)) == ["fast": 1])
    }

    @Test func costPicksTheCheapestForTheExpectedTokens() throws {
        let route = RouteSettings(alias: "r", targets: [
            RouteTarget(provider: "pricey", model: "m", price: TokenPrice(input: 2.5, output: 10)),
            RouteTarget(provider: "unknown", model: "m"),
            RouteTarget(provider: "cheap", model: "m", price: TokenPrice(input: 0.15, output: 0.6)),
        ], strategy: .cost)
        var random = SplitMix(seed: 5)
        let plan = try RouteTable([route]).plan(RequestFeatures(model: "r", streaming: false), health: RoutingHealth(config: Self.config([route])), at: .now, using: &random)
        #expect(plan.candidates.map(\.provider) == ["cheap", "pricey", "unknown"])
        // Input-heavy vs output-heavy: which is cheaper depends on the expected tokens.
        let inputCheap = RouteSettings(alias: "r", targets: [
            RouteTarget(provider: "a", model: "m", price: TokenPrice(input: 0.1, output: 5)),
            RouteTarget(provider: "b", model: "m", price: TokenPrice(input: 1, output: 1)),
        ], strategy: .cost)
        var longPrompt = RequestFeatures(model: "r", streaming: false)
        longPrompt.promptTokens = 100_000
        longPrompt.maxTokens = 100
        var longAnswer = RequestFeatures(model: "r", streaming: false)
        longAnswer.promptTokens = 100
        longAnswer.maxTokens = 8_000
        #expect(try self.shares(inputCheap, picks: 50, request: longPrompt) == ["a": 1])
        #expect(try self.shares(inputCheap, picks: 50, request: longAnswer) == ["b": 1])
    }
}

struct FailoverPlanTests {
    static let three = RouteSettings(alias: "r", targets: [
        RouteTarget(provider: "a", model: "m"), RouteTarget(provider: "b", model: "m"), RouteTarget(provider: "c", model: "m"),
    ], strategy: .priority)

    func plan(_ routes: [RouteSettings], health: RoutingHealth? = nil, at now: ContinuousClock.Instant = .now) throws -> FailoverPlan {
        var random = SplitMix(seed: 9)
        return try RouteTable(routes).plan(
            RequestFeatures(model: routes[0].alias, streaming: false),
            health: health ?? RoutingHealth(config: BalancerTests.config(routes)), at: now, using: &random
        )
    }

    @Test func serverErrorsMoveOnAtOnceThenComeBackAfterABackoff() throws {
        var route = Self.three
        route.retry = RetryPolicy(attempts: 5, backoff: .milliseconds(100), maxBackoff: .seconds(1))
        var plan = try self.plan([route])
        let now = ContinuousClock.now
        var target = plan.first
        var visited: [String] = []
        var waits: [Duration] = []
        for _ in 0..<4 {
            plan.started(target)
            visited.append(target.provider)
            guard case .attempt(let next, let wait) = plan.next(after: .serverError, on: target, at: now, random: 0.5) else { break }
            waits.append(wait)
            target = next
        }
        #expect(visited == ["a", "b", "c", "a"])
        #expect(waits == [.zero, .zero, .milliseconds(50), .milliseconds(50)])
    }

    @Test func theAttemptBudgetAndTheDeadlineEndIt() throws {
        var route = Self.three
        route.retry = RetryPolicy(attempts: 2, deadline: .seconds(5))
        let start = ContinuousClock.now
        var plan = try self.plan([route], at: start)
        plan.started(plan.first)
        guard case .attempt(let second, _) = plan.next(after: .serverError, on: plan.first, at: start, random: 0) else {
            Issue.record("expected a second attempt")
            return
        }
        plan.started(second)
        #expect(plan.next(after: .serverError, on: second, at: start, random: 0) == .giveUp)

        var late = try self.plan([route], at: start)
        late.started(late.first)
        #expect(late.next(after: .connect, on: late.first, at: start + .seconds(5), random: 0) == .giveUp)
    }

    @Test func callerErrorsAreNeverRetried() throws {
        var plan = try self.plan([Self.three])
        plan.started(plan.first)
        #expect(plan.next(after: .caller, on: plan.first, at: .now, random: 0) == .giveUp)
    }

    @Test func timeoutsAndRateLimitsDoNotReturnToTheSameTarget() throws {
        var route = Self.three
        route.retry.attempts = 10
        var plan = try self.plan([route])
        let now = ContinuousClock.now
        let a = plan.first
        plan.started(a)
        guard case .attempt(let b, .zero) = plan.next(after: .timeout, on: a, at: now, random: 0) else {
            Issue.record("no failover")
            return
        }
        plan.started(b)
        guard case .attempt(let c, .zero) = plan.next(after: .rateLimited(retryAfter: .seconds(60)), on: b, at: now, random: 0) else {
            Issue.record("no failover")
            return
        }
        plan.started(c)
        #expect(c.provider == "c")
        // 60 s is past max_retry_after (10 s): nobody is left.
        #expect(plan.next(after: .rateLimited(retryAfter: .seconds(60)), on: c, at: now, random: 0) == .giveUp)
    }

    @Test func aLoneTargetWaitsOutAShortRetryAfter() throws {
        let route = RouteSettings(alias: "solo", targets: [RouteTarget(provider: "a", model: "m")])
        var plan = try self.plan([route])
        plan.started(plan.first)
        #expect(plan.next(after: .rateLimited(retryAfter: .seconds(2)), on: plan.first, at: .now, random: 0) == .attempt(plan.first, after: .seconds(2)))
    }

    @Test func fallbackRoutesFollowTheRoutesOwnTargets() throws {
        var primary = RouteSettings(alias: "big", targets: [RouteTarget(provider: "a", model: "m")])
        primary.fallbacks = ["small"]
        var small = RouteSettings(alias: "small", targets: [RouteTarget(provider: "b", model: "m"), RouteTarget(provider: "a", model: "m")], strategy: .priority)
        small.fallbacks = ["big"]
        let plan = try self.plan([primary, small])
        // A cycle back to `big` and the repeated target are both skipped.
        #expect(plan.candidates.map { "\($0.route):\($0.provider)" } == ["big:a", "small:b"])
    }

    @Test func contextTooLongSwitchesToTheLargerRouteOnce() throws {
        var primary = RouteSettings(alias: "small", targets: [RouteTarget(provider: "a", model: "m")])
        primary.contextFallback = "large"
        let large = RouteSettings(alias: "large", targets: [RouteTarget(provider: "b", model: "long")])
        var plan = try self.plan([primary, large])
        plan.started(plan.first)
        guard case .attempt(let bigger, .zero) = plan.next(after: .contextTooLong, on: plan.first, at: .now, random: 0) else {
            Issue.record("no context fallback")
            return
        }
        #expect(bigger.route == "large" && bigger.upstreamModel == "long")
        plan.started(bigger)
        #expect(plan.next(after: .contextTooLong, on: bigger, at: .now, random: 0) == .giveUp)
    }

    @Test func unavailableTargetsAreLeftOutAndNoneLeftIsA503WithRetryAfter() throws {
        var clock = FakeClock()
        let config = BalancerTests.config([Self.three])
        var health = RoutingHealth(config: config)
        health.drain("a")
        let b = TargetKey(provider: "b", model: "m")
        for _ in 0..<5 {
            let ticketAdmitted = health.begin(b, at: clock.now)
            let ticket = try #require(ticketAdmitted)
            health.failed(ticket, .serverError, detail: "503", at: clock.now)
        }
        #expect(try self.plan([Self.three], health: health, at: clock.now).candidates.map(\.provider) == ["c"])
        let cAdmitted = health.begin(TargetKey(provider: "c", model: "m"), at: clock.now)
            let c = try #require(cAdmitted)
        health.failed(c, .rateLimited(retryAfter: .seconds(7)), detail: "429", at: clock.now)
        #expect(health.unavailability(of: TargetKey(provider: "c", model: "m"), at: clock.now) == .resting(until: clock.now + .seconds(7)))
        #expect {
            try self.plan([Self.three], health: health, at: clock.now)
        } throws: { error in
            let error = error as? GatewayError
            return error?.httpStatus == 503 && error?.retryAfterSeconds == 7
        }
        clock.advance(.seconds(7))
        #expect(try self.plan([Self.three], health: health, at: clock.now).candidates.map(\.provider) == ["c"])
        health.undrain("a")
        #expect(try self.plan([Self.three], health: health, at: clock.now).candidates.map(\.provider) == ["a", "c"])
    }

    @Test func theHedgeGoesToAnotherTargetWithinTheBudget() throws {
        var route = Self.three
        route.retry.attempts = 2
        var plan = try self.plan([route])
        plan.started(plan.first)
        let hedge = plan.hedgeTarget(besides: [plan.first.key], at: .now)
        #expect(hedge?.provider == "b")
        if let hedge { plan.started(hedge) }
        #expect(plan.hedgeTarget(besides: [], at: .now) == nil)
    }
}

struct RuleTests {
    static let routes = [
        RouteSettings(alias: "default", targets: [RouteTarget(provider: "a", model: "m")]),
        RouteSettings(alias: "long", targets: [RouteTarget(provider: "b", model: "m")]),
        RouteSettings(alias: "local", targets: [RouteTarget(provider: "c", model: "m")]),
        RouteSettings(alias: "vision", targets: [RouteTarget(provider: "d", model: "m")]),
    ]

    static func rule(_ route: String, _ configure: (inout RuleConditions) -> Void) -> RouteRule {
        var conditions = RuleConditions()
        configure(&conditions)
        return RouteRule(conditions: conditions, route: route)
    }

    let table = RouteTable(Self.routes, rules: [
        rule("long") { $0.promptTokensOver = 1_000 },
        rule("vision") { $0.hasImages = true },
        rule("local") { $0.headers = ["x-team": "data-*"] },
        rule("local") { $0.model = "classify-*"; $0.hasTools = false },
    ])

    func route(_ body: String, headers: [String: String] = [:]) throws -> String {
        var features = RequestFeatures(model: "default", streaming: false) { headers[$0] }
        let buffer = ByteBuffer(string: body)
        features.inspect(body: buffer)
        if let model = JSONValue.parse(buffer)?["model"]?.string { features.model = model }
        return try self.table.route(for: features).alias
    }

    @Test func theFirstMatchingRulePicksTheRoute() throws {
        #expect(try self.route(#"{"model":"default","messages":[{"role":"user","content":"hi"}]}"#) == "default")
        let long = String(repeating: "word ", count: 1_000)
        #expect(try self.route(#"{"model":"default","messages":[{"role":"user","content":"\#(long)"}]}"#) == "long")
        #expect(try self.route(#"{"model":"default","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"http://x/y.png"}}]}]}"#) == "vision")
        #expect(try self.route(#"{"model":"default","messages":[]}"#, headers: ["x-team": "data-eng"]) == "local")
        #expect(try self.route(#"{"model":"default","messages":[]}"#, headers: ["x-team": "web"]) == "default")
        #expect(try self.route(#"{"model":"classify-sentiment","messages":[]}"#) == "local")
        // A model pattern with a condition that fails: no rule matches, and the name is no route.
        #expect(throws: GatewayError.self) {
            try self.route(#"{"model":"classify-x","tools":[{"type":"function","function":{"name":"f"}}],"messages":[]}"#)
        }
    }

    @Test func contentFeaturesAreOnlyReadWhenARuleNeedsThem() {
        #expect(self.table.needsContentFeatures)
        #expect(!RouteTable(Self.routes, rules: [Self.rule("local") { $0.model = "x*" }]).needsContentFeatures)
    }

    @Test func globs() {
        #expect(Glob.matches("claude-*", "claude-sonnet-4-5"))
        #expect(Glob.matches("gpt-?o", "gpt-4o"))
        #expect(Glob.matches("*", ""))
        #expect(!Glob.matches("gpt-*", "claude"))
        #expect(Glob.matches("a*b*c", "aXXbYYc"))
        #expect(!Glob.matches("a*b*c", "aXXbYY"))
    }
}

struct BackendLoadTests {
    @Test func vllmMetricsSumWaitingAndRunning() {
        let text = """
            # HELP vllm:num_requests_waiting Number of requests waiting to be processed.
            # TYPE vllm:num_requests_waiting gauge
            vllm:num_requests_waiting{model_name="meta-llama/Llama-3.1-8B-Instruct"} 3.0
            vllm:num_requests_running{model_name="meta-llama/Llama-3.1-8B-Instruct"} 5.0
            vllm:gpu_cache_usage_perc{model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.4
            """
        #expect(BackendLoad.vllm(metrics: text) == BackendLoad(queued: 8))
        #expect(BackendLoad.vllm(metrics: "process_cpu_seconds_total 12.0\n") == nil)
    }

    @Test func ollamaPsListsTheWarmModels() throws {
        let json = try JSONValue.parse(#"{"models":[{"name":"llama3.2:latest","model":"llama3.2:latest","size":3}]}"#)
        #expect(BackendLoad.ollama(ps: json) == BackendLoad(queued: 0, warmModels: ["llama3.2:latest", "llama3.2"]))
    }
}

struct RoutingConfigTests {
    @Test func routingSectionsLoad() throws {
        let yaml = """
            providers:
              a:
                kind: simulator
                breaker: { failures: 3, error_rate: 0.3, window: 1m, open_for: 5s, max_open_for: 1m, probes: 2 }
                health_check: { interval: 10s }
              local:
                kind: ollama
                load_poll: 2s
            routes:
              big:
                strategy: least-busy
                targets:
                  - { provider: a, model: m, price: { input: 2.5, output: 10 } }
                  - { provider: local, model: llama3.2, priority: 1 }
                fallbacks: [small]
                context_fallback: small
                retry: { attempts: 4, backoff: 50ms, max_backoff: 1s, deadline: 30s }
                hedge: { initial: 300ms }
              small:
                targets: [{ provider: local, model: llama3.2 }]
                hedge: true
            rules:
              - when: { prompt_tokens_over: 1000, header: { X-Team: "data-*" } }
                route: small
            """
        let config = try ConfigLoader.load(yaml: yaml, source: "test.yaml", environment: [:])
        let big = try #require(config.routes.first)
        #expect(big.strategy == .leastBusy)
        #expect(big.targets[0].price == TokenPrice(input: 2.5, output: 10))
        #expect(big.fallbacks == ["small"] && big.contextFallback == "small")
        #expect(big.retry == RetryPolicy(attempts: 4, backoff: .milliseconds(50), maxBackoff: .seconds(1), deadline: .seconds(30)))
        #expect(big.hedge == HedgePolicy(initialDelay: .milliseconds(300)))
        #expect(config.routes[1].hedge == HedgePolicy())
        #expect(config.provider("a")?.breaker == BreakerPolicy(consecutiveFailures: 3, errorRate: 0.3, window: .seconds(60), openDuration: .seconds(5), maxOpenDuration: .seconds(60), probes: 2))
        #expect(config.provider("a")?.healthCheck == HealthCheckSettings(interval: .seconds(10)))
        #expect(config.provider("local")?.loadPoll == .seconds(2))
        #expect(config.rules.first?.conditions.headers == ["x-team": "data-*"])
        #expect(config.rules.first?.conditions.promptTokensOver == 1000)
    }

    @Test func danglingReferencesAndBadValuesAreAllReported() {
        let yaml = """
            providers:
              a: { kind: openai, api_key: k, load_poll: 1s }
            routes:
              r:
                strategy: fastest
                targets: [{ provider: a, model: m }]
                fallbacks: [r, smal]
                context_fallback: nowhere
                retry: { attempts: 0 }
              small:
                targets: [{ provider: a, model: m }]
            rules:
              - when: { tenant: acme }
                route: gone
            """
        do {
            _ = try ConfigLoader.load(yaml: yaml, source: "bad.yaml", environment: [:])
            Issue.record("loaded")
        } catch {
            let paths = Set(error.issues.map(\.path))
            #expect(paths.isSuperset(of: [
                "providers.a.load_poll", "routes.r.strategy", "routes.r.fallbacks[0]", "routes.r.fallbacks[1]",
                "routes.r.context_fallback", "routes.r.retry.attempts", "rules[0].route",
            ]))
            #expect(error.issues.contains { $0.message.contains("did you mean 'small'") })
        }
    }
}
