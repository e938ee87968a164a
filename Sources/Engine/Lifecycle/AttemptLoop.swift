/// One request's attempts, from the first send until an answer wins or the trying ends: which target
/// next (`FailoverPlan`), a target found down at its turn skipped, the backoff between tries, the hedge
/// a slow first attempt gets, and every attempt's timeouts (`AttemptTimer`). A value-type state
/// machine over instants, tested without sockets: events in, actions out. Each lane only carries its
/// actions out (takes tickets, sends, cancels), reports back, and keeps the last failure to answer
/// with when the loop gives up. (Not generic over that record: unspecialized generic code across the
/// module boundary costs the fast lane on every call.)
public struct AttemptLoop: Sendable {
    public typealias AttemptID = Int

    public enum Action: Sendable {
        /// Take a ticket for `target` and send to it; report `sent`, or `ticketRefused` when its
        /// target is down now.
        case send(PlannedTarget)
        /// Nothing until an attempt reports or `nextDeadline` comes (`tick`).
        case wait
        /// The attempt ran out of time (`phase`): drop it, then report it `failed` with that timeout.
        case timedOut(AttemptID, TimeoutPhase)
        /// The attempt won: answer with it, after dropping these others (a hedge's loser).
        case deliver(AttemptID, cancelling: [AttemptID])
        /// No attempt is left to make: answer with the last failure (none: no target could be tried).
        case giveUp
    }

    private struct InFlight: Sendable {
        let id: AttemptID
        let target: PlannedTarget
        var timer: AttemptTimer
    }

    public private(set) var plan: FailoverPlan
    /// When the route hedges: how long the first attempt may go without an answer before a second
    /// starts elsewhere. Cleared once used.
    private var hedgeDelay: Duration?
    private var hedgeAt: ContinuousClock.Instant?
    public private(set) var hedged = false
    private var inFlight: [InFlight] = []
    private var backoff: (until: ContinuousClock.Instant, target: PlannedTarget)?
    private var nextID = 0
    public private(set) var firstSent: ContinuousClock.Instant?
    public private(set) var isOver = false

    /// - Parameter hedgeDelay: for a hedging route, its delay (the route's p95 time to first token).
    public init(plan: FailoverPlan, hedgeDelay: Duration? = nil) {
        self.plan = plan
        self.hedgeDelay = plan.route.hedge == nil ? nil : hedgeDelay
    }

    public var attemptsStarted: Int { self.plan.attemptsStarted }

    public func start() -> Action {
        .send(self.plan.first)
    }

    /// `target` turned out down at its turn (a breaker opened, an operator drained it): the next one,
    /// without counting an attempt or waiting.
    public mutating func ticketRefused(_ target: PlannedTarget) -> Action {
        // A hedge whose target went down: the first attempt carries on alone.
        if !self.inFlight.isEmpty { return .wait }
        if let next = self.plan.skip(target) { return .send(next) }
        return self.inFlight.isEmpty ? self.end() : .wait
    }

    /// The attempt to `target` went out at `now`, timed by its provider's `timeouts`.
    public mutating func sent(_ target: PlannedTarget, timeouts: UpstreamTimeouts, streaming: Bool, at now: ContinuousClock.Instant) -> AttemptID {
        self.plan.started(target)
        if self.firstSent == nil {
            self.firstSent = now
            if let delay = self.hedgeDelay { self.hedgeAt = now + delay }
        }
        self.nextID += 1
        self.inFlight.append(InFlight(id: self.nextID, target: target, timer: AttemptTimer(timeouts: timeouts, sent: now, requestDeadline: self.plan.deadline, streaming: streaming)))
        return self.nextID
    }

    /// The attempt's answer began: its head, with `status`.
    public mutating func answered(_ id: AttemptID, status: Int, at now: ContinuousClock.Instant) {
        guard let index = self.index(of: id) else { return }
        self.inFlight[index].timer.answered(status: status, at: now)
    }

    /// Part of the attempt's whole answer arrived.
    public mutating func read(_ id: AttemptID, at now: ContinuousClock.Instant) {
        guard let index = self.index(of: id) else { return }
        self.inFlight[index].timer.read(at: now)
    }

    /// The attempt's timing, for a lane that shows it (its send, its head).
    public func timer(_ id: AttemptID) -> AttemptTimer? {
        self.index(of: id).map { self.inFlight[$0].timer }
    }

    /// The attempt has an answer the client gets (a success; a stream's first chunk).
    public mutating func succeeded(_ id: AttemptID) -> Action {
        guard self.index(of: id) != nil, !self.isOver else { return .wait }
        var others: [AttemptID] = []
        for attempt in self.inFlight where attempt.id != id { others.append(attempt.id) }
        self.inFlight.removeAll(keepingCapacity: true)
        self.isOver = true
        return .deliver(id, cancelling: others)
    }

    /// The attempt failed (`failure` says how, for the choice of what follows).
    /// - Parameter random: in 0..<1, for the backoff's jitter.
    public mutating func failed(_ id: AttemptID, _ failure: AttemptFailure, at now: ContinuousClock.Instant, random: Double) -> Action {
        guard let index = self.index(of: id), !self.isOver else { return .wait }
        let attempt = self.inFlight.remove(at: index)
        // A hedge still racing may yet win.
        guard self.inFlight.isEmpty else { return .wait }
        self.hedgeAt = nil
        switch self.plan.next(after: failure, on: attempt.target, at: now, random: random) {
        case .giveUp:
            return self.end()
        case .attempt(let next, let wait):
            guard wait > .zero else { return .send(next) }
            self.backoff = (now + wait, next)
            return .wait
        }
    }

    /// The client left: nothing more is tried.
    /// - Returns: the attempts to drop.
    public mutating func clientLeft() -> [AttemptID] {
        let ids = self.inFlight.map(\.id)
        self.inFlight = []
        self.backoff = nil
        self.hedgeAt = nil
        self.isOver = true
        return ids
    }

    /// When `tick` has something to do next: a timeout, the end of a backoff, a hedge due.
    public var nextDeadline: ContinuousClock.Instant? {
        guard !self.isOver else { return nil }
        var next: ContinuousClock.Instant?
        for attempt in self.inFlight {
            let at = attempt.timer.deadline.at
            next = min(next ?? at, at)
        }
        if let backoff = self.backoff { next = min(next ?? backoff.until, backoff.until) }
        if let hedgeAt = self.hedgeAt { next = min(next ?? hedgeAt, hedgeAt) }
        return next
    }

    /// Time passed: what is due at `now`, one action at a time (call again while it is not `wait`).
    public mutating func tick(at now: ContinuousClock.Instant) -> Action {
        guard !self.isOver else { return .wait }
        for attempt in self.inFlight {
            if let phase = attempt.timer.expired(at: now) { return .timedOut(attempt.id, phase) }
        }
        if let backoff = self.backoff, now >= backoff.until {
            self.backoff = nil
            return .send(backoff.target)
        }
        if let hedgeAt = self.hedgeAt, now >= hedgeAt {
            self.hedgeAt = nil
            self.hedgeDelay = nil
            guard self.inFlight.count == 1,
                let target = self.plan.hedgeTarget(besides: Set(self.inFlight.map(\.target.key)), at: now)
            else { return .wait }
            self.hedged = true
            return .send(target)
        }
        return .wait
    }

    private func index(of id: AttemptID) -> Int? {
        self.inFlight.firstIndex { $0.id == id }
    }

    private mutating func end() -> Action {
        self.isOver = true
        self.backoff = nil
        self.hedgeAt = nil
        return .giveUp
    }
}
