/// One upstream target: a provider and the model name sent to it.
public struct TargetKey: Hashable, Sendable, CustomStringConvertible {
    public let provider: String
    public let model: String

    public init(provider: String, model: String) {
        self.provider = provider
        self.model = model
    }

    public var description: String { "\(self.provider)/\(self.model)" }
}

/// What the gateway knows about one target: its breaker, rest, load and latency.
public struct TargetHealth: Sendable, Equatable {
    public var breaker: CircuitBreaker
    /// Set by a 429's `Retry-After` (or out-of-quota): no new requests until then.
    public var restingUntil: ContinuousClock.Instant?
    public var inFlight = 0
    public var timeToFirstToken = PeakEWMA()
    public var totalLatency = PeakEWMA()
    /// The backend's own report (vLLM queue, Ollama loaded models), when polled.
    public var reportedLoad: BackendLoad?
    public var requests = 0
    public var failures = 0
    public var lastError: String?
    /// The last few failed attempts, newest first.
    public var recentFailures: [TargetFailure] = []
    /// Every attempt over the last minute and the failed ones (a caller's mistakes not): a target
    /// failing behind a failover shows its errors here, not in the requests it did not answer.
    var attempts = RollingOutcomes(span: .seconds(60))

    init(policy: BreakerPolicy) {
        self.breaker = CircuitBreaker(policy: policy)
    }

    /// Resting, or its breaker open or half-open: it may refuse requests.
    var isTroubled: Bool {
        guard self.restingUntil == nil, case .closed = self.breaker.state else { return true }
        return false
    }

    /// The load the balancers compare: our own in-flight requests plus what the backend says it queues.
    public var load: Int { self.inFlight + (self.reportedLoad?.queued ?? 0) }

    mutating func rest(until: ContinuousClock.Instant) {
        self.restingUntil = max(self.restingUntil ?? until, until)
    }
}

/// Why a target takes no new requests right now.
public enum Unavailability: Sendable, Equatable {
    case drained
    case healthCheckFailing
    case resting(until: ContinuousClock.Instant)
    case breakerOpen(until: ContinuousClock.Instant?)

    /// When it may take requests again, when that is known.
    public var until: ContinuousClock.Instant? {
        switch self {
        case .resting(let until): return until
        case .breakerOpen(let until): return until
        case .drained, .healthCheckFailing: return nil
        }
    }

    public var label: String {
        switch self {
        case .drained: return "drained"
        case .healthCheckFailing: return "health_check_failing"
        case .resting: return "resting"
        case .breakerOpen: return "breaker_open"
        }
    }
}

/// The health of every target, as one value the server keeps behind a lock: planning reads it,
/// attempts and their outcomes update it. All time is passed in.
public struct RoutingHealth: Sendable {
    /// An admitted attempt; give it back exactly once through `succeeded`, `failed` or `abandoned`.
    public struct Ticket: Sendable, Equatable {
        public let target: TargetKey
        let admission: CircuitBreaker.Admission
    }

    public private(set) var targets: [TargetKey: TargetHealth] = [:]
    /// The targets resting or whose breaker is not closed: the only ones that can be unavailable for
    /// their own sake. Usually empty, so a healthy target is admitted without reading its state.
    private var troubled: Set<TargetKey> = []
    public private(set) var drained: Set<String> = []
    public private(set) var failingHealthChecks: Set<String> = []
    /// Time to first token per route alias, for the hedging delay.
    private var routeFirstToken: [String: RecentSamples] = [:]
    private var policies: [String: BreakerPolicy] = [:]

    public init(config: GatewayConfig) {
        self.adopt(config)
    }

    /// Takes on a new configuration (a reload, a route edit): targets it still has keep their state
    /// (an open breaker stays open, a drain stays), new ones start healthy, gone ones are forgotten.
    /// A provider whose breaker policy changed starts its targets' breakers afresh.
    public mutating func adopt(_ config: GatewayConfig) {
        let policies = Dictionary(config.providers.map { ($0.id, $0.breaker) }, uniquingKeysWith: { first, _ in first })
        var targets: [TargetKey: TargetHealth] = [:]
        for route in config.routes {
            for target in route.targets where targets[target.key] == nil {
                let policy = policies[target.provider] ?? BreakerPolicy()
                if var existing = self.targets[target.key] {
                    if existing.breaker.policy != policy { existing.breaker = CircuitBreaker(policy: policy) }
                    targets[target.key] = existing
                } else {
                    targets[target.key] = TargetHealth(policy: policy)
                }
            }
        }
        self.targets = targets
        self.troubled = Set(targets.filter { $0.value.isTroubled }.keys)
        self.policies = policies
        self.drained = self.drained.filter { policies[$0] != nil }
        self.failingHealthChecks = self.failingHealthChecks.filter { policies[$0] != nil }
    }

    public subscript(key: TargetKey) -> TargetHealth? { self.targets[key] }

    /// Nil when the target can take a request now.
    public func unavailability(of key: TargetKey, at now: ContinuousClock.Instant) -> Unavailability? {
        if !self.drained.isEmpty, self.drained.contains(key.provider) { return .drained }
        if !self.failingHealthChecks.isEmpty, self.failingHealthChecks.contains(key.provider) { return .healthCheckFailing }
        guard !self.troubled.isEmpty, self.troubled.contains(key), let index = self.targets.index(forKey: key) else { return nil }
        if let until = self.targets.values[index].restingUntil, now < until { return .resting(until: until) }
        if !self.targets.values[index].breaker.isAvailable(at: now) {
            if case .open(let until) = self.targets.values[index].breaker.state { return .breakerOpen(until: until) }
            return .breakerOpen(until: nil)
        }
        return nil
    }

    /// Admits one attempt at `key`, or nil when it became unavailable since planning.
    public mutating func begin(_ key: TargetKey, at now: ContinuousClock.Instant) -> Ticket? {
        guard self.unavailability(of: key, at: now) == nil else { return nil }
        var admission: CircuitBreaker.Admission?
        self.update(key) { health in
            // A rest that is over is forgotten, so the target is no longer read on every request.
            if let until = health.restingUntil, now >= until { health.restingUntil = nil }
            // Only an admission changes the breaker (its half-open step), so it is asked in place.
            admission = health.breaker.admit(at: now)
            guard admission != nil else { return }
            health.inFlight += 1
            health.requests += 1
        }
        return admission.map { Ticket(target: key, admission: $0) }
    }

    /// The attempt's answer completed. `firstToken` is nil for non-streamed answers.
    public mutating func succeeded(_ ticket: Ticket, route: String, firstToken: Duration?, total: Duration, at now: ContinuousClock.Instant) {
        self.update(ticket.target) { health in
            health.inFlight = max(0, health.inFlight - 1)
            health.breaker.recordSuccess(ticket.admission, at: now)
            health.attempts.record(failure: false, at: now)
            health.totalLatency.record(total, at: now)
            if let firstToken { health.timeToFirstToken.record(firstToken, at: now) }
        }
        self.routeFirstToken[route, default: RecentSamples()].record(firstToken ?? total)
    }

    /// - Returns: whether this failure opened the target's breaker (worth a log line and an event).
    @discardableResult
    public mutating func failed(_ ticket: Ticket, _ failure: AttemptFailure, detail: String, at now: ContinuousClock.Instant) -> Bool {
        var opened = false
        self.update(ticket.target) { health in
            let wasOpen = if case .open = health.breaker.state { true } else { false }
            health.inFlight = max(0, health.inFlight - 1)
            health.lastError = detail
            health.recentFailures.insert(TargetFailure(at: now, failure: failure, detail: detail), at: 0)
            if health.recentFailures.count > TargetFailure.kept { health.recentFailures.removeLast() }
            health.attempts.record(failure: failure.faultDomain != .caller, at: now)
            if failure.countsAgainstTarget {
                health.failures += 1
                health.breaker.recordFailure(ticket.admission, at: now)
            } else {
                health.breaker.release(ticket.admission)
            }
            if let rest = failure.rest { health.rest(until: now + rest) }
            if case .open = health.breaker.state, !wasOpen { opened = true }
        }
        return opened
    }

    /// Sits `target` out for `duration` without an attempt of ours failing: a vendor's rate limit that
    /// another replica of the fleet heard. A longer rest already in place stays.
    /// - Returns: whether the target now rests longer than it did.
    @discardableResult
    public mutating func rest(_ target: TargetKey, for duration: Duration, at now: ContinuousClock.Instant) -> Bool {
        var longer = false
        self.update(target) { health in
            let before = health.restingUntil
            health.rest(until: now + duration)
            longer = health.restingUntil != before
        }
        return longer
    }

    /// The attempt ended without a verdict on the target (the client left, a hedge lost the race).
    public mutating func abandoned(_ ticket: Ticket) {
        self.update(ticket.target) { health in
            health.inFlight = max(0, health.inFlight - 1)
            health.breaker.release(ticket.admission)
        }
    }

    /// Opens (`open`) or resets every breaker of `provider`'s targets, or of its one `model`.
    /// - Returns: the targets whose breaker it changed, in order.
    public mutating func setBreakers(of provider: String, model: String?, open: Bool, at now: ContinuousClock.Instant) -> [TargetKey] {
        let keys = self.targets.keys.filter { $0.provider == provider && (model == nil || $0.model == model) }
            .sorted { $0.model < $1.model }
        for key in keys {
            self.update(key) { health in
                if open { health.breaker.forceOpen(at: now) } else { health.breaker.reset() }
            }
        }
        return keys
    }

    /// Stops new requests to every target of `provider`; in-flight ones finish. False if it was already drained.
    @discardableResult
    public mutating func drain(_ provider: String) -> Bool { self.drained.insert(provider).inserted }

    @discardableResult
    public mutating func undrain(_ provider: String) -> Bool { self.drained.remove(provider) != nil }

    public mutating func recordHealthCheck(_ provider: String, passed: Bool) {
        if passed { self.failingHealthChecks.remove(provider) } else { self.failingHealthChecks.insert(provider) }
    }

    /// Applies a backend's load report to its targets (every model when the report is instance-wide).
    public mutating func recordLoad(_ load: BackendLoad, provider: String) {
        for key in self.targets.keys where key.provider == provider {
            var report = load
            if let warm = load.warmModels { report.queued += warm.contains(key.model) ? 0 : BackendLoad.coldPenalty }
            self.targets[key]?.reportedLoad = report
        }
    }

    /// The route's observed time to first token at quantile `q`, once it has `minimumSamples`.
    public func firstTokenQuantile(route: String, _ q: Double, minimumSamples: Int) -> Duration? {
        guard let samples = self.routeFirstToken[route], samples.count >= minimumSamples else { return nil }
        return samples.quantile(q)
    }

    /// Every known target's state, for operators (the admin snapshot, `ctl status`).
    public func statuses(at now: ContinuousClock.Instant) -> [TargetStatus] {
        self.targets.map { key, health in
            let attempts = health.attempts.counts(at: now)
            let breaker: String = switch health.breaker.state {
            case .closed: "closed"
            case .open(let until): now >= until ? "half_open" : "open"
            case .halfOpen: "half_open"
            }
            let resting = health.restingUntil.flatMap { now < $0 ? ($0 - now).seconds : nil }
            return TargetStatus(
                target: key,
                breaker: breaker,
                unavailable: self.unavailability(of: key, at: now)?.label,
                drained: self.drained.contains(key.provider),
                restingSeconds: resting,
                inFlight: health.inFlight,
                reportedQueue: health.reportedLoad?.queued,
                errorRate: health.breaker.errorRate(at: now),
                timeToFirstTokenSeconds: health.timeToFirstToken.value,
                latencySeconds: health.totalLatency.value,
                requests: health.requests,
                failures: health.failures,
                lastError: health.lastError,
                attempts1m: attempts.total,
                failedAttempts1m: attempts.failures,
                recentFailures: health.recentFailures.map {
                    .init(secondsAgo: max(0, (now - $0.at).seconds), kind: $0.kind, faultDomain: $0.faultDomain, detail: $0.detail)
                }
            )
        }.sorted { ($0.target.provider, $0.target.model) < ($1.target.provider, $1.target.model) }
    }

    /// Changes a target's state where it is kept: a copy taken out and put back would share its
    /// rolling windows' storage with the original, and copy them on every change.
    private mutating func update(_ key: TargetKey, _ change: (inout TargetHealth) -> Void) {
        let index = self.ensureTarget(key)
        func apply(_ health: inout TargetHealth) -> Bool {
            change(&health)
            return health.isTroubled
        }
        let wasTroubled = !self.troubled.isEmpty && self.troubled.contains(key)
        // Through the values' index: `targets[key]!` as an `inout` copied the whole state out and back.
        let isTroubled = apply(&self.targets.values[index])
        if isTroubled != wasTroubled {
            if isTroubled { self.troubled.insert(key) } else { self.troubled.remove(key) }
        }
    }

    /// The target's place in `targets`, made for a target not seen before.
    private mutating func ensureTarget(_ key: TargetKey) -> Dictionary<TargetKey, TargetHealth>.Index {
        if let index = self.targets.index(forKey: key) { return index }
        self.targets[key] = TargetHealth(policy: self.policies[key.provider] ?? BreakerPolicy())
        return self.targets.index(forKey: key)!
    }
}

/// One target's state as operators see it.
public struct TargetStatus: Sendable, Equatable {
    public let target: TargetKey
    /// closed | open | half_open
    public let breaker: String
    /// Why it takes no new requests (drained, resting, breaker_open, health_check_failing), nil if it does.
    public let unavailable: String?
    public let drained: Bool
    public let restingSeconds: Double?
    public let inFlight: Int
    public let reportedQueue: Int?
    public let errorRate: Double
    public let timeToFirstTokenSeconds: Double?
    public let latencySeconds: Double?
    public let requests: Int
    public let failures: Int
    public let lastError: String?
    /// Attempts over the last minute, and how many failed.
    public let attempts1m: Int
    public let failedAttempts1m: Int
    public let recentFailures: [RecentFailure]

    /// A failed attempt, as old as it is when the status is read.
    public struct RecentFailure: Sendable, Equatable {
        public let secondsAgo: Double
        public let kind: String
        public let faultDomain: FaultDomain
        public let detail: String
    }
}
