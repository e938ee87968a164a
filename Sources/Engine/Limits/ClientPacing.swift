/// What a client connection is doing, as far as its timeouts go.
public enum ClientStage: Sendable, Equatable {
    /// Before the first request, or once part of a request head has come: the whole head must come
    /// within `header_timeout`.
    case head
    /// A request body arriving: at `body_min_rate` on average once `body_grace` has passed.
    case body
    /// Between requests, nothing owed and nothing sent: `idle_timeout`.
    case idle
    /// The gateway owes an answer (an upstream at work, an answer being written): no client timeout,
    /// however long it takes.
    case answering
}

/// Which of a client's limits ran out; also the label of `switchyard_client_timeouts_total`.
public enum ClientTimeout: String, Sendable, CaseIterable {
    case header
    case body
    case idle
}

/// One client connection's pace, looked at on each tick of its event loop's sweep (no timer per
/// connection or per request): the connection says what it is doing (its stage), how many requests
/// it has begun and how much of the current request's body it has received, and the pacing says
/// whether a limit ran out.
///
/// A stage is timed from the tick that first saw it, so a limit runs out up to one tick late. A new
/// request (the count moved) starts a stage afresh even when its name is the same, so a busy
/// keep-alive connection is never taken for an idle one.
public struct ClientPacing: Sendable {
    private var stage = ClientStage.head
    private var since: ContinuousClock.Instant
    private var requestsAtStart = 0

    /// A connection just accepted: its first head is timed from now.
    public init(acceptedAt now: ContinuousClock.Instant) {
        self.since = now
    }

    /// - Parameters:
    ///   - requests: requests begun on the connection so far.
    ///   - bodyReceived: bytes of the current request's body received so far (those that came with
    ///     its head included).
    /// - Returns: the limit that ran out, nil while the client keeps within its limits.
    public mutating func check(
        _ stage: ClientStage, requests: Int, bodyReceived: Int, now: ContinuousClock.Instant, limits: ClientLimits
    ) -> ClientTimeout? {
        if stage != self.stage || requests != self.requestsAtStart {
            self.stage = stage
            self.since = now
            self.requestsAtStart = requests
            return nil
        }
        let elapsed = now - self.since
        switch stage {
        case .head:
            return elapsed >= limits.headerTimeout ? .header : nil
        case .idle:
            return elapsed >= limits.idleTimeout ? .idle : nil
        case .answering:
            return nil
        case .body:
            let late = elapsed - limits.bodyGrace
            guard late > .zero else { return nil }
            // In floating point: a configured rate times a long body's seconds never traps.
            let due = Double(limits.bodyMinRate) * (Double(late.components.seconds) + Double(late.components.attoseconds) * 1e-18)
            return Double(bodyReceived) < due ? .body : nil
        }
    }
}
