import Engine
import Logging
import NIOCore
import Synchronization

extension GatewayState {
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
        trace: RequestTrace? = nil,
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
                attempt.span?.cancelled()
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
                    var request = try await build(target, upstream)
                    let now = ContinuousClock.now
                    guard let ticket = self.health.withLock({ $0.begin(target.key, at: now) }) else {
                        action = loop.ticketRefused(target)
                        continue
                    }
                    let id = loop.sent(target, timeouts: upstream.settings.timeouts, streaming: request.streaming, at: now)
                    guard let timer = loop.timer(id) else { throw GatewayError.internalFailure("an attempt without its timer") }
                    let span = trace?.attempt(target, upstream: upstream, streaming: request.streaming, at: now)
                    if let span { request.traceparent = span.propagation.traceparent }
                    let attempt = RunningAttempt(target: target, upstream: upstream, ticket: ticket, span: span)
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
                        guard let attempt = attempts.removeValue(forKey: id) else { continue }
                        attempt.span?.judged(result)
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
                    attempt.span?.judged(result)
                    action = self.report(result, of: id, to: &loop, winners: &winners, lastFailure: &lastFailure, requestID: requestID, logger: logger)
                case .deliver(let id, let losers):
                    for loser in losers {
                        guard let attempt = attempts.removeValue(forKey: loser), attempt.claim() else { continue }
                        attempt.task?.cancel()
                        attempt.span?.cancelled()
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
        /// Its client span, when the request is traced.
        let span: AttemptSpan?
        private let claimed = Atomic<Bool>(false)
        private let taskHandle = Mutex<Task<Void, Never>?>(nil)

        init(target: PlannedTarget, upstream: UpstreamPool.Upstream, ticket: RoutingHealth.Ticket, span: AttemptSpan?) {
            self.target = target
            self.upstream = upstream
            self.ticket = ticket
            self.span = span
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

    /// One attempt: send, wait for the head (and a stream's first chunk), judge the answer, unless
    /// the driver judged it first.
    private func run(
        _ attempt: RunningAttempt, request: UpstreamRequest, timer: AttemptTimer, requestID: String, logger: Logger,
        progress: @escaping @Sendable (UpstreamCall.Progress) -> Void
    ) async -> AttemptResult {
        do {
            let reply = try await UpstreamCall.post(
                request.body, path: request.path, model: attempt.target.upstreamModel, to: attempt.upstream,
                requestID: requestID, timer: timer, traceparent: request.traceparent, eventLoop: request.eventLoop, progress: progress
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
}
