import AsyncHTTPClient
import Engine
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import Synchronization

/// The OpenAI fast path served where the request arrives: on the connection's event loop, with the
/// upstream reached through that loop's own connections, without a task, an async hop or
/// AsyncHTTPClient. It sits in each connection's pipeline in front of Hummingbird and takes the
/// requests that need nothing else: a chat completion (whole or streamed) from an anonymous caller to a
/// route without a cache or hedging whose targets are all plain-HTTP OpenAI-compatible upstreams.
/// Every other request, and every request the fast lane could not take as it is (a bad body, an
/// unknown model, a refusal), goes on to Hummingbird unchanged, where the same code answers it in full.
///
/// Requests on one connection are answered in order: while the fast lane answers one, what follows
/// waits (and the connection is not read); while Hummingbird answers one, the next goes to Hummingbird too.
final class FastLaneHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private enum Phase {
        case idle
        /// A fast-lane candidate whose body is arriving.
        case collecting(HTTPRequest, ByteBuffer)
        /// Parts of a request Hummingbird answers, until its end.
        case passing
        case serving(FastExchange)
    }

    private let state: GatewayState
    private var phase = Phase.idle
    /// Requests handed to Hummingbird whose response has not ended.
    private var frameworkResponses = 0
    /// Parts that arrived while the fast lane was answering.
    private var waiting = CircularBuffer<HTTPRequestPart>()
    private var readHeld = false
    /// A graceful shutdown asked to close the connection while the fast lane answers: passed on (and
    /// the connection closed by Hummingbird) once the answer is written.
    private var quiescePending = false

    init(state: GatewayState) {
        self.state = state
    }

    private var isServing: Bool {
        if case .serving = self.phase { return true }
        return false
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = self.unwrapInboundIn(data)
        guard !self.isServing, self.waiting.isEmpty else {
            self.waiting.append(part)
            return
        }
        self.process(part, context: context)
    }

    private func process(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        switch (self.phase, part) {
        case (.idle, .head(let head)):
            if self.frameworkResponses == 0, Self.isCandidate(head) {
                self.phase = .collecting(head, context.channel.allocator.buffer(capacity: 0))
            } else {
                self.handOver(part, context: context)
                self.phase = .passing
            }
        case (.collecting(let head, var body), .body(var chunk)):
            self.phase = .idle
            if body.readableBytes + chunk.readableBytes > self.state.server.maxBodyBytes {
                // Hummingbird refuses it with the 413 in the client's dialect.
                self.handOver(.head(head), context: context)
                context.fireChannelRead(self.wrapInboundOut(.body(body)))
                context.fireChannelRead(self.wrapInboundOut(part))
                self.phase = .passing
            } else {
                body.writeBuffer(&chunk)
                self.phase = .collecting(head, body)
            }
        case (.collecting(let head, let body), .end(let trailers)):
            self.phase = .idle
            if let exchange = FastExchange(head: head, body: body, state: self.state, handler: self, context: context) {
                self.phase = .serving(exchange)
                exchange.begin()
            } else {
                self.handOver(.head(head), context: context)
                if body.readableBytes > 0 { context.fireChannelRead(self.wrapInboundOut(.body(body))) }
                context.fireChannelRead(self.wrapInboundOut(.end(trailers)))
            }
        case (.passing, .end):
            self.phase = .idle
            context.fireChannelRead(self.wrapInboundOut(part))
        default:
            context.fireChannelRead(self.wrapInboundOut(part))
        }
        self.passQuiesceWhenFree(context: context)
    }

    /// Passes a request's head on to Hummingbird, which now owes a response.
    private func handOver(_ head: HTTPRequestPart, context: ChannelHandlerContext) {
        self.frameworkResponses += 1
        context.fireChannelRead(self.wrapInboundOut(head))
    }

    /// Only `POST /v1/chat/completions` on a connection the client keeps open can be fast.
    private static func isCandidate(_ head: HTTPRequest) -> Bool {
        head.method == .post && head.path == "/v1/chat/completions" && head.headerFields[.connection] != "close"
            && head.headerFields[.expect] == nil
    }

    /// The fast lane's answer is written: the connection goes on with what arrived meanwhile.
    fileprivate func exchangeEnded(context: ChannelHandlerContext) {
        self.phase = .idle
        if !self.waiting.isEmpty {
            while !self.isServing, !self.waiting.isEmpty {
                self.process(self.waiting.removeFirst(), context: context)
            }
            // Outside a read of the socket: what was passed on reaches Hummingbird at the end of a read.
            context.fireChannelReadComplete()
            if self.readHeld, !self.isServing {
                self.readHeld = false
                context.read()
            }
        }
        self.passQuiesceWhenFree(context: context)
    }

    /// Hands a held shutdown request on once no request is the fast lane's: Hummingbird closes the
    /// connection then, or after the answer it owes.
    private func passQuiesceWhenFree(context: ChannelHandlerContext) {
        guard self.quiescePending, self.isFree else { return }
        self.quiescePending = false
        context.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
    }

    private var isFree: Bool {
        switch self.phase {
        case .idle, .passing: return true
        case .collecting, .serving: return false
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = self.unwrapOutboundIn(data) { self.frameworkResponses -= 1 }
        context.write(data, promise: promise)
    }

    /// Once a pipelined request waits behind the fast lane's answer, nothing more is read: the client's
    /// further requests wait in its socket. (Holding reads sooner would cost two `epoll_ctl` a request.)
    func read(context: ChannelHandlerContext) {
        if self.isServing, !self.waiting.isEmpty {
            self.readHeld = true
        } else {
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if case .serving(let exchange) = self.phase { exchange.clientWritabilityChanged() }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent, !self.isFree {
            self.quiescePending = true
            return
        }
        // As on the slow path, a client that half-closes has hung up.
        if case .some(.inputClosed) = event as? ChannelEvent, case .serving(let exchange) = self.phase { exchange.clientLeft() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .serving(let exchange) = self.phase { exchange.clientLeft() }
        context.fireChannelInactive()
    }
}

/// One fast-lane request: its attempts along the failover plan, and the answer written to the client,
/// whole or relayed as a stream.
final class FastExchange: UpstreamExchangeReceiver, ConnectionWaiter, DeadlineHolder {
    private let state: GatewayState
    private unowned let handler: FastLaneHandler
    private let context: ChannelHandlerContext
    private let pool: LoopConnectionPool
    private let routing: RoutingSnapshot
    private var plan: FailoverPlan
    private let patch: OpenAIRequestPatch
    private let admission: Admission
    private let requestID: String
    private let traceparent: String?
    private let started: ContinuousClock.Instant
    private let logger: Logger

    /// A class: it changes as the answer arrives, and copying a struct of this size cost 2 % a request.
    private final class Attempt {
        let target: PlannedTarget
        let upstream: UpstreamPool.Upstream
        let endpoint: PlainHTTPEndpoint
        let ticket: RoutingHealth.Ticket
        let head: HTTPRequestHead
        let body: ByteBuffer
        let sent: ContinuousClock.Instant
        var connection: UpstreamConnection?
        var answer: HTTPResponseHead?
        var answeredAt: ContinuousClock.Instant?
        var answerBody: ByteBuffer?
        /// A reused connection that failed before answering gets one retry on a new connection.
        var retriedOnNewConnection = false

        /// A successful stream is relayed as it comes; anything else is read whole.
        var relaysStream: Bool { self.answer.map { (200..<300).contains(Int($0.status.code)) } == true && self.isStreaming }
        let isStreaming: Bool

        init(
            target: PlannedTarget, upstream: UpstreamPool.Upstream, endpoint: PlainHTTPEndpoint, ticket: RoutingHealth.Ticket, head: HTTPRequestHead,
            body: ByteBuffer, sent: ContinuousClock.Instant, isStreaming: Bool
        ) {
            self.target = target
            self.upstream = upstream
            self.endpoint = endpoint
            self.ticket = ticket
            self.head = head
            self.body = body
            self.sent = sent
            self.isStreaming = isStreaming
        }
    }

    /// A stream being relayed to the client, after its attempt won.
    private struct Relay {
        let exchange: ExchangeContext
        let connection: UpstreamConnection?
        var relay: OpenAIStreamRelay
        let totalDeadline: ContinuousClock.Instant
        var lastChunk: ContinuousClock.Instant
    }

    private var attempt: Attempt?
    private var relay: Relay?
    /// The one deadline in force (a timeout, or the end of a backoff), checked by the loop's sweep.
    private var deadline: (at: ContinuousClock.Instant, fire: () -> Void)?
    var sweepSlot: Int?
    private var firstSent: ContinuousClock.Instant?
    private var lastFailure: (error: GatewayError, outcome: AttemptOutcome?)?
    private var done = false

    /// Nil when the request is not one for the fast lane, or would be refused: Hummingbird takes it.
    init?(head: HTTPRequest, body: ByteBuffer, state: GatewayState, handler: FastLaneHandler, context: ChannelHandlerContext) {
        let started = ContinuousClock.now
        guard let pool = state.loopUpstreams.pool(on: context.eventLoop) else { return nil }
        let request = Request(head: head, body: RequestBody(buffer: body))
        guard let caller = try? state.identify(request), caller.tenant == nil, let patch = try? OpenAIRequestPatch(body: body) else { return nil }
        let routing = state.routing
        let features = routing.features(model: patch.clientModel, streaming: patch.isStreaming, maxTokens: patch.maxTokens, body: body, of: request)
        guard let plan = try? state.plan(features, in: routing), plan.route.hedge == nil,
            plan.everyCandidate.allSatisfy({ routing.upstreams[$0.provider].map { $0.settings.wire == .openAIChat && $0.plainEndpoint != nil } ?? false })
        else { return nil }
        do {
            if try state.cache.plan(route: plan.route, body: body, dialect: .openAI, caller: caller, request: request) != nil { return nil }
        } catch {
            return nil
        }
        self.state = state
        self.handler = handler
        self.context = context
        self.pool = pool
        self.routing = routing
        self.plan = plan
        self.patch = patch
        self.admission = Admission(caller: caller, ticket: nil)
        self.requestID = state.identity.make(clientSupplied: head.headerFields[.requestID])
        self.traceparent = head.headerFields[.traceparent].flatMap { TraceContext.isValidTraceparent($0) ? $0 : nil }
        self.started = started
        self.logger = state.logger
    }

    func begin() {
        self.state.metrics.recordFastLane()
        self.start(self.plan.first)
    }

    // MARK: Attempts

    private func start(_ target: PlannedTarget) {
        guard let upstream = self.routing.upstreams[target.provider], let endpoint = upstream.plainEndpoint else {
            return self.fail(.internalFailure("route '\(target.route)' names provider '\(target.provider)', which has no client"))
        }
        let now = ContinuousClock.now
        guard let ticket = self.state.health.withLock({ $0.begin(target.key, at: now) }) else {
            // It went down since planning (a breaker opened, an operator drained it): move on.
            guard let next = self.plan.skip(target) else { return self.giveUp() }
            return self.start(next)
        }
        self.plan.started(target)
        if self.firstSent == nil { self.firstSent = now }
        let body = self.patch.upstreamBody(model: target.upstreamModel, requestStreamUsage: upstream.settings.acceptsStreamOptions)
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: endpoint.pathPrefix + "/chat/completions", headers: upstream.headers)
        head.headers.replaceOrAdd(name: "host", value: endpoint.authority)
        head.headers.replaceOrAdd(name: "x-request-id", value: self.requestID)
        if let traceparent = self.traceparent { head.headers.replaceOrAdd(name: "traceparent", value: traceparent) }
        head.headers.replaceOrAdd(name: "content-length", value: String(body.readableBytes))
        self.attempt = Attempt(
            target: target, upstream: upstream, endpoint: endpoint, ticket: ticket, head: head, body: body, sent: now, isStreaming: self.patch.isStreaming
        )

        // Like AsyncHTTPClient's deadline: the head must come within `first_byte` (or `total`, or what is
        // left of the request's deadline, whichever is shortest), waiting for a connection included.
        // One timer an attempt: when it fires after the head came, the rest of the answer is given the
        // rest of `total` (a stream's first chunk, `idle`).
        let timeouts = upstream.settings.timeouts
        let phase = timeouts.total < timeouts.firstByte ? "total" : "first_byte"
        let limit = timeouts.total < timeouts.firstByte ? timeouts.total : timeouts.firstByte
        let headWait = min(limit, max(self.plan.deadline - now, .milliseconds(1)))
        let headTimeout = GatewayError.upstreamTimeout(provider: target.provider, phase: phase, limit: DurationText.format(limit))
        self.arm(after: headWait) {
            guard let attempt = self.attempt else { return }
            guard attempt.answer != nil else { return self.attemptFailed(headTimeout) }
            if attempt.relaysStream, let answeredAt = attempt.answeredAt {
                let idle = GatewayError.upstreamTimeout(provider: target.provider, phase: "idle", limit: DurationText.format(timeouts.idle))
                return self.arm(after: answeredAt + timeouts.idle - .now) { self.attemptFailed(idle) }
            }
            let totalTimeout = GatewayError.upstreamTimeout(provider: target.provider, phase: "total", limit: DurationText.format(timeouts.total))
            let remaining = attempt.sent + timeouts.total - .now
            guard remaining > .zero else { return self.attemptFailed(totalTimeout) }
            self.arm(after: remaining) { self.attemptFailed(totalTimeout) }
        }
        self.pool.acquire(endpoint, for: self)
    }

    var wantsConnection: Bool { !self.done && self.attempt != nil && self.attempt?.connection == nil }

    func connectionReady(_ result: Result<UpstreamConnection, any Error>) {
        guard let attempt = self.attempt else { return }
        switch result {
        case .success(let connection):
            attempt.connection = connection
            connection.send(attempt.head, body: attempt.body, to: self)
        case .failure(let error):
            self.attemptFailed(GatewayError.from(error, provider: attempt.upstream.settings, streaming: attempt.isStreaming))
        }
    }

    func upstreamHead(_ head: HTTPResponseHead) {
        self.attempt?.answer = head
        self.attempt?.answeredAt = .now
    }

    func upstreamBody(_ part: ByteBuffer) {
        if self.relay != nil { return self.relayChunk(part) }
        guard let attempt = self.attempt, let answer = attempt.answer else { return }
        if attempt.relaysStream { return self.streamStarted(attempt, first: part) }
        var part = part
        let limit = (200..<300).contains(Int(answer.status.code)) ? UpstreamCall.maxBody : UpstreamCall.maxErrorBody
        if (attempt.answerBody?.readableBytes ?? 0) + part.readableBytes > limit {
            return self.attemptFailed(.upstreamMalformed(provider: attempt.target.provider, detail: "the answer is larger than \(limit) bytes"))
        }
        if attempt.answerBody == nil {
            attempt.answerBody = part
        } else {
            attempt.answerBody?.writeBuffer(&part)
        }
    }

    func upstreamReadComplete() {
        if self.relay != nil { self.context.flush() }
    }

    func upstreamEnd() {
        if self.relay != nil { return self.endRelay(failure: nil) }
        guard let attempt = self.attempt, let answer = attempt.answer else { return }
        if attempt.relaysStream {
            return self.attemptFailed(.streamInterrupted(provider: attempt.target.provider, detail: "the stream ended before its first event"))
        }
        self.disarm()
        let response = HTTPClientResponse(version: answer.version, status: answer.status, headers: answer.headers)
        let reply = UpstreamCall.Reply(response: response, body: attempt.answerBody ?? ByteBuffer(), stream: nil)
        let result = self.state.judge(
            reply, target: attempt.target, upstream: attempt.upstream, ticket: attempt.ticket, sent: attempt.sent, streamed: false, logger: self.logger
        )
        self.attempt = nil
        self.settle(result)
    }

    func upstreamFailed(_ error: any Error, answered: Bool) {
        if let relay = self.relay {
            return self.endRelay(failure: GatewayError.from(error, provider: relay.exchange.upstream.settings, streaming: true))
        }
        guard let attempt = self.attempt else { return }
        if !answered, let connection = attempt.connection, connection.wasUsed, !attempt.retriedOnNewConnection {
            // The upstream closed an idle keep-alive connection as we reused it: nothing reached it.
            attempt.retriedOnNewConnection = true
            attempt.connection = nil
            self.pool.acquire(attempt.endpoint, fresh: true, for: self)
            return
        }
        self.attemptFailed(GatewayError.from(error, provider: attempt.upstream.settings, streaming: attempt.isStreaming))
    }

    /// The attempt ended without an answer (a transport failure, a timeout): it counts against its target.
    private func attemptFailed(_ error: GatewayError) {
        guard let attempt = self.attempt else { return }
        self.attempt = nil
        self.disarm()
        attempt.connection?.abandon()
        self.settle(self.state.judge(error, target: attempt.target, ticket: attempt.ticket, logger: self.logger))
    }

    private func settle(_ result: GatewayState.AttemptResult) {
        switch result {
        case .won(let outcome):
            self.answer(outcome.counted(self.plan.attemptsStarted, firstSent: self.firstSent))
        case .abandoned:
            self.clientLeft()
        case .failed(let target, let failure, let error, let outcome):
            self.lastFailure = (error, outcome?.counted(self.plan.attemptsStarted, firstSent: self.firstSent))
            guard case .attempt(let next, let wait) = self.plan.step(after: failure, on: target, requestID: self.requestID, logger: self.logger) else {
                return self.giveUp()
            }
            guard wait > .zero else { return self.start(next) }
            self.arm(after: wait) { self.start(next) }
        }
    }

    /// Runs `fired` after `delay` (give or take the sweep's tick), replacing any earlier deadline.
    private func arm(after delay: Duration, _ fired: @escaping () -> Void) {
        self.deadline = (.now + delay, fired)
        self.pool.deadlines.watch(self)
    }

    private func disarm() {
        self.deadline = nil
        self.pool.deadlines.unwatch(self)
    }

    func sweep(now: ContinuousClock.Instant) {
        guard let deadline = self.deadline, deadline.at <= now else { return }
        self.disarm()
        deadline.fire()
    }

    // MARK: Streams

    /// A successful stream's first chunk: the attempt has won, and the relay begins.
    private func streamStarted(_ attempt: Attempt, first: ByteBuffer) {
        self.attempt = nil
        guard let answer = attempt.answer else { return }
        let response = HTTPClientResponse(version: answer.version, status: answer.status, headers: answer.headers)
        let reply = UpstreamCall.Reply(response: response, body: nil, stream: nil)
        let result = self.state.judge(
            reply, target: attempt.target, upstream: attempt.upstream, ticket: attempt.ticket, sent: attempt.sent, streamed: true, logger: self.logger
        )
        guard case .won(let won) = result else { return self.settle(result) }
        let outcome = won.counted(self.plan.attemptsStarted, firstSent: self.firstSent)
        let exchange = self.exchangeContext(outcome)
        let timeouts = attempt.upstream.settings.timeouts
        self.relay = Relay(
            exchange: exchange, connection: attempt.connection,
            relay: OpenAIStreamRelay(provider: attempt.target.provider, forwardUsageChunk: self.patch.clientWantsStreamUsage),
            totalDeadline: attempt.sent + timeouts.total, lastChunk: .now
        )
        let headers = ChatCompletionsHandler.streamHeaders(exchange, overhead: outcome.overhead(since: self.started))
        self.context.write(self.handler.wrapOutboundOut(.head(HTTPResponse(status: .ok, headerFields: headers))), promise: nil)
        self.watchIdle(timeouts.idle, provider: attempt.target.provider)
        self.relayChunk(first)
    }

    /// A stream must never be silent for `idle`: one timer, pushed back by what arrived meanwhile.
    private func watchIdle(_ idle: Duration, provider: String) {
        self.arm(after: idle) {
            guard let relay = self.relay else { return }
            let quiet = ContinuousClock.now - relay.lastChunk
            guard quiet < idle else {
                return self.endRelay(failure: .upstreamTimeout(provider: provider, phase: "idle", limit: DurationText.format(idle)))
            }
            self.watchIdle(idle - quiet, provider: provider)
        }
    }

    private func relayChunk(_ chunk: ByteBuffer) {
        guard var relay = self.relay else { return }
        self.relay = nil
        let now = ContinuousClock.now
        relay.lastChunk = now
        let step: OpenAIStreamRelay.Step = now > relay.totalDeadline
            ? .fail(forward: ByteBuffer(), error: .upstreamTimeout(
                provider: relay.exchange.target.provider, phase: "total", limit: DurationText.format(relay.exchange.upstream.settings.timeouts.total)
            ))
            : relay.relay.feed(chunk)
        self.relay = relay
        switch step {
        case .forward(let bytes):
            if bytes.readableBytes > 0 { self.context.write(self.handler.wrapOutboundOut(.body(bytes)), promise: nil) }
            // A client that reads slower than the upstream writes holds the upstream back, not our memory.
            if !self.context.channel.isWritable { relay.connection?.setReading(false) }
        case .fail(let bytes, let error):
            if bytes.readableBytes > 0 { self.context.write(self.handler.wrapOutboundOut(.body(bytes)), promise: nil) }
            self.endRelay(failure: error)
        }
    }

    /// The client's socket drained (or filled): the relayed upstream is read again (or held).
    func clientWritabilityChanged() {
        self.relay?.connection?.setReading(self.context.channel.isWritable)
    }

    /// The stream is over: cleanly, with the upstream's own error event, or with ours.
    private func endRelay(failure: GatewayError?) {
        guard var relay = self.relay, !self.done else { return }
        self.relay = nil
        self.done = true
        self.disarm()
        var failure = failure
        if failure == nil, case .fail(let bytes, let error) = relay.relay.finish() {
            if bytes.readableBytes > 0 { self.context.write(self.handler.wrapOutboundOut(.body(bytes)), promise: nil) }
            failure = error
        }
        if let failure {
            relay.connection?.abandon()
            self.context.write(self.handler.wrapOutboundOut(.body(failure.openAIStreamEvent)), promise: nil)
        } else if let message = relay.relay.upstreamErrorMessage {
            // The upstream's own error event was forwarded as it came.
            failure = .streamInterrupted(provider: relay.exchange.target.provider, detail: "the provider sent an error event: \(message)")
        }
        relay.exchange.streamEnded(failure: failure, usage: relay.relay.usage, finishReason: relay.relay.finishReason)
        self.context.writeAndFlush(self.handler.wrapOutboundOut(.end(nil)), promise: nil)
        self.handler.exchangeEnded(context: self.context)
    }

    // MARK: Answers

    private func exchangeContext(_ outcome: AttemptOutcome) -> ExchangeContext {
        ExchangeContext(
            state: self.state, routing: self.routing, admission: self.admission, requestID: self.requestID, outcome: outcome, logger: self.logger,
            started: self.started
        )
    }

    private func answer(_ outcome: AttemptOutcome) {
        do {
            try self.write(ChatCompletionsHandler.answer(outcome.reply.body ?? ByteBuffer(), self.exchangeContext(outcome)))
        } catch {
            self.fail(error as? GatewayError ?? .internalFailure("\(type(of: error))"))
        }
    }

    /// Every attempt failed: the last answer the upstream gave (its error), or our own error.
    private func giveUp() {
        guard let lastFailure = self.lastFailure else { return self.fail(.noHealthyTarget(route: self.plan.route.alias)) }
        guard let outcome = lastFailure.outcome else { return self.fail(lastFailure.error) }
        self.write(outcome.reply.openAIErrorWholeResponse(self.exchangeContext(outcome), overhead: outcome.overhead(since: self.started)))
    }

    private func fail(_ error: GatewayError) {
        guard !self.done else { return }
        self.state.finish(failed: error, requestID: self.requestID, operation: "chat", caller: self.admission.caller, started: self.started, logger: self.logger)
        self.write(error.openAIWholeResponse(requestID: self.requestID, overhead: ContinuousClock.now - self.started))
    }

    private func write(_ response: WholeResponse) {
        guard !self.done else { return }
        self.done = true
        self.disarm()
        var headers = response.headers
        headers[.contentLength] = String(response.body.readableBytes)
        self.context.write(self.handler.wrapOutboundOut(.head(HTTPResponse(status: response.status, headerFields: headers))), promise: nil)
        self.context.write(self.handler.wrapOutboundOut(.body(response.body)), promise: nil)
        self.context.writeAndFlush(self.handler.wrapOutboundOut(.end(nil)), promise: nil)
        self.handler.exchangeEnded(context: self.context)
    }

    /// The client hung up: the attempt in flight, the wait before the next or the stream being relayed
    /// is dropped, and the request is accounted as the caller's, as on the slow path.
    func clientLeft() {
        guard !self.done else { return }
        self.done = true
        self.disarm()
        if let relay = self.relay {
            self.relay = nil
            relay.connection?.abandon()
            relay.exchange.clientLeft(usage: relay.relay.usage)
        } else {
            if let attempt = self.attempt {
                self.attempt = nil
                attempt.connection?.abandon()
                self.state.health.withLock { $0.abandoned(attempt.ticket) }
            }
            self.state.finish(
                failed: .clientDisconnected, requestID: self.requestID, operation: "chat", caller: self.admission.caller, started: self.started,
                logger: self.logger
            )
        }
        self.handler.exchangeEnded(context: self.context)
    }
}
