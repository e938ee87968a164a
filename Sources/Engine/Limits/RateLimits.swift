/// The limits of one tenant or one key. Nil means unlimited.
public struct LimitSettings: Sendable, Equatable {
    public var requestsPerMinute: Int?
    public var requestsPerDay: Int?
    public var tokensPerMinute: Int?
    public var concurrency: Int?
    public var dailyBudgetUSD: Double?
    public var monthlyBudgetUSD: Double?

    public init(
        requestsPerMinute: Int? = nil, requestsPerDay: Int? = nil, tokensPerMinute: Int? = nil, concurrency: Int? = nil,
        dailyBudgetUSD: Double? = nil, monthlyBudgetUSD: Double? = nil
    ) {
        self.requestsPerMinute = requestsPerMinute
        self.requestsPerDay = requestsPerDay
        self.tokensPerMinute = tokensPerMinute
        self.concurrency = concurrency
        self.dailyBudgetUSD = dailyBudgetUSD
        self.monthlyBudgetUSD = monthlyBudgetUSD
    }
}

/// The generic cell rate algorithm: `limit` requests per `period`, spread evenly, with a burst of the
/// whole limit. One timestamp of state (the theoretical arrival time), exact under any interleaving.
public struct GCRA: Sendable, Equatable {
    public let limit: Int
    public let period: Duration
    private var theoreticalArrival: ContinuousClock.Instant?

    public init(limit: Int, period: Duration) {
        self.limit = max(1, limit)
        self.period = period
    }

    private var interval: Duration { self.period / self.limit }
    private var tolerance: Duration { self.period - self.interval }

    /// Whether one more request fits now, without taking it.
    public func check(at now: ContinuousClock.Instant) -> LimitDecision {
        let arrival = max(self.theoreticalArrival ?? now, now)
        let waited = arrival - now
        if waited > self.tolerance {
            return LimitDecision(allowed: false, limit: self.limit, remaining: 0, reset: waited, retryAfter: waited - self.tolerance)
        }
        let after = waited + self.interval
        let remaining = max(0, Int(((self.period - after) / self.interval).rounded(.down)))
        return LimitDecision(allowed: true, limit: self.limit, remaining: remaining, reset: after, retryAfter: nil)
    }

    /// Takes one request (call only after an allowed `check`).
    public mutating func take(at now: ContinuousClock.Instant) {
        self.theoreticalArrival = max(self.theoreticalArrival ?? now, now) + self.interval
    }
}

/// A token bucket that is reserved from and settled into: admission takes the estimate, the answer
/// gives back what was not used (or takes the overrun). Refills continuously to `capacity` a period.
public struct TokenBucket: Sendable, Equatable {
    public let capacity: Int
    public let period: Duration
    /// May go negative after an overrun: the debt delays the next requests.
    private var available: Double
    private var updated: ContinuousClock.Instant?

    public init(capacity: Int, period: Duration) {
        self.capacity = max(1, capacity)
        self.period = period
        self.available = Double(self.capacity)
    }

    private mutating func refill(_ now: ContinuousClock.Instant) {
        if let updated, now > updated {
            self.available = min(Double(self.capacity), self.available + Double(self.capacity) * (now - updated).seconds / self.period.seconds)
        }
        self.updated = max(self.updated ?? now, now)
    }

    public mutating func check(_ tokens: Int, at now: ContinuousClock.Instant) -> LimitDecision {
        self.refill(now)
        let rate = Double(self.capacity) / self.period.seconds
        let untilFull = Duration.seconds(max(0, Double(self.capacity) - self.available) / rate)
        guard Double(tokens) <= self.available else {
            let wait = tokens > self.capacity ? self.period : Duration.seconds((Double(tokens) - self.available) / rate)
            return LimitDecision(allowed: false, limit: self.capacity, remaining: UntrustedNumber.count(self.available), reset: untilFull, retryAfter: wait)
        }
        return LimitDecision(allowed: true, limit: self.capacity, remaining: UntrustedNumber.count(self.available - Double(tokens)), reset: untilFull, retryAfter: nil)
    }

    public mutating func take(_ tokens: Int, at now: ContinuousClock.Instant) {
        self.refill(now)
        self.available -= Double(tokens)
    }

    /// Gives back `reserved - actual` (negative when the answer used more than reserved).
    public mutating func settle(reserved: Int, actual: Int, at now: ContinuousClock.Instant) {
        self.refill(now)
        self.available = min(Double(self.capacity), self.available + Double(reserved - actual))
    }
}

/// One limit's verdict, with what the `x-ratelimit-*` headers say.
public struct LimitDecision: Sendable, Equatable {
    public var allowed: Bool
    public var limit: Int
    public var remaining: Int
    /// Until the limit is fully available again.
    public var reset: Duration
    /// When refused: how long until this request would fit.
    public var retryAfter: Duration?

    public init(allowed: Bool, limit: Int, remaining: Int, reset: Duration, retryAfter: Duration?) {
        self.allowed = allowed
        self.limit = limit
        self.remaining = remaining
        self.reset = reset
        self.retryAfter = retryAfter
    }
}
