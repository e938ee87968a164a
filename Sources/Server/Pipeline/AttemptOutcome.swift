import Engine
import NIOCore

/// The attempt whose answer the client gets: a success, or the failure that ended the trying.
struct AttemptOutcome: Sendable {
    let target: PlannedTarget
    let upstream: UpstreamPool.Upstream
    let reply: UpstreamCall.Reply
    let lease: TargetLease
    /// When this attempt was sent and when its answer (head, or a stream's first chunk) arrived.
    let sent: ContinuousClock.Instant
    let replied: ContinuousClock.Instant
    /// When the request's first attempt was sent: the gateway's own time is before it and after `replied`.
    var firstSent: ContinuousClock.Instant
    /// Attempts that went out for this request, this one included.
    var attempts = 1
    var hedged = false

    /// This attempt as the request's answer: how many attempts it took, and when the first went out.
    func counted(_ attempts: Int, firstSent: ContinuousClock.Instant?) -> AttemptOutcome {
        var outcome = self
        outcome.attempts = attempts
        outcome.firstSent = firstSent ?? self.sent
        return outcome
    }

    /// Time spent in the gateway, without the upstream waits and the backoffs between attempts.
    func overhead(since started: ContinuousClock.Instant) -> Duration {
        (self.firstSent - started) + (ContinuousClock.now - self.replied)
    }
}
