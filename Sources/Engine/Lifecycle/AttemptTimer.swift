/// When an attempt in flight times out, and which of its provider's timeouts that is: one rule for
/// every lane. Before the head: `first_byte` or `total`, whichever is shorter (for a stream, `idle`
/// too), within what is left of the request's deadline. After it, a whole answer may never be silent
/// for `first_byte` and must be complete within `total`; a stream's first chunk must come within
/// `idle` of its head. A value: the lanes ask it, at the instants they choose.
public struct AttemptTimer: Sendable, Equatable {
    public let timeouts: UpstreamTimeouts
    public let sent: ContinuousClock.Instant
    /// The request's deadline (its route's `retry.deadline` from the start).
    public let requestDeadline: ContinuousClock.Instant
    public let streaming: Bool
    public private(set) var answeredAt: ContinuousClock.Instant?
    /// The answer is a successful stream, relayed as it comes (its first chunk is awaited).
    public private(set) var relaysStream = false
    public private(set) var lastRead: ContinuousClock.Instant?

    public init(timeouts: UpstreamTimeouts, sent: ContinuousClock.Instant, requestDeadline: ContinuousClock.Instant, streaming: Bool) {
        self.timeouts = timeouts
        self.sent = sent
        self.requestDeadline = requestDeadline
        self.streaming = streaming
    }

    /// The answer's head came; `status` decides whether it is relayed as a stream or read whole.
    public mutating func answered(status: Int, at now: ContinuousClock.Instant) {
        self.answeredAt = now
        self.relaysStream = self.streaming && (200..<300).contains(status)
    }

    /// Part of a whole answer was read.
    public mutating func read(at now: ContinuousClock.Instant) {
        self.lastRead = now
    }

    /// The next instant at which the attempt has timed out, and the timeout it is.
    public var deadline: (at: ContinuousClock.Instant, phase: TimeoutPhase) {
        guard let answeredAt = self.answeredAt else {
            var phase = TimeoutPhase.firstByte
            if self.timeouts.total < self.timeouts[phase] { phase = .total }
            if self.streaming, self.timeouts.idle < self.timeouts[phase] { phase = .idle }
            return (min(self.sent + self.timeouts[phase], max(self.requestDeadline, self.sent + .milliseconds(1))), phase)
        }
        if self.relaysStream { return (answeredAt + self.timeouts.idle, .idle) }
        let silence = (self.lastRead ?? answeredAt) + self.timeouts.firstByte
        let total = self.sent + self.timeouts.total
        return silence < total ? (silence, .firstByte) : (total, .total)
    }

    /// The timeout that has fired by `now`, if any.
    public func expired(at now: ContinuousClock.Instant) -> TimeoutPhase? {
        let deadline = self.deadline
        return now >= deadline.at ? deadline.phase : nil
    }
}

/// The timeouts of a stream being relayed: never silent for `idle` while the client keeps up (its
/// own slowness pauses the clock), and over by its attempt's `total`.
public struct RelayTimer: Sendable, Equatable {
    public let idle: Duration
    /// The attempt's send plus its `total`.
    public let deadline: ContinuousClock.Instant
    public private(set) var lastChunk: ContinuousClock.Instant
    /// The client reads slower than the upstream writes: the upstream is not read meanwhile, and its
    /// silence is not its fault.
    public private(set) var paused = false

    public init(idle: Duration, deadline: ContinuousClock.Instant, at now: ContinuousClock.Instant) {
        self.idle = idle
        self.deadline = deadline
        self.lastChunk = now
    }

    public mutating func chunk(at now: ContinuousClock.Instant) {
        self.lastChunk = now
    }

    /// The client stopped (or went back to) reading: silence while held was the client's.
    public mutating func clientReading(_ reading: Bool, at now: ContinuousClock.Instant) {
        self.paused = !reading
        if reading { self.lastChunk = now }
    }

    /// When to look again.
    public func nextCheck(at now: ContinuousClock.Instant) -> ContinuousClock.Instant {
        min((self.paused ? now : self.lastChunk) + self.idle, self.deadline)
    }

    /// The timeout that has fired by `now`, if any.
    public func expired(at now: ContinuousClock.Instant) -> TimeoutPhase? {
        if now >= self.deadline { return .total }
        if !self.paused, now - self.lastChunk >= self.idle { return .idle }
        return nil
    }
}
