import Engine
import Logging
import NIOCore
import Synchronization

/// What one attempt sends. Built per target: the targets of one route may speak different dialects.
struct UpstreamRequest: Sendable {
    let body: ByteBuffer
    let path: String
    let streaming: Bool
    /// The client's `traceparent`, when valid.
    var traceparent: String?
}

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

extension GatewayState {
    /// Plans `request` with `routing`'s routes: the route, and its healthy targets in the order to try them.
    func plan(_ request: RequestFeatures, in routing: RoutingSnapshot) throws(GatewayError) -> FailoverPlan {
        var random = SystemRandomNumberGenerator()
        let now = ContinuousClock.now
        return try self.health.withLock { (health: inout RoutingHealth) throws(GatewayError) -> FailoverPlan in
            try routing.routes.plan(request, health: health, at: now, using: &random)
        }
    }

    /// Executes `plan` before the first byte reaches the client: attempts, retries with backoff,
    /// failover along the plan, the context-window fallback, and a hedge when the route asks.
    ///
    /// - Parameter build: the request body for one target (it may throw a caller error, which ends it).
    /// - Returns: the winning attempt, or the failed reply the client should see.
    /// - Throws: the last transport failure when no attempt got a reply, or `noHealthyTarget`.
    func execute(
        _ plan: FailoverPlan,
        upstreams: UpstreamPool,
        requestID: String,
        logger: Logger,
        build: @escaping @Sendable (PlannedTarget, UpstreamPool.Upstream) async throws -> UpstreamRequest
    ) async throws -> AttemptOutcome {
        var plan = plan
        var target = plan.first
        var lastFailure: (error: GatewayError, outcome: AttemptOutcome?)?
        var hedge = plan.route.hedge
        var hedged = false
        var firstSent: ContinuousClock.Instant?
        while true {
            // The client left (during a backoff, say): nobody is waiting for more attempts.
            if Task.isCancelled { throw GatewayError.clientDisconnected }
            guard let upstream = upstreams[target.provider] else {
                throw GatewayError.internalFailure("route '\(target.route)' names provider '\(target.provider)', which has no client")
            }
            let request = try await build(target, upstream)
            let now = ContinuousClock.now
            guard let ticket = self.health.withLock({ $0.begin(target.key, at: now) }) else {
                // It went down since planning (a breaker opened, an operator drained it): move on.
                guard let next = plan.skip(target) else { break }
                target = next
                continue
            }
            plan.started(target)
            if firstSent == nil { firstSent = now }
            let attempt = Attempt(target: target, upstream: upstream, request: request, ticket: ticket)
            let result: AttemptResult
            if let policy = hedge {
                hedge = nil
                (result, hedged) = await self.race(attempt, plan: &plan, upstreams: upstreams, policy: policy, requestID: requestID, logger: logger, build: build)
            } else {
                result = await self.run(attempt, deadline: plan.deadline, requestID: requestID, logger: logger)
            }

            switch result {
            case .won(let outcome):
                var counted = outcome.counted(plan.attemptsStarted, firstSent: firstSent)
                counted.hedged = hedged
                return counted
            case .abandoned:
                throw GatewayError.clientDisconnected
            case .failed(let failedTarget, let failure, let error, let outcome):
                lastFailure = (error, outcome?.counted(plan.attemptsStarted, firstSent: firstSent))
                guard case .attempt(let next, let wait) = plan.step(after: failure, on: failedTarget, requestID: requestID, logger: logger) else { break }
                if wait > .zero { try await Task.sleep(for: wait) }
                target = next
                continue
            }
            break
        }
        guard let lastFailure else { throw GatewayError.noHealthyTarget(route: plan.route.alias) }
        if let outcome = lastFailure.outcome { return outcome }
        throw lastFailure.error
    }

    private struct Attempt: Sendable {
        let target: PlannedTarget
        let upstream: UpstreamPool.Upstream
        let request: UpstreamRequest
        let ticket: RoutingHealth.Ticket
    }

    enum AttemptResult: Sendable {
        case won(AttemptOutcome)
        /// With the reply when the upstream answered (the client may get it as it is).
        case failed(PlannedTarget, AttemptFailure, GatewayError, AttemptOutcome?)
        /// Cancelled: the client left, or a hedge won the race.
        case abandoned
    }

    /// One attempt: send, wait for the head (and a stream's first chunk), judge the answer.
    private func run(_ attempt: Attempt, deadline: ContinuousClock.Instant, requestID: String, logger: Logger) async -> AttemptResult {
        let sent = ContinuousClock.now
        do {
            let reply = try await UpstreamCall.post(
                attempt.request.body, path: attempt.request.path, model: attempt.target.upstreamModel, to: attempt.upstream,
                requestID: requestID, streaming: attempt.request.streaming, sent: sent, deadline: deadline,
                traceparent: attempt.request.traceparent
            )
            return self.judge(
                reply, target: attempt.target, upstream: attempt.upstream, ticket: attempt.ticket, sent: sent, streamed: reply.stream != nil, logger: logger
            )
        } catch {
            if Task.isCancelled {
                self.health.withLock { $0.abandoned(attempt.ticket) }
                return .abandoned
            }
            let gatewayError = GatewayError.from(error, provider: attempt.upstream.settings, streaming: attempt.request.streaming)
            return self.judge(gatewayError, target: attempt.target, ticket: attempt.ticket, logger: logger)
        }
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

    private enum RaceEvent: Sendable {
        case finished(AttemptResult)
        case hedgeDue
    }

    /// Runs `primary`; if it has produced nothing after the route's p95 time to first token, a second
    /// attempt starts on another target, and whichever answers first wins (the other is cancelled).
    /// - Returns: the result, and whether a hedge was sent.
    private func race(
        _ primary: Attempt,
        plan: inout FailoverPlan,
        upstreams: UpstreamPool,
        policy: HedgePolicy,
        requestID: String,
        logger: Logger,
        build: @escaping @Sendable (PlannedTarget, UpstreamPool.Upstream) async throws -> UpstreamRequest
    ) async -> (AttemptResult, Bool) {
        let delay = self.health.withLock { $0.firstTokenQuantile(route: plan.route.alias, 0.95, minimumSamples: policy.minimumSamples) } ?? policy.initialDelay
        let deadline = plan.deadline
        return await withTaskGroup(of: RaceEvent.self, returning: (AttemptResult, Bool).self) { group in
            group.addTask { .finished(await self.run(primary, deadline: deadline, requestID: requestID, logger: logger)) }
            group.addTask {
                try? await Task.sleep(for: delay)
                return .hedgeDue
            }
            var running = 1
            var hedged = false
            var lastFailure: AttemptResult?
            while let event = await group.next() {
                switch event {
                case .hedgeDue:
                    guard running > 0, !hedged, let second = await self.startHedge(besides: primary.target, plan: &plan, upstreams: upstreams, build: build) else { continue }
                    hedged = true
                    running += 1
                    logger.debug("hedging", metadata: ["gw.request_id": "\(requestID)", "gw.target": "\(second.target.key)", "gw.after_ms": "\(delay.milliseconds)"])
                    group.addTask { .finished(await self.run(second, deadline: deadline, requestID: requestID, logger: logger)) }
                case .finished(let result):
                    running -= 1
                    if case .won = result {
                        group.cancelAll()
                        return (result, hedged)
                    }
                    if case .failed = result { lastFailure = result }
                    if running == 0 {
                        group.cancelAll()
                        return (lastFailure ?? result, hedged)
                    }
                }
            }
            return (lastFailure ?? .abandoned, hedged)
        }
    }

    private func startHedge(
        besides primary: PlannedTarget,
        plan: inout FailoverPlan,
        upstreams: UpstreamPool,
        build: (PlannedTarget, UpstreamPool.Upstream) async throws -> UpstreamRequest
    ) async -> Attempt? {
        let now = ContinuousClock.now
        guard let target = plan.hedgeTarget(besides: [primary.key], at: now), let upstream = upstreams[target.provider],
            let request = try? await build(target, upstream),
            let ticket = self.health.withLock({ $0.begin(target.key, at: now) })
        else { return nil }
        plan.started(target)
        return Attempt(target: target, upstream: upstream, request: request, ticket: ticket)
    }
}

extension GatewayState {
    func breakerOpened(_ target: TargetKey, failure: AttemptFailure, logger: Logger) {
        logger.warning("circuit breaker opened", metadata: ["gw.target": "\(target)", "gw.error": "\(failure.label)"])
        var event = AdminEvent(kind: .breakerOpened, message: "circuit breaker of \(target) opened after \(failure.label)", provider: target.provider)
        event.model = target.model
        self.events.publish(event)
    }
}

/// A failed attempt as the client may get it: the error, and the upstream's reply when it answered.
struct FailedAttempt: Sendable {
    let error: GatewayError
    let outcome: AttemptOutcome?
}

extension AttemptLoop {
    /// Reports a failed attempt at this instant, logged with the failure and what follows.
    mutating func failed(_ id: AttemptID, _ failure: AttemptFailure, on target: PlannedTarget, record: Failure, requestID: String, logger: Logger) -> Action {
        let action = self.failed(id, failure, record: record, at: .now, random: Double.random(in: 0..<1))
        let next: String
        switch action {
        case .send(let target): next = "\(target.key) now"
        case .giveUp: next = "give up"
        default: next = self.nextDeadline.map { "wait \(($0 - .now).milliseconds) ms" } ?? "wait"
        }
        logger.log(
            level: failure == .caller ? .debug : .warning,
            "upstream attempt failed",
            metadata: [
                "gw.request_id": "\(requestID)", "gw.target": "\(target.key)", "gw.failure": "\(failure.label)",
                "gw.attempt": "\(self.attemptsStarted)", "gw.next": "\(next)",
            ]
        )
        return action
    }
}

extension FailoverPlan {
    /// What follows a failed attempt, logged with the failure.
    mutating func step(after failure: AttemptFailure, on target: PlannedTarget, requestID: String, logger: Logger) -> Step {
        let step = self.next(after: failure, on: target, at: ContinuousClock.now, random: Double.random(in: 0..<1))
        logger.log(
            level: failure == .caller ? .debug : .warning,
            "upstream attempt failed",
            metadata: [
                "gw.request_id": "\(requestID)", "gw.target": "\(target.key)", "gw.failure": "\(failure.label)",
                "gw.attempt": "\(self.attemptsStarted)", "gw.next": "\(step.logDescription)",
            ]
        )
        return step
    }
}

extension FailoverPlan.Step {
    var logDescription: String {
        switch self {
        case .attempt(let target, let wait): return "\(target.key) after \(wait.milliseconds) ms"
        case .giveUp: return "give up"
        }
    }
}
