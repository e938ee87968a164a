/// One request's way through its targets: which to try first, and after each failure, whether and
/// where to try next and how long to wait. A value-type state machine; the server only executes it.
///
/// Used only before the first byte reaches the client: after it, nothing is retried.
public struct FailoverPlan: Sendable {
    public enum Step: Sendable, Equatable {
        /// Try `target` after waiting `after`.
        case attempt(PlannedTarget, after: Duration)
        /// Stop: answer the client with the last failure.
        case giveUp
    }

    public let route: RouteSettings
    public private(set) var candidates: [PlannedTarget]
    private var contextCandidates: [PlannedTarget]
    private var switchedForContext = false
    public let deadline: ContinuousClock.Instant
    public private(set) var attemptsStarted = 0
    /// Targets this request will not try again (timed out, rate-limited, refused our key…).
    private var excluded = Set<TargetKey>()
    private var tries = TryCounts()
    private var cursor = 0

    init(route: RouteSettings, candidates: [PlannedTarget], contextCandidates: [PlannedTarget], startedAt: ContinuousClock.Instant) {
        self.route = route
        self.candidates = candidates
        self.contextCandidates = contextCandidates
        self.deadline = startedAt + route.retry.deadline
    }

    public var policy: RetryPolicy { self.route.retry }

    /// Every target this plan may use, the context-window fallback's included.
    public var everyCandidate: [PlannedTarget] { self.contextCandidates.isEmpty ? self.candidates : self.candidates + self.contextCandidates }

    /// The first target to try.
    public var first: PlannedTarget { self.candidates[0] }

    /// Counts an attempt that really went out (a skipped target does not count).
    public mutating func started(_ target: PlannedTarget) {
        self.attemptsStarted += 1
        self.tries.count(target.key)
    }

    /// Whether another attempt fits the budget, for a hedge.
    public var hasAttemptsLeft: Bool { self.attemptsStarted < self.policy.attempts }

    /// A target for a hedge: the next candidate not already in flight or excluded, or nil.
    public mutating func hedgeTarget(besides busy: Set<TargetKey>, at now: ContinuousClock.Instant) -> PlannedTarget? {
        guard self.hasAttemptsLeft, now < self.deadline else { return nil }
        guard let index = self.nextIndex(where: { !busy.contains($0.key) && self.tries[$0.key] == nil }) else { return nil }
        self.cursor = index
        return self.candidates[index]
    }

    /// The target turned out unavailable when its attempt was about to start (breaker, drain): the
    /// next one, without counting an attempt or waiting.
    public mutating func skip(_ target: PlannedTarget) -> PlannedTarget? {
        self.excluded.insert(target.key)
        guard let index = self.nextIndex(where: { _ in true }) else { return nil }
        self.cursor = index
        return self.candidates[index]
    }

    /// What to do after `target` failed with `failure`.
    /// - Parameter random: in 0..<1, for the backoff's jitter.
    public mutating func next(after failure: AttemptFailure, on target: PlannedTarget, at now: ContinuousClock.Instant, random: Double) -> Step {
        switch failure {
        case .caller:
            return .giveUp
        case .contextTooLong:
            // A bigger model is a different request, not a retry: it gets its own candidates.
            guard !self.switchedForContext, !self.contextCandidates.isEmpty, self.hasAttemptsLeft, now < self.deadline else { return .giveUp }
            self.switchedForContext = true
            self.candidates = self.contextCandidates
            self.excluded = []
            self.cursor = 0
            return .attempt(self.candidates[0], after: .zero)
        default:
            break
        }
        guard self.hasAttemptsLeft, now < self.deadline else { return .giveUp }
        if !failure.mayRetrySameTarget { self.excluded.insert(target.key) }

        if let index = self.nextIndex(where: { _ in true }) {
            self.cursor = index
            let candidate = self.candidates[index]
            // A fresh target is tried at once; the same one again only after a backoff.
            let retries = self.tries[candidate.key] ?? 0
            let wait = retries == 0 ? .zero : self.policy.backoff(retry: retries - 1, random: random)
            return now + wait < self.deadline ? .attempt(candidate, after: wait) : .giveUp
        }
        // Nothing else can serve: wait out a short Retry-After on the same target, if it fits.
        if case .rateLimited(let retryAfter) = failure {
            let wait = retryAfter ?? AttemptFailure.defaultRateLimitRest
            if wait <= self.policy.maxRetryAfter && now + wait < self.deadline {
                self.excluded.remove(target.key)
                return .attempt(target, after: wait)
            }
        }
        return .giveUp
    }

    /// The first candidate after the cursor (wrapping around, the cursor's own last) that is not
    /// excluded and satisfies `condition`.
    private func nextIndex(where condition: (PlannedTarget) -> Bool) -> Int? {
        let count = self.candidates.count
        for step in 1...count {
            let index = (self.cursor + step) % count
            let candidate = self.candidates[index]
            if !self.excluded.contains(candidate.key) && condition(candidate) { return index }
        }
        return nil
    }
}

/// How often each target was tried: the first target tried inline, the others (failovers, retries
/// elsewhere) in a dictionary, which most requests never make.
private struct TryCounts: Sendable {
    private var first: (key: TargetKey, tries: Int)?
    private var others: [TargetKey: Int] = [:]

    subscript(key: TargetKey) -> Int? {
        if let first = self.first, first.key == key { return first.tries }
        return self.others[key]
    }

    mutating func count(_ key: TargetKey) {
        if self.first == nil { self.first = (key, 0) }
        if self.first?.key == key {
            self.first?.tries += 1
        } else {
            self.others[key, default: 0] += 1
        }
    }
}
