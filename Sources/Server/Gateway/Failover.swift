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

    /// Executes `plan` before the first byte reaches the client: the framework lane's driver of the
    /// request's lifecycle (`AttemptLoop`), each attempt a task of its own, so a timed-out attempt or
    /// a hedge's loser is cancelled alone.
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
        let hedgeDelay = plan.route.hedge.map { policy in
            self.health.withLock { $0.firstTokenQuantile(route: plan.route.alias, 0.95, minimumSamples: policy.minimumSamples) } ?? policy.initialDelay
        }
        var loop = AttemptLoop(plan: plan, hedgeDelay: hedgeDelay)
        let (events, reports) = AsyncStream<AttemptEvent>.makeStream()
        var pending = events.makeAsyncIterator()
        var attempts: [AttemptLoop.AttemptID: RunningAttempt] = [:]
        var winners: [AttemptLoop.AttemptID: AttemptOutcome] = [:]
        var lastFailure: FailedAttempt?
        var alarm: (at: ContinuousClock.Instant, task: Task<Void, Never>)?
        defer {
            alarm?.task.cancel()
            // Whatever still runs lost (a hedge) or nobody waits for it (the client left, a throw).
            for attempt in attempts.values where attempt.claim() {
                attempt.task?.cancel()
                self.health.withLock { $0.abandoned(attempt.ticket) }
            }
            reports.finish()
        }
        var action = loop.start()
        return try await withTaskCancellationHandler {
            while true {
                switch action {
                case .send(let target):
                    // The client left (during a backoff, say): nobody is waiting for more attempts.
                    if Task.isCancelled { throw GatewayError.clientDisconnected }
                    guard let upstream = upstreams[target.provider] else {
                        throw GatewayError.internalFailure("route '\(target.route)' names provider '\(target.provider)', which has no client")
                    }
                    let request = try await build(target, upstream)
                    let now = ContinuousClock.now
                    guard let ticket = self.health.withLock({ $0.begin(target.key, at: now) }) else {
                        action = loop.ticketRefused(target)
                        continue
                    }
                    let id = loop.sent(target, timeouts: upstream.settings.timeouts, streaming: request.streaming, at: now)
                    guard let timer = loop.timer(id) else { throw GatewayError.internalFailure("an attempt without its timer") }
                    let attempt = RunningAttempt(target: target, upstream: upstream, ticket: ticket)
                    attempts[id] = attempt
                    attempt.task = Task {
                        let result = await self.run(attempt, request: request, timer: timer, requestID: requestID, logger: logger) { progress in
                            reports.yield(.progress(id, progress, at: .now))
                        }
                        reports.yield(.finished(id, result))
                    }
                    action = .wait
                case .wait:
                    if let next = loop.nextDeadline, next != alarm?.at {
                        alarm?.task.cancel()
                        // An attempt whose timeout lost the race to its own answer is about to report: no busy loop meanwhile.
                        let at = max(next, .now + .milliseconds(5))
                        alarm = (next, Task {
                            try? await Task.sleep(until: at)
                            if !Task.isCancelled { reports.yield(.alarm) }
                        })
                    }
                    guard let event = await pending.next() else { throw GatewayError.clientDisconnected }
                    switch event {
                    case .progress(let id, .answered(let status), let at):
                        loop.answered(id, status: status, at: at)
                    case .progress(let id, .read, let at):
                        loop.read(id, at: at)
                    case .alarm:
                        alarm = nil
                        action = loop.tick(at: .now)
                    case .clientLeft:
                        _ = loop.clientLeft()
                        throw GatewayError.clientDisconnected
                    case .finished(let id, let result):
                        guard attempts.removeValue(forKey: id) != nil else { continue }
                        action = self.report(result, of: id, to: &loop, winners: &winners, lastFailure: &lastFailure, requestID: requestID, logger: logger)
                    }
                case .timedOut(let id, let phase):
                    guard let attempt = attempts[id] else {
                        action = .wait
                        continue
                    }
                    // Judged here, once: the attempt's own task, cancelled, judges nothing.
                    guard attempt.claim() else {
                        action = .wait
                        continue
                    }
                    attempts[id] = nil
                    attempt.task?.cancel()
                    let result = self.judge(.upstreamTimeout(attempt.upstream.settings, phase), target: attempt.target, ticket: attempt.ticket, logger: logger)
                    action = self.report(result, of: id, to: &loop, winners: &winners, lastFailure: &lastFailure, requestID: requestID, logger: logger)
                case .deliver(let id, let losers):
                    for loser in losers {
                        guard let attempt = attempts.removeValue(forKey: loser), attempt.claim() else { continue }
                        attempt.task?.cancel()
                        self.health.withLock { $0.abandoned(attempt.ticket) }
                    }
                    guard var outcome = winners[id] else {
                        throw GatewayError.internalFailure("a winning attempt without its answer")
                    }
                    outcome = outcome.counted(loop.attemptsStarted, firstSent: loop.firstSent)
                    outcome.hedged = loop.hedged
                    return outcome
                case .giveUp:
                    guard let failure = lastFailure else { throw GatewayError.noHealthyTarget(route: plan.route.alias) }
                    if let outcome = failure.outcome { return outcome }
                    throw failure.error
                }
            }
        } onCancel: {
            reports.yield(.clientLeft)
        }
    }

    /// What the framework lane's driver hears of: its attempts, its alarm, its client.
    private enum AttemptEvent: Sendable {
        case progress(AttemptLoop.AttemptID, UpstreamCall.Progress, at: ContinuousClock.Instant)
        case finished(AttemptLoop.AttemptID, AttemptResult)
        case alarm
        case clientLeft
    }

    /// A judged attempt, reported to the lifecycle.
    private func report(
        _ result: AttemptResult, of id: AttemptLoop.AttemptID, to loop: inout AttemptLoop,
        winners: inout [AttemptLoop.AttemptID: AttemptOutcome], lastFailure: inout FailedAttempt?, requestID: String, logger: Logger
    ) -> AttemptLoop.Action {
        switch result {
        case .won(let outcome):
            winners[id] = outcome
            return loop.succeeded(id)
        case .abandoned:
            return .wait
        case .failed(let target, let failure, let error, let outcome):
            lastFailure = FailedAttempt(error: error, outcome: outcome?.counted(loop.attemptsStarted, firstSent: loop.firstSent))
            return loop.failed(id, failure, on: target, requestID: requestID, logger: logger)
        }
    }

    /// An attempt of the framework lane in flight: its task, and who judges it (its task when it gets
    /// an answer or fails, the driver when it times out, is dropped or loses a hedge), exactly once.
    private final class RunningAttempt: Sendable {
        let target: PlannedTarget
        let upstream: UpstreamPool.Upstream
        let ticket: RoutingHealth.Ticket
        private let claimed = Atomic<Bool>(false)
        private let taskHandle = Mutex<Task<Void, Never>?>(nil)

        init(target: PlannedTarget, upstream: UpstreamPool.Upstream, ticket: RoutingHealth.Ticket) {
            self.target = target
            self.upstream = upstream
            self.ticket = ticket
        }

        var task: Task<Void, Never>? {
            get { self.taskHandle.withLock { $0 } }
            set { self.taskHandle.withLock { $0 = newValue } }
        }

        /// True for the first caller only: the one that judges the attempt.
        func claim() -> Bool {
            !self.claimed.exchange(true, ordering: .acquiringAndReleasing)
        }
    }

    enum AttemptResult: Sendable {
        case won(AttemptOutcome)
        /// With the reply when the upstream answered (the client may get it as it is).
        case failed(PlannedTarget, AttemptFailure, GatewayError, AttemptOutcome?)
        /// Judged elsewhere: the attempt timed out, was dropped, or the client left.
        case abandoned
    }

    /// One attempt: send, wait for the head (and a stream's first chunk), judge the answer, unless
    /// the driver judged it first.
    private func run(
        _ attempt: RunningAttempt, request: UpstreamRequest, timer: AttemptTimer, requestID: String, logger: Logger,
        progress: @escaping @Sendable (UpstreamCall.Progress) -> Void
    ) async -> AttemptResult {
        do {
            let reply = try await UpstreamCall.post(
                request.body, path: request.path, model: attempt.target.upstreamModel, to: attempt.upstream,
                requestID: requestID, timer: timer, traceparent: request.traceparent, progress: progress
            )
            guard attempt.claim() else { return .abandoned }
            return self.judge(
                reply, target: attempt.target, upstream: attempt.upstream, ticket: attempt.ticket, sent: timer.sent, streamed: reply.stream != nil, logger: logger
            )
        } catch {
            guard attempt.claim() else { return .abandoned }
            let gatewayError = GatewayError.from(error, provider: attempt.upstream.settings, streaming: request.streaming)
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
    mutating func failed(_ id: AttemptID, _ failure: AttemptFailure, on target: PlannedTarget, requestID: String, logger: Logger) -> Action {
        let action = self.failed(id, failure, at: .now, random: Double.random(in: 0..<1))
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
