import Engine
import Logging
import NIOCore
import Synchronization

extension GatewayState {
    /// Plans `request` with `routing`'s routes: the route, and its healthy targets in the order to try them.
    func plan(_ request: RequestFeatures, in routing: RoutingSnapshot) throws(GatewayError) -> FailoverPlan {
        var random = SystemRandomNumberGenerator()
        let now = ContinuousClock.now
        return try self.health.withLock { (health: inout RoutingHealth) throws(GatewayError) -> FailoverPlan in
            try routing.routes.plan(request, health: health, at: now, using: &random)
        }
    }

    /// The plan of a follow-up to a response `provider` keeps: only its targets (`RouteTable`).
    func plan(_ request: RequestFeatures, in routing: RoutingSnapshot, heldBy provider: String, model: String, responseID: String) throws(GatewayError) -> FailoverPlan {
        var random = SystemRandomNumberGenerator()
        let now = ContinuousClock.now
        return try self.health.withLock { (health: inout RoutingHealth) throws(GatewayError) -> FailoverPlan in
            try routing.routes.plan(request, heldBy: provider, model: model, responseID: responseID, health: health, at: now, using: &random)
        }
    }

    enum AttemptResult: Sendable {
        case won(AttemptOutcome)
        /// With the reply when the upstream answered (the client may get it as it is).
        case failed(PlannedTarget, AttemptFailure, GatewayError, AttemptOutcome?)
        /// Judged elsewhere: the attempt timed out, was dropped, or the client left.
        case abandoned
    }

    /// An attempt that got an answer: won, or failed with the reply the client may get.
    /// - Parameter streamed: a successful stream whose first chunk came (it is judged when it ends).
    func judge(
        _ reply: UpstreamCall.Reply, target: PlannedTarget, upstream: UpstreamPool.Upstream, ticket: RoutingHealth.Ticket,
        sent: ContinuousClock.Instant, streamed: Bool, logger: Logger
    ) -> AttemptResult {
        let lease = TargetLease(
            state: self, ticket: ticket, route: target.route, sent: sent, firstByte: streamed ? ContinuousClock.now : nil, logger: logger
        )
        let outcome = AttemptOutcome(target: target, upstream: upstream, reply: reply, lease: lease, sent: sent, replied: ContinuousClock.now, firstSent: sent)
        guard reply.isSuccess else {
            let failure = reply.failure(provider: target.provider)
            let error = reply.error(provider: target.provider)
            lease.failed(failure, detail: error.message)
            return .failed(target, failure, error, outcome)
        }
        // A stream is judged when it ends; a whole body already has.
        if !streamed { lease.succeeded() }
        return .won(outcome)
    }

    /// An attempt that got no answer (a transport failure or a timeout), counted against its target.
    func judge(_ error: GatewayError, target: PlannedTarget, ticket: RoutingHealth.Ticket, logger: Logger) -> AttemptResult {
        let failure = AttemptFailure.classify(error)
        let opened = self.health.withLock { $0.failed(ticket, failure, detail: error.message, at: ContinuousClock.now) }
        if opened { self.breakerOpened(target.key, failure: failure, logger: logger) }
        return .failed(target, failure, error, nil)
    }

    func breakerOpened(_ target: TargetKey, failure: AttemptFailure, logger: Logger) {
        logger.warning("circuit breaker opened", metadata: ["gw.target": "\(target)", "gw.error": "\(failure.label)"])
        var event = AdminEvent(kind: .breakerOpened, message: "circuit breaker of \(target) opened after \(failure.label)", provider: target.provider)
        event.model = target.model
        self.events.publish(event)
    }
}
