import Engine
import Logging
import Synchronization

/// An admitted attempt's hold on its target: counted in flight until the answer is complete, then
/// judged once (success, failure, or abandoned when nobody is left to judge it).
final class TargetLease: Sendable {
    private let state: GatewayState
    private let ticket: RoutingHealth.Ticket
    private let route: String
    private let sent: ContinuousClock.Instant
    private let firstByte: ContinuousClock.Instant?
    private let settled = Atomic<Bool>(false)
    private let logger: Logger

    init(state: GatewayState, ticket: RoutingHealth.Ticket, route: String, sent: ContinuousClock.Instant, firstByte: ContinuousClock.Instant?, logger: Logger) {
        self.state = state
        self.ticket = ticket
        self.route = route
        self.sent = sent
        self.firstByte = firstByte
        self.logger = logger
    }

    func succeeded() {
        guard self.settle() else { return }
        let now = ContinuousClock.now
        let firstToken = self.firstByte.map { $0 - self.sent }
        self.state.health.withLock { $0.succeeded(self.ticket, route: self.route, firstToken: firstToken, total: now - self.sent, at: now) }
    }

    func failed(_ failure: AttemptFailure, detail: String) {
        guard self.settle() else { return }
        let now = ContinuousClock.now
        let opened = self.state.health.withLock { $0.failed(self.ticket, failure, detail: detail, at: now) }
        if opened { self.state.breakerOpened(self.ticket.target, failure: failure, logger: self.logger) }
        // A vendor's rate limit is the account's, not this replica's: the fleet rests the target too.
        if let rest = failure.rest, self.state.fleet != nil { GatewayControl(state: self.state).restFleetWide(self.ticket.target, for: rest) }
    }

    func abandoned() {
        guard self.settle() else { return }
        self.state.health.withLock { $0.abandoned(self.ticket) }
    }

    private func settle() -> Bool {
        !self.settled.exchange(true, ordering: .acquiringAndReleasing)
    }

    deinit {
        // A response body that was never drained (the client left first) must not hold its target busy.
        if !self.settled.load(ordering: .acquiring) {
            self.state.health.withLock { $0.abandoned(self.ticket) }
        }
    }
}
