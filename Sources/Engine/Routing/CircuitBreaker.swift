/// `providers.<id>.breaker:` — when a target stops getting traffic, and how it earns it back.
public struct BreakerPolicy: Sendable, Equatable {
    /// Consecutive failures that open the breaker, whatever the window says.
    public var consecutiveFailures: Int
    /// Failure share over `window` that opens the breaker, once `minimumRequests` were seen in it.
    public var errorRate: Double
    public var minimumRequests: Int
    public var window: Duration
    /// The first rest; each failed probe doubles it, up to `maxOpenDuration`.
    public var openDuration: Duration
    public var maxOpenDuration: Duration
    /// Requests let through at once while half-open.
    public var probes: Int

    public init(
        consecutiveFailures: Int = 5,
        errorRate: Double = 0.5,
        minimumRequests: Int = 10,
        window: Duration = .seconds(30),
        openDuration: Duration = .seconds(15),
        maxOpenDuration: Duration = .seconds(300),
        probes: Int = 1
    ) {
        self.consecutiveFailures = consecutiveFailures
        self.errorRate = errorRate
        self.minimumRequests = minimumRequests
        self.window = window
        self.openDuration = openDuration
        self.maxOpenDuration = maxOpenDuration
        self.probes = probes
    }
}

/// A circuit breaker as a value-type state machine. Time is always passed in, so it runs the same
/// under a fake clock in tests as under the real one in the server.
///
/// closed → (too many failures) → open until T → (T passed) → half-open: up to `probes` requests →
/// one success closes it, one failure opens it again for twice as long.
public struct CircuitBreaker: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        case closed
        case open(until: ContinuousClock.Instant)
        case halfOpen
    }

    /// How an admitted request counts: a probe decides the half-open breaker's fate.
    public enum Admission: Sendable, Equatable {
        case normal
        case probe
    }

    public let policy: BreakerPolicy
    public private(set) var state: State = .closed
    public private(set) var consecutiveFailures = 0
    private var window: RollingOutcomes
    private var probesInFlight = 0
    /// How many times in a row it opened; sets the next rest.
    private var trips = 0

    public init(policy: BreakerPolicy) {
        self.policy = policy
        self.window = RollingOutcomes(span: policy.window)
    }

    /// Whether a request could be admitted now, without taking a probe slot (for planning).
    public func isAvailable(at now: ContinuousClock.Instant) -> Bool {
        switch self.state {
        case .closed: return true
        case .open(let until): return now >= until && self.policy.probes > 0
        case .halfOpen: return self.probesInFlight < self.policy.probes
        }
    }

    /// Admits a request, or refuses it (nil) while open or out of probe slots.
    public mutating func admit(at now: ContinuousClock.Instant) -> Admission? {
        if case .open(let until) = self.state, now >= until {
            self.state = .halfOpen
            self.probesInFlight = 0
        }
        switch self.state {
        case .closed:
            return .normal
        case .open:
            return nil
        case .halfOpen:
            guard self.probesInFlight < self.policy.probes else { return nil }
            self.probesInFlight += 1
            return .probe
        }
    }

    public mutating func recordSuccess(_ admission: Admission, at now: ContinuousClock.Instant) {
        self.window.record(failure: false, at: now)
        self.consecutiveFailures = 0
        if admission == .probe {
            self.probesInFlight = max(0, self.probesInFlight - 1)
            if self.state == .halfOpen {
                self.state = .closed
                self.trips = 0
                self.window.reset()
            }
        }
    }

    public mutating func recordFailure(_ admission: Admission, at now: ContinuousClock.Instant) {
        self.window.record(failure: true, at: now)
        self.consecutiveFailures += 1
        if admission == .probe {
            self.probesInFlight = max(0, self.probesInFlight - 1)
            if self.state == .halfOpen { self.trip(at: now) }
            return
        }
        guard self.state == .closed else { return }
        let counts = self.window.counts(at: now)
        let rateTripped = counts.total >= self.policy.minimumRequests
            && Double(counts.failures) >= self.policy.errorRate * Double(counts.total)
        if self.consecutiveFailures >= self.policy.consecutiveFailures || rateTripped {
            self.trip(at: now)
        }
    }

    /// A request that was admitted but never got an answer either way (the client left): frees its
    /// probe slot without judging the target.
    public mutating func release(_ admission: Admission) {
        if admission == .probe { self.probesInFlight = max(0, self.probesInFlight - 1) }
    }

    /// An operator's open: as if it had just tripped, so it rests and then probes as any open breaker.
    public mutating func forceOpen(at now: ContinuousClock.Instant) {
        self.trip(at: now)
    }

    /// An operator's reset: closed, its failures forgotten, the next rest back to the first one's length.
    public mutating func reset() {
        self.state = .closed
        self.consecutiveFailures = 0
        self.probesInFlight = 0
        self.trips = 0
        self.window.reset()
    }

    /// Failure share over the window, for the admin snapshot.
    public func errorRate(at now: ContinuousClock.Instant) -> Double {
        let counts = self.window.counts(at: now)
        return counts.total == 0 ? 0 : Double(counts.failures) / Double(counts.total)
    }

    private mutating func trip(at now: ContinuousClock.Instant) {
        var rest = self.policy.openDuration
        for _ in 0..<min(self.trips, 16) where rest < self.policy.maxOpenDuration { rest = rest * 2 }
        self.trips += 1
        self.state = .open(until: now + min(rest, self.policy.maxOpenDuration))
        self.probesInFlight = 0
        self.window.reset()
    }
}

/// Success and failure counts over a sliding window, in ten buckets, so recording and reading are
/// constant time and memory whatever the traffic.
struct RollingOutcomes: Sendable, Equatable {
    static let bucketCount = 10
    private let bucketSpan: Duration
    private var origin: ContinuousClock.Instant?
    private var buckets = [Bucket](repeating: Bucket(), count: Self.bucketCount)

    struct Bucket: Sendable, Equatable {
        var index = -1
        var total = 0
        var failures = 0
    }

    init(span: Duration) {
        self.bucketSpan = max(span / Self.bucketCount, .milliseconds(1))
    }

    mutating func record(failure: Bool, at now: ContinuousClock.Instant) {
        if self.origin == nil { self.origin = now }
        let index = self.indexFromOrigin(now)
        let slot = index % Self.bucketCount
        if self.buckets[slot].index != index { self.buckets[slot] = Bucket(index: index) }
        self.buckets[slot].total += 1
        if failure { self.buckets[slot].failures += 1 }
    }

    func counts(at now: ContinuousClock.Instant) -> (total: Int, failures: Int) {
        let current = self.indexFromOrigin(now)
        var total = 0
        var failures = 0
        for bucket in self.buckets where bucket.index > current - Self.bucketCount && bucket.index <= current {
            total += bucket.total
            failures += bucket.failures
        }
        return (total, failures)
    }

    mutating func reset() {
        self.buckets = [Bucket](repeating: Bucket(), count: Self.bucketCount)
    }

    /// In whole nanoseconds: dividing one `Duration` by another is 128-bit arithmetic, on every request.
    private func indexFromOrigin(_ now: ContinuousClock.Instant) -> Int {
        guard let origin = self.origin, now > origin else { return 0 }
        return Int((now - origin).nanoseconds / max(1, self.bucketSpan.nanoseconds))
    }
}

extension Duration {
    /// Whole nanoseconds (saturating past about 292 years).
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = self.components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return seconds < 0 ? .min : .max }
        return scaled.addingReportingOverflow(attoseconds / 1_000_000_000).partialValue
    }
}
