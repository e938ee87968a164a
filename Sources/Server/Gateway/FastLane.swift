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
/// requests that need nothing else: a chat completion (whole or streamed), from a caller whose limits
/// the quota store can decide on the spot (anonymous, or kept in memory), to a route without a cache or
/// hedging whose targets are all plain-HTTP OpenAI-compatible upstreams.
/// Every other request, and every request the fast lane could not take as it is (a bad body, an
/// unknown model, a refusal), goes on to Hummingbird unchanged, where the same code answers it in full.
///
/// Requests on one connection are answered in order: while the fast lane answers one, what follows
/// waits (and once something waits, the connection is not read further); while Hummingbird answers
/// one, the next goes to Hummingbird too.
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
    private var heldError: (any Error)?

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
        }
        guard !self.isServing else { return }
        if self.readHeld {
            self.readHeld = false
            context.read()
        }
        if let error = self.heldError {
            self.heldError = nil
            context.fireErrorCaught(error)
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
        // Hummingbird also answers what never reached it as a request (its 400 for a broken head).
        if case .end = self.unwrapOutboundIn(data) { self.frameworkResponses = max(0, self.frameworkResponses - 1) }
        context.write(data, promise: promise)
    }

    /// A broken request behind the fast lane's answer: Hummingbird hears of it (and answers it) once
    /// that answer is written, not in the middle of it.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if self.isServing {
            self.heldError = error
        } else {
            context.fireErrorCaught(error)
        }
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
        if case .some(.inputClosed) = event as? ChannelEvent { self.clientLeft() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.clientLeft()
        context.fireChannelInactive()
    }

    /// Requests still waiting are not started for a client that is gone.
    private func clientLeft() {
        self.waiting.removeAll()
        if case .serving(let exchange) = self.phase { exchange.clientLeft() }
    }
}

/// One fast-lane request: its attempts along the failover plan, and the answer written to the client,
/// whole or relayed as a stream.
final class FastExchange: UpstreamExchangeReceiver, DeadlineHolder {
    private let state: GatewayState
    private unowned let handler: FastLaneHandler
    private let context: ChannelHandlerContext
    private let pool: LoopConnectionPool
    private let routing: RoutingSnapshot
    private var plan: FailoverPlan
    private let patch: OpenAIRequestPatch
    private let admission: Admission
    /// Set when the caller's limits refused the request: the fast lane answers it so (its refusal is
    /// counted already).
    private let refusal: PolicyRefusal?
    private let requestID: String
    private let traceparent: String?
    private let started: ContinuousClock.Instant
    private let logger: Logger

    /// A class: it changes as the answer arrives, and copying a struct of this size cost 2 % a request.
    /// It waits for its connection itself, so a connection that comes after it gave up (a timeout, a
    /// failover to another provider) never carries another attempt's request.
    private final class Attempt: ConnectionWaiter {
        /// Set while this is the exchange's current attempt, cleared when it ends (which also breaks
        /// the cycle; a `weak` reference cost a side-table allocation a request).
        var exchange: FastExchange?
        let target: PlannedTarget
        let upstream: UpstreamPool.Upstream
        let endpoint: PlainHTTPEndpoint
        let ticket: RoutingHealth.Ticket
        let head: HTTPRequestHead
        let body: ByteBuffer
        let sent: ContinuousClock.Instant
        /// When the head must have come, and which timeout fails the attempt if it has not.
        let headDeadline: ContinuousClock.Instant
        let headTimeout: TimeoutPhase
        var connection: UpstreamConnection?
        /// When the request went out on its connection.
        var writtenAt: ContinuousClock.Instant?
        var answer: HTTPResponseHead?
        var answeredAt: ContinuousClock.Instant?
        var lastRead: ContinuousClock.Instant?
        var answerBody: ByteBuffer?
        /// A reused connection that failed before answering gets one retry on a new connection.
        var retriedOnNewConnection = false

        /// A successful stream is relayed as it comes; anything else is read whole.
        var relaysStream: Bool { self.answer.map { (200..<300).contains(Int($0.status.code)) } == true && self.isStreaming }
        let isStreaming: Bool

        init(
            exchange: FastExchange, target: PlannedTarget, upstream: UpstreamPool.Upstream, endpoint: PlainHTTPEndpoint, ticket: RoutingHealth.Ticket,
            head: HTTPRequestHead, body: ByteBuffer, sent: ContinuousClock.Instant, deadline: ContinuousClock.Instant, isStreaming: Bool
        ) {
            self.exchange = exchange
            self.target = target
            self.upstream = upstream
            self.endpoint = endpoint
            self.ticket = ticket
            self.head = head
            self.body = body
            self.sent = sent
            self.isStreaming = isStreaming
            // AsyncHTTPClient's deadline for the head: `first_byte` or `total`, whichever is shorter (a
            // stream's `idle` too: its client's read timeout), within what is left of the request's deadline.
            let timeouts = upstream.settings.timeouts
            var phase = TimeoutPhase.firstByte
            if timeouts.total < timeouts[phase] { phase = .total }
            if isStreaming, timeouts.idle < timeouts[phase] { phase = .idle }
            self.headDeadline = min(sent + timeouts[phase], max(deadline, sent + .milliseconds(1)))
            self.headTimeout = phase
        }

        var wantsConnection: Bool { self.connection == nil && self.exchange != nil }

        func connectionReady(_ result: Result<UpstreamConnection, any Error>) {
            guard let exchange = self.exchange else {
                if case .success(let connection) = result { connection.putBack() }
                return
            }
            exchange.connectionReady(result, for: self)
        }
    }

    /// A stream being relayed to the client, after its attempt won.
    private struct Relay {
        let exchange: ExchangeContext
        let connection: UpstreamConnection?
        var relay: OpenAIStreamRelay
        var lastChunk: ContinuousClock.Instant
        /// The client reads slower than the upstream writes: the upstream is not read meanwhile, and
        /// its silence is not its fault.
        var paused = false
    }

    private var attempt: Attempt? {
        didSet { if oldValue !== self.attempt { oldValue?.exchange = nil } }
    }
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
        guard let caller = try? state.identify(request), let patch = try? OpenAIRequestPatch(body: body) else { return nil }
        let routing = state.routing
        let features = routing.features(model: patch.clientModel, streaming: patch.isStreaming, maxTokens: patch.maxTokens, body: body, of: request)
        guard let plan = try? state.plan(features, in: routing), plan.route.hedge == nil,
            plan.everyCandidate.allSatisfy({ candidate in
                guard let upstream = routing.upstreams[candidate.provider], upstream.settings.wire == .openAIChat,
                    let endpoint = upstream.plainEndpoint
                else { return false }
                return pool.limit(endpoint) > 0
            })
        else { return nil }
        do {
            if try state.cache.plan(route: plan.route, body: body, dialect: .openAI, caller: caller, request: request) != nil { return nil }
        } catch {
            return nil
        }
        // Last: from here on the fast lane answers, so a reservation it takes is always settled by it.
        do {
            guard let admitted = try state.admitNow(caller, plan: plan, routing: routing, features: features) else { return nil }
            self.admission = admitted
            self.refusal = nil
        } catch let refusal as PolicyRefusal {
            self.admission = Admission(caller: caller, ticket: nil)
            self.refusal = refusal
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
        self.requestID = state.identity.make(clientSupplied: head.headerFields[.requestID])
        self.traceparent = head.headerFields[.traceparent].flatMap { TraceContext.isValidTraceparent($0) ? $0 : nil }
        self.started = started
        self.logger = state.logger
    }

    func begin() {
        self.state.metrics.recordFastLane()
        // A limit or budget said no: the framework's answer, with the rate-limit headers.
        if let refusal = self.refusal { return self.fail(refusal.error, rateLimits: refusal.report) }
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
        let attempt = Attempt(
            exchange: self, target: target, upstream: upstream, endpoint: endpoint, ticket: ticket, head: head, body: body, sent: now,
            deadline: self.plan.deadline, isStreaming: self.patch.isStreaming
        )
        self.attempt = attempt
        self.watch(attempt)
        self.pool.acquire(endpoint, for: attempt)
    }

    /// The timeouts of an attempt before its answer is relayed, as AsyncHTTPClient's clients apply
    /// them: the head by its deadline; a whole answer never silent for `first_byte` and complete
    /// within `total`; a stream's first chunk within `idle` of its head. One deadline at a time: when
    /// it comes, the attempt fails or the next one is set.
    private func watch(_ attempt: Attempt) {
        let timeouts = attempt.upstream.settings.timeouts
        let next: (at: ContinuousClock.Instant, phase: TimeoutPhase)
        if let answeredAt = attempt.answeredAt {
            if attempt.relaysStream {
                next = (answeredAt + timeouts.idle, .idle)
            } else {
                let silence = (attempt.lastRead ?? answeredAt) + timeouts.firstByte
                let total = attempt.sent + timeouts.total
                next = silence < total ? (silence, .firstByte) : (total, .total)
            }
        } else {
            next = (attempt.headDeadline, attempt.headTimeout)
        }
        guard ContinuousClock.now < next.at else { return self.attemptFailed(.upstreamTimeout(attempt.upstream.settings, next.phase)) }
        self.arm(at: next.at) {
            if self.attempt === attempt { self.watch(attempt) }
        }
    }

    private func isCurrent(_ attempt: Attempt) -> Bool {
        !self.done && self.attempt === attempt
    }

    private func connectionReady(_ result: Result<UpstreamConnection, any Error>, for attempt: Attempt) {
        guard self.isCurrent(attempt) else {
            if case .success(let connection) = result { connection.putBack() }
            return
        }
        switch result {
        case .success(let connection):
            attempt.connection = connection
            attempt.writtenAt = .now
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
        attempt.lastRead = .now
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
        if !answered, let connection = attempt.connection, connection.wasUsed, !attempt.retriedOnNewConnection,
            let written = attempt.writtenAt, ContinuousClock.now - written < Self.staleConnectionWindow
        {
            // The upstream closed an idle keep-alive connection as we reused it: nothing reached it.
            attempt.retriedOnNewConnection = true
            attempt.connection = nil
            self.pool.acquire(attempt.endpoint, fresh: true, for: attempt)
            return
        }
        self.attemptFailed(GatewayError.from(error, provider: attempt.upstream.settings, streaming: attempt.isStreaming))
    }

    /// The attempt ended without an answer (a transport failure, a timeout): it counts against its target.
    private func attemptFailed(_ error: GatewayError) {
        guard let attempt = self.attempt else { return }
        self.attempt = nil
        self.disarm()
        attempt.connection?.abandon(from: self)
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
            self.arm(at: .now + wait) { self.start(next) }
        }
    }

    /// A reused connection that fails this soon after the request went out on it, before any answer,
    /// was closed by the upstream as we reused it (its keep-alive ran out): the request is sent again on
    /// a new connection. Later failures are the upstream's, and a POST is not sent twice for them.
    static let staleConnectionWindow: Duration = .milliseconds(250)

    /// Runs `fired` at `instant` (give or take the sweep's tick), replacing any earlier deadline.
    private func arm(at instant: ContinuousClock.Instant, _ fired: @escaping () -> Void) {
        self.deadline = (instant, fired)
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
        self.relay = Relay(
            exchange: exchange, connection: attempt.connection,
            relay: OpenAIStreamRelay(provider: attempt.target.provider, forwardUsageChunk: self.patch.clientWantsStreamUsage), lastChunk: .now
        )
        let headers = ChatCompletionsHandler.streamHeaders(exchange, overhead: outcome.overhead(since: self.started))
        self.context.write(self.handler.wrapOutboundOut(.head(HTTPResponse(status: .ok, headerFields: headers))), promise: nil)
        self.watchIdle()
        self.relayChunk(first)
    }

    /// A stream must never be silent for `idle` (while the client keeps up): one deadline, pushed back
    /// by what arrived meanwhile.
    private func watchIdle() {
        guard let relay = self.relay else { return }
        let settings = relay.exchange.upstream.settings
        self.arm(at: min((relay.paused ? ContinuousClock.now : relay.lastChunk) + settings.timeouts.idle, relay.exchange.deadline)) {
            guard let relay = self.relay else { return }
            let now = ContinuousClock.now
            // Also for a client that stopped reading: the stream does not hold its upstream forever.
            if now >= relay.exchange.deadline { return self.endRelay(failure: .upstreamTimeout(settings, .total)) }
            if !relay.paused, now - relay.lastChunk >= settings.timeouts.idle { return self.endRelay(failure: .upstreamTimeout(settings, .idle)) }
            self.watchIdle()
        }
    }

    private func relayChunk(_ chunk: ByteBuffer) {
        guard var relay = self.relay else { return }
        self.relay = nil
        relay.lastChunk = .now
        let step = relay.exchange.relayStep(&relay.relay, chunk)
        self.relay = relay
        switch step {
        case .forward(let bytes):
            self.relayToClient(bytes)
            // A client that reads slower than the upstream writes holds the upstream back, not our memory.
            if !self.context.channel.isWritable { self.clientWritabilityChanged() }
        case .fail(let bytes, let error):
            self.relayToClient(bytes)
            self.endRelay(failure: error)
        }
    }

    /// Relayed bytes go out with the next flush (once per read from the upstream).
    private func relayToClient(_ bytes: ByteBuffer) {
        if bytes.readableBytes > 0 { self.context.write(self.handler.wrapOutboundOut(.body(bytes)), promise: nil) }
    }

    /// The client's socket drained (or filled): the relayed upstream is read again (or held).
    func clientWritabilityChanged() {
        guard var relay = self.relay else { return }
        let writable = self.context.channel.isWritable
        guard relay.paused == writable else { return }
        relay.paused = !writable
        // Silence while held was ours: the idle timeout counts from the resumption.
        if writable { relay.lastChunk = .now }
        self.relay = relay
        relay.connection?.setReading(writable)
    }

    /// The stream is over: cleanly, with the upstream's own error event, or with ours.
    private func endRelay(failure: GatewayError?) {
        guard var relay = self.relay, !self.done else { return }
        self.relay = nil
        self.done = true
        self.disarm()
        var failure = failure
        if failure == nil {
            // What the upstream left without its blank line (its last event, often `[DONE]`) goes out too.
            switch relay.relay.finish() {
            case .forward(let bytes):
                self.relayToClient(bytes)
            case .fail(let bytes, let error):
                self.relayToClient(bytes)
                failure = error
            }
        }
        if let failure {
            relay.connection?.abandon(from: self)
            self.context.write(self.handler.wrapOutboundOut(.body(failure.openAIStreamEvent)), promise: nil)
        }
        relay.exchange.openAIStreamEnded(relay.relay, failure: failure)
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

    private func fail(_ error: GatewayError, rateLimits: RateLimitReport? = nil) {
        guard !self.done else { return }
        self.state.finish(
            failed: error, requestID: self.requestID, operation: "chat", caller: self.admission.caller, admission: self.admission, started: self.started,
            logger: self.logger
        )
        var response = error.openAIWholeResponse(requestID: self.requestID, overhead: ContinuousClock.now - self.started)
        response.headers.setRateLimitHeaders(rateLimits)
        self.write(response)
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
            relay.connection?.abandon(from: self)
            relay.exchange.clientLeft(usage: relay.relay.usage)
        } else {
            if let attempt = self.attempt {
                self.attempt = nil
                attempt.connection?.abandon(from: self)
                self.state.health.withLock { $0.abandoned(attempt.ticket) }
            }
            self.state.finish(
                failed: .clientDisconnected, requestID: self.requestID, operation: "chat", caller: self.admission.caller, admission: self.admission,
                started: self.started, logger: self.logger
            )
        }
        self.handler.exchangeEnded(context: self.context)
    }
}
