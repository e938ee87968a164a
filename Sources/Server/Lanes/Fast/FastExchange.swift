import AsyncHTTPClient
import Engine
import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// One fast-lane request: its attempts along the failover plan, and the answer written to the client,
/// whole or relayed as a stream. An OpenAI client's request to an OpenAI-compatible upstream goes out
/// patched (the fast path); any other pair of dialects is translated through the canonical model,
/// and its answer back, streams included.
final class FastExchange: UpstreamExchangeReceiver, DeadlineHolder {
    private let state: GatewayState
    private unowned let handler: FastLaneHandler
    private let context: ChannelHandlerContext
    private let pool: LoopConnectionPool
    private let routing: RoutingSnapshot
    /// The request's lifecycle: this exchange carries out its actions and reports back.
    private var loop: AttemptLoop
    /// What the client gets if the loop gives up.
    private var lastFailure: FailedAttempt?
    private let patch: OpenAIRequestPatch
    /// Set when some target needs the request translated: its canonical form, and how answers are
    /// translated back.
    private let translation: Translation?
    private let client: ClientDialect
    private var admission: Admission
    /// Set when the caller's limits refused the request: the fast lane answers it so (its refusal is
    /// counted already).
    private var refusal: PolicyRefusal?
    /// Redis's answer on its way (`state: redis://…`): the attempts wait for it.
    private var pendingAdmission: EventLoopFuture<Admission>?
    private let requestID: String
    private let traceparent: String?
    /// Its spans, when it is traced and sampled.
    private let trace: RequestTrace?
    /// When a Redis admission went out (it is a span once Redis answers).
    private var admissionSent: ContinuousClock.Instant?
    private let started: ContinuousClock.Instant
    private let logger: Logger

    /// A class: it changes as the answer arrives, and copying a struct of this size cost 2 % a request.
    /// It waits for its connection itself, so a connection that comes after it gave up (a timeout, a
    /// failover to another provider) never carries another attempt's request.
    private final class Attempt: ConnectionWaiter {
        /// Set while this is the exchange's current attempt, cleared when it ends (which also breaks
        /// the cycle; a `weak` reference cost a side-table allocation a request).
        var exchange: FastExchange?
        let id: AttemptLoop.AttemptID
        let target: PlannedTarget
        let upstream: UpstreamPool.Upstream
        let endpoint: UpstreamEndpoint
        let ticket: RoutingHealth.Ticket
        /// Head and body, as they go out.
        let request: ByteBuffer
        let sent: ContinuousClock.Instant
        let isStreaming: Bool
        /// Its client span, when the request is traced.
        let span: AttemptSpan?
        var connection: UpstreamConnection?
        var answer: ResponseHead?
        var answerBody: ByteBuffer?
        /// A reused connection found closed before the request was written whole gets one retry on a new connection.
        var retriedOnNewConnection = false

        /// A successful stream is relayed as it comes; anything else is read whole.
        var relaysStream: Bool { self.answer.map { (200..<300).contains($0.status) } == true && self.isStreaming }

        init(
            exchange: FastExchange, id: AttemptLoop.AttemptID, target: PlannedTarget, upstream: UpstreamPool.Upstream, endpoint: UpstreamEndpoint,
            ticket: RoutingHealth.Ticket, request: ByteBuffer, sent: ContinuousClock.Instant, isStreaming: Bool, span: AttemptSpan?
        ) {
            self.span = span
            self.exchange = exchange
            self.id = id
            self.target = target
            self.upstream = upstream
            self.endpoint = endpoint
            self.ticket = ticket
            self.request = request
            self.sent = sent
            self.isStreaming = isStreaming
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

    /// A request in canonical form, for targets of another dialect than the client's.
    private struct Translation {
        let request: ChatRequest
        /// Fields of the request the target's dialect has no place for, named in `x-switchyard-dropped`.
        let dropped: [String]
        let exchange: TranslatedExchange
    }

    /// Whether an answer from `upstream` reaches this client translated (else it is passed on as it came).
    private func translates(_ upstream: UpstreamPool.Upstream) -> Bool {
        self.client == .anthropic || upstream.settings.wire != .openAIChat
    }

    /// A stream being relayed to the client, after its attempt won. A class, and the two kinds of
    /// relay in optionals of their own: each chunk mutates its relay in place (an enum's payload
    /// would be copied out and back, a tenth of the fast lane's per-chunk cost in our own code).
    private final class Relay {
        let exchange: ExchangeContext
        let connection: UpstreamConnection?
        /// OpenAI in and out: relayed byte for byte in whole events.
        var passed: OpenAIStreamRelay?
        var translated: TranslatedStreamRelay?
        var timer: RelayTimer
        /// The passed stream decoded on the side, when its answer is put on the trace.
        var recorder: StreamRecorder?

        init(exchange: ExchangeContext, connection: UpstreamConnection?, passed: OpenAIStreamRelay?, translated: TranslatedStreamRelay?, timer: RelayTimer) {
            self.exchange = exchange
            self.connection = connection
            self.passed = passed
            self.translated = translated
            self.timer = timer
        }

        var usage: Usage? { self.passed?.usage ?? self.translated?.usage }
    }

    private var attempt: Attempt? {
        didSet { if oldValue !== self.attempt { oldValue?.exchange = nil } }
    }
    private var relay: Relay?
    /// What this read from the upstream relayed so far: written as one chunk when the read ends (a
    /// read carries many events, and a write each cost more than the event's own relaying).
    private var unsent: OutgoingChunk?
    /// The one deadline in force (the lifecycle's next, or the relayed stream's), checked by the loop's sweep.
    private var deadline: ContinuousClock.Instant?
    var sweepSlot: Int?
    private var done = false

    /// The second half of the lane decision, once the body is here (the first is
    /// `FastLaneHandler.skipReason`): throws why the framework lane takes the request instead.
    init(
        head: RequestHead, body: ByteBuffer, client: ClientDialect, state: GatewayState, handler: FastLaneHandler, context: ChannelHandlerContext
    ) throws(FastLaneSkip) {
        let started = ContinuousClock.now
        guard let pool = state.loopUpstreams.pool(on: context.eventLoop) else { throw .noConnectionShare }
        let header = { (name: HTTPField.Name) in head.field(name.canonicalName) }
        // A credential that cannot be a virtual key identifies no one, decided on the bytes: only a
        // possible key is copied out and looked up.
        let mayHoldKey = head.field("authorization", contains: KeyRing.keyPrefix) || head.field("x-api-key", contains: KeyRing.keyPrefix)
        guard let caller = try? state.identify(authorization: mayHoldKey ? header(.authorization) : nil, apiKey: mayHoldKey ? header(.apiKey) : nil) else {
            throw .callerRefused
        }
        let planned: ChatPlan
        do {
            planned = try state.planChat(body: body, caller: caller, dialect: client, header: header)
        } catch {
            switch error {
            case .invalidBody: throw .invalidBody
            case .unroutable: throw .unroutable
            case .cache: throw .cached
            }
        }
        let (patch, routing, features, plan) = (planned.patch, planned.routing, planned.features, planned.plan)
        guard plan.route.hedge == nil else { throw .hedged }
        for candidate in plan.everyCandidate {
            guard let upstream = routing.upstreams[candidate.provider] else { throw .unroutable }
            // An Anthropic client of an Anthropic upstream is passed through by the framework lane.
            guard client == .openAI || upstream.settings.wire != .anthropicMessages else { throw .upstreamDialect }
            if state.server.fetchImageURLs, ImageFetcher.isNeeded(for: upstream.settings.wire) { throw .fetchesImages }
            let endpoint = try upstream.fastLane.get()
            guard pool.limit(endpoint) > 0 else { throw .noConnectionShare }
        }
        guard planned.cachePlan == nil else { throw .cached }
        self.client = client
        if client == .anthropic {
            guard let decoded = try? AnthropicRequestDecoder.decode(body) else { throw .invalidBody }
            self.translation = Translation(request: decoded.request, dropped: decoded.dropped, exchange: TranslatedExchange(client: .anthropic))
        } else if plan.everyCandidate.contains(where: { routing.upstreams[$0.provider]?.settings.wire != .openAIChat }) {
            guard let decoded = try? OpenAIRequestDecoder.decode(body) else { throw .invalidBody }
            self.translation = Translation(
                request: decoded.request, dropped: decoded.dropped, exchange: TranslatedExchange(client: .openAI, includeUsage: decoded.includeUsage)
            )
        } else {
            self.translation = nil
        }
        // Last: from here on the fast lane answers, so a reservation it takes is always settled by it.
        // When admission began, for its span: read only when the request may be traced.
        let admitting = state.tracer == nil ? started : ContinuousClock.now
        do {
            if let admitted = try state.admitNow(caller, plan: plan, routing: routing, features: features) {
                self.admission = admitted
            } else if let pending = try state.admitOnLoop(caller, plan: plan, routing: routing, features: features, on: context.eventLoop) {
                // Shared limits: one round trip over this loop's own connection to Redis, answered here.
                self.admission = Admission(caller: caller, ticket: nil)
                self.pendingAdmission = pending
            } else {
                throw FastLaneSkip.limitsElsewhere
            }
            self.refusal = nil
        } catch let refusal as PolicyRefusal {
            self.admission = Admission(caller: caller, ticket: nil)
            self.refusal = refusal
        } catch {
            throw .limitsElsewhere
        }
        self.state = state
        self.handler = handler
        self.context = context
        self.pool = pool
        self.routing = routing
        self.loop = AttemptLoop(plan: plan)
        self.patch = patch
        self.requestID = state.identity.make(clientSupplied: header(.requestID))
        self.traceparent = header(.traceparent).flatMap { TraceContext.isValidTraceparent($0) ? $0 : nil }
        self.started = started
        let trace = state.tracer?.startRequest(
            method: "POST", path: client == .openAI ? "/v1/chat/completions" : "/v1/messages", traceparent: self.traceparent,
            tracestate: header(.tracestate), at: started
        )
        trace?.requested(model: patch.clientModel, streaming: patch.isStreaming, lane: "fast")
        trace?.capture(input: body)
        if let trace, caller.tenant != nil {
            if self.pendingAdmission != nil {
                self.admissionSent = admitting
            } else {
                trace.admitted(from: admitting, refusal: self.refusal?.error, throughRedis: false)
            }
        }
        self.trace = trace
        self.logger = trace?.annotate(state.logger) ?? state.logger
    }

    func begin() {
        self.state.metrics.recordFastLane()
        if let pending = self.pendingAdmission {
            self.pendingAdmission = nil
            pending.whenComplete { self.admitted($0) }
            return
        }
        self.proceed()
    }

    private func proceed() {
        // A limit or budget said no: the framework's answer, with the rate-limit headers.
        if let refusal = self.refusal { return self.fail(refusal.error, rateLimits: refusal.report) }
        self.perform(self.loop.start())
    }

    /// Redis answered the admission (on this loop).
    private func admitted(_ result: Result<Admission, any Error>) {
        if let trace = self.trace, let sent = self.admissionSent {
            var refusal: GatewayError?
            if case .failure(let error) = result { refusal = (error as? PolicyRefusal)?.error ?? .internalFailure("admission: \(error)") }
            trace.admitted(from: sent, refusal: refusal, throughRedis: true)
        }
        switch result {
        case .success(let admission):
            guard !self.done else {
                // The client left while Redis answered: the reservation goes back at once.
                if let ticket = admission.claimTicket() {
                    let (day, month) = BudgetCalendar.shared.dayAndMonth()
                    self.state.quotas.settle(ticket, tokens: 0, cost: 0, at: .now, day: day, month: month)
                }
                return
            }
            self.admission = admission
        case .failure(let refusal as PolicyRefusal):
            self.refusal = refusal
        case .failure(let error):
            return self.fail(.internalFailure("admission: \(error)"))
        }
        guard !self.done else { return }
        self.proceed()
    }

    // MARK: Attempts

    /// Carries out the lifecycle's actions until it waits for an event.
    private func perform(_ first: AttemptLoop.Action) {
        var action = first
        while !self.done {
            switch action {
            case .wait:
                if let next = self.loop.nextDeadline { self.arm(at: next) } else { self.disarm() }
                return
            case .send(let target):
                action = self.send(to: target)
            case .timedOut(let id, let phase):
                guard let attempt = self.attempt, attempt.id == id else { return }
                action = self.attemptFailed(.upstreamTimeout(attempt.upstream.settings, phase))
            case .deliver(let id, _):
                // The fast lane never hedges: the winner is the attempt in hand.
                guard let attempt = self.attempt, attempt.id == id, let won = self.won else { return }
                self.won = nil
                self.attempt = nil
                return attempt.relaysStream ? self.startRelay(attempt, won) : self.answer(won)
            case .giveUp:
                return self.giveUp(self.lastFailure)
            }
        }
    }

    /// Takes a ticket for `target` and sends to it over this loop's connections.
    private func send(to target: PlannedTarget) -> AttemptLoop.Action {
        guard let upstream = self.routing.upstreams[target.provider], case .success(let endpoint) = upstream.fastLane else {
            self.fail(.internalFailure("route '\(target.route)' names provider '\(target.provider)', which has no client"))
            return .wait
        }
        let now = ContinuousClock.now
        guard let ticket = self.state.health.withLock({ $0.begin(target.key, at: now) }) else { return self.loop.ticketRefused(target) }
        let span = self.trace?.attempt(target, upstream: upstream, streaming: self.patch.isStreaming, at: now)
        let traceparent = span?.propagation.traceparent ?? self.traceparent
        let request: ByteBuffer
        if let translation = self.translation, self.translates(upstream) {
            do {
                let adapter = ProviderAdapters.adapter(for: upstream.settings.wire)
                let body = try adapter.encode(translation.request, upstreamModel: target.upstreamModel, settings: upstream.settings)
                let path = adapter.path(model: target.upstreamModel, streaming: translation.request.stream)
                request = endpoint.request(path: path, model: target.upstreamModel, body: body, requestID: self.requestID, traceparent: traceparent)
            } catch {
                // The request cannot be said in this target's dialect: the caller's problem, as on the framework lane.
                self.state.health.withLock { $0.abandoned(ticket) }
                span?.cancelled()
                self.fail(error)
                return .wait
            }
        } else {
            request = endpoint.chatRequest(
                self.patch, model: target.upstreamModel, requestStreamUsage: upstream.settings.acceptsStreamOptions, requestID: self.requestID,
                traceparent: traceparent
            )
        }
        let id = self.loop.sent(target, timeouts: upstream.settings.timeouts, streaming: self.patch.isStreaming, at: now)
        let attempt = Attempt(
            exchange: self, id: id, target: target, upstream: upstream, endpoint: endpoint, ticket: ticket, request: request, sent: now,
            isStreaming: self.patch.isStreaming, span: span
        )
        self.attempt = attempt
        self.pool.acquire(endpoint, for: attempt)
        return .wait
    }

    /// The attempt judged a winner, until the lifecycle says to deliver it.
    private var won: AttemptOutcome?

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
            connection.send(attempt.request, to: self)
        case .failure(let error):
            self.perform(self.attemptFailed(GatewayError.from(error, provider: attempt.upstream.settings, streaming: attempt.isStreaming)))
        }
    }

    func upstreamHead(_ head: ResponseHead) {
        guard let attempt = self.attempt else { return }
        attempt.answer = head
        self.loop.answered(attempt.id, status: head.status, at: .now)
    }

    func upstreamBody(_ part: ByteBuffer) {
        if self.relay != nil { return self.relayChunk(part) }
        guard let attempt = self.attempt, let answer = attempt.answer else { return }
        if attempt.relaysStream { return self.streamStarted(attempt, first: part) }
        self.loop.read(attempt.id, at: .now)
        var part = part
        let limit = (200..<300).contains(answer.status) ? UpstreamCall.maxBody : UpstreamCall.maxErrorBody
        if (attempt.answerBody?.readableBytes ?? 0) + part.readableBytes > limit {
            return self.perform(self.attemptFailed(.upstreamMalformed(provider: attempt.target.provider, detail: "the answer is larger than \(limit) bytes")))
        }
        if attempt.answerBody == nil {
            attempt.answerBody = part
        } else {
            attempt.answerBody?.writeBuffer(&part)
        }
    }

    func upstreamReadComplete() {
        guard self.relay != nil else { return }
        self.writeUnsent()
        self.pool.flushAtEndOfTurn(self.context)
        // A client that reads slower than the upstream writes holds the upstream back, not our memory.
        if !self.context.channel.isWritable { self.clientWritabilityChanged() }
    }

    func upstreamEnd() {
        if self.relay != nil { return self.endRelay(failure: nil) }
        guard let attempt = self.attempt, let answer = attempt.answer else { return }
        if attempt.relaysStream {
            return self.perform(self.attemptFailed(.streamInterrupted(provider: attempt.target.provider, detail: "the stream ended before its first event")))
        }
        let reply = UpstreamCall.Reply(status: answer.status, headers: answer.failureHeaders, body: attempt.answerBody ?? ByteBuffer(), stream: nil)
        let result = self.state.judge(
            reply, target: attempt.target, upstream: attempt.upstream, ticket: attempt.ticket, sent: attempt.sent, streamed: false, logger: self.logger
        )
        self.perform(self.settle(attempt, result))
    }

    func upstreamFailed(_ error: any Error, progress: UpstreamExchangeProgress) {
        if let relay = self.relay {
            return self.endRelay(failure: GatewayError.from(error, provider: relay.exchange.upstream.settings, streaming: true))
        }
        guard let attempt = self.attempt else { return }
        if progress == .unsent, let connection = attempt.connection, connection.wasUsed, !attempt.retriedOnNewConnection {
            // The upstream closed an idle keep-alive connection as we reused it, before it had the
            // whole request: it cannot have acted on it. Once it may have, the failure is the attempt's,
            // and the retry matrix decides (a closed connection is never retried on the same target).
            attempt.retriedOnNewConnection = true
            attempt.connection = nil
            self.pool.acquire(attempt.endpoint, fresh: true, for: attempt)
            return
        }
        self.perform(self.attemptFailed(GatewayError.from(error, provider: attempt.upstream.settings, streaming: attempt.isStreaming)))
    }

    /// The attempt ended without an answer (a transport failure, a timeout): it counts against its target.
    private func attemptFailed(_ error: GatewayError) -> AttemptLoop.Action {
        guard let attempt = self.attempt else { return .wait }
        attempt.connection?.abandon(from: self)
        return self.settle(attempt, self.state.judge(error, target: attempt.target, ticket: attempt.ticket, logger: self.logger))
    }

    /// Reports a judged attempt to the lifecycle.
    private func settle(_ attempt: Attempt, _ result: GatewayState.AttemptResult) -> AttemptLoop.Action {
        attempt.span?.judged(result)
        switch result {
        case .won(let outcome):
            self.won = outcome.counted(self.loop.attemptsStarted, firstSent: self.loop.firstSent)
            return self.loop.succeeded(attempt.id)
        case .abandoned:
            self.clientLeft()
            return .wait
        case .failed(let target, let failure, let error, let outcome):
            self.attempt = nil
            self.lastFailure = FailedAttempt(error: error, outcome: outcome?.counted(self.loop.attemptsStarted, firstSent: self.loop.firstSent))
            return self.loop.failed(attempt.id, failure, on: target, requestID: self.requestID, logger: self.logger)
        }
    }

    /// Checks again at `instant` (give or take the sweep's tick), replacing any earlier deadline.
    private func arm(at instant: ContinuousClock.Instant) {
        self.deadline = instant
        self.pool.deadlines.watch(self)
    }

    private func disarm() {
        self.deadline = nil
        self.pool.deadlines.unwatch(self)
    }

    func sweep(now: ContinuousClock.Instant) {
        guard let deadline = self.deadline, deadline <= now else { return }
        self.disarm()
        if self.relay != nil { return self.relayDeadlineCame(now) }
        self.perform(self.loop.tick(at: now))
    }

    // MARK: Streams

    /// A successful stream's first chunk: the attempt is judged, and when it wins the relay begins
    /// with that chunk.
    private func streamStarted(_ attempt: Attempt, first: ByteBuffer) {
        guard let answer = attempt.answer else { return }
        let reply = UpstreamCall.Reply(status: answer.status, headers: answer.failureHeaders, body: nil, stream: nil)
        let result = self.state.judge(
            reply, target: attempt.target, upstream: attempt.upstream, ticket: attempt.ticket, sent: attempt.sent, streamed: true, logger: self.logger
        )
        self.perform(self.settle(attempt, result))
        if self.relay != nil { self.relayChunk(first) }
    }

    /// The stream's head goes out, and its chunks follow as they come.
    private func startRelay(_ attempt: Attempt, _ outcome: AttemptOutcome) {
        let exchange = self.exchangeContext(outcome)
        let now = ContinuousClock.now
        let translation = self.translates(attempt.upstream) ? self.translation : nil
        self.relay = Relay(
            exchange: exchange, connection: attempt.connection,
            passed: translation == nil ? OpenAIStreamRelay(provider: attempt.target.provider, forwardUsageChunk: self.patch.clientWantsStreamUsage) : nil,
            translated: translation?.exchange.streamRelay(exchange),
            timer: RelayTimer(idle: attempt.upstream.settings.timeouts.idle, deadline: exchange.deadline, at: now)
        )
        if translation == nil, exchange.recordsAnswer {
            self.relay?.recorder = StreamRecorder(ProviderAdapters.adapter(for: .openAIChat).makeStreamDecoder(provider: attempt.target.provider))
        }
        var head = WireResponse.Head(.ok, allocator: self.context.channel.allocator)
        let overhead = outcome.overhead(since: self.started)
        if let translation {
            translation.exchange.streamHeaders(exchange, dropped: translation.dropped, overhead: overhead, fields: &head)
        } else {
            ChatCompletionsHandler.streamHeaders(exchange, overhead: overhead, fields: &head)
        }
        self.context.write(self.handler.wrapOutboundOut(.byteBuffer(head.finish(contentLength: nil, date: self.pool.date.now))), promise: nil)
        self.arm(at: self.relay!.timer.nextCheck(at: now))
    }

    private func relayDeadlineCame(_ now: ContinuousClock.Instant) {
        guard let relay = self.relay else { return }
        if let phase = relay.timer.expired(at: now) { return self.endRelay(failure: .upstreamTimeout(relay.exchange.upstream.settings, phase)) }
        self.arm(at: relay.timer.nextCheck(at: now))
    }

    private func relayChunk(_ chunk: ByteBuffer) {
        guard let relay = self.relay else { return }
        let now = ContinuousClock.now
        relay.timer.chunk(at: now)
        guard relay.passed != nil else { return self.translateChunk(chunk, at: now) }
        relay.recorder?.feed(chunk)
        let step = relay.exchange.relayStep(&relay.passed!, chunk, at: now)
        switch step {
        case .forward(let bytes):
            self.relayToClient(bytes)
        case .fail(let bytes, let error):
            self.relayToClient(bytes)
            self.endRelay(failure: error)
        }
    }

    /// A chunk of a translated stream: the client's events for it (its end waits for the upstream's,
    /// so the connection goes back whole), or our `total` timeout once past the deadline.
    private func translateChunk(_ chunk: ByteBuffer, at now: ContinuousClock.Instant) {
        guard let relay = self.relay, relay.translated != nil else { return }
        if now > relay.exchange.deadline {
            return self.endRelay(failure: .upstreamTimeout(relay.exchange.upstream.settings, .total))
        }
        self.relayToClient(relay.translated!.feed(chunk))
        if relay.translated?.failure != nil { return self.endRelay(failure: nil) }
    }

    /// Relayed bytes wait for the end of the upstream's read (or of the stream), then go out as one chunk.
    private func relayToClient(_ bytes: ByteBuffer) {
        guard bytes.readableBytes > 0 else { return }
        if self.unsent == nil { self.unsent = OutgoingChunk(capacity: max(Self.chunkCapacity, bytes.readableBytes), allocator: self.context.channel.allocator) }
        self.unsent!.append(bytes)
    }

    private func relayToClient(_ text: String) {
        guard !text.isEmpty else { return }
        if self.unsent == nil { self.unsent = OutgoingChunk(capacity: max(Self.chunkCapacity, text.utf8.count), allocator: self.context.channel.allocator) }
        self.unsent!.append(text)
    }

    /// Room for a read's worth of events at first (a read of a fast stream carries a few KiB).
    private static let chunkCapacity = 4096

    private func writeUnsent() {
        guard let unsent = self.unsent else { return }
        self.unsent = nil
        self.context.write(self.handler.wrapOutboundOut(.byteBuffer(unsent.framed())), promise: nil)
    }

    /// The client's socket drained (or filled): the relayed upstream is read again (or held).
    func clientWritabilityChanged() {
        guard let relay = self.relay else { return }
        let writable = self.context.channel.isWritable
        guard relay.timer.paused == writable else { return }
        relay.timer.clientReading(writable, at: .now)
        relay.connection?.setReading(writable)
    }

    /// The stream is over: cleanly, with the upstream's own error event, or with ours.
    private func endRelay(failure: GatewayError?) {
        guard let relay = self.relay, !self.done else { return }
        self.relay = nil
        self.done = true
        self.disarm()
        if var passed = relay.passed {
            var failure = failure
            if failure == nil {
                // What the upstream left without its blank line (its last event, often `[DONE]`) goes out too.
                switch passed.finish() {
                case .forward(let bytes):
                    self.relayToClient(bytes)
                case .fail(let bytes, let error):
                    self.relayToClient(bytes)
                    failure = error
                }
            }
            if let failure {
                relay.connection?.abandon(from: self)
                self.relayToClient(failure.openAIStreamEvent)
            }
            relay.exchange.openAIStreamEnded(passed, failure: failure, recorder: &relay.recorder)
        } else if var translated = relay.translated {
            // Ours (a timeout, a broken connection) ends the client's stream with its error event; a
            // clean end lets the decoder say whether the upstream's stream was whole.
            if !translated.isFinished {
                self.relayToClient(failure.map { translated.fail($0) } ?? translated.finish())
            }
            if translated.failure != nil { relay.connection?.abandon(from: self) }
            relay.exchange.streamEnded(translated)
        }
        self.writeUnsent()
        self.context.write(self.handler.wrapOutboundOut(.byteBuffer(WireResponse.lastChunk)), promise: nil)
        self.pool.flushAtEndOfTurn(self.context)
        self.handler.exchangeEnded(context: self.context)
    }

    // MARK: Answers

    private func exchangeContext(_ outcome: AttemptOutcome) -> ExchangeContext {
        ExchangeContext(
            state: self.state, routing: self.routing, admission: self.admission, requestID: self.requestID, outcome: outcome, logger: self.logger,
            started: self.started, trace: self.trace
        )
    }

    /// The upstream's successful answer, its head written straight into the bytes that go out.
    private func answer(_ outcome: AttemptOutcome) {
        var body = outcome.reply.body ?? ByteBuffer()
        var head = WireResponse.Head(.ok, capacity: 512 + body.readableBytes, allocator: self.context.channel.allocator)
        do {
            if let translation = self.translation, self.translates(outcome.upstream) {
                body = try translation.exchange.answer(body, self.exchangeContext(outcome), dropped: translation.dropped, fields: &head)
            } else {
                try ChatCompletionsHandler.answer(body, self.exchangeContext(outcome), fields: &head)
            }
        } catch {
            return self.fail(error as? GatewayError ?? .internalFailure("\(type(of: error))"))
        }
        self.send(head.finish(contentLength: body.readableBytes, date: self.pool.date.now, body: body))
    }

    /// Every attempt failed: the last answer the upstream gave (its error), or our own error.
    private func giveUp(_ lastFailure: FailedAttempt?) {
        guard let lastFailure else { return self.fail(.noHealthyTarget(route: self.loop.plan.route.alias)) }
        guard let outcome = lastFailure.outcome else { return self.fail(lastFailure.error) }
        let exchange = self.exchangeContext(outcome)
        let overhead = outcome.overhead(since: self.started)
        if let translation = self.translation, self.translates(outcome.upstream) {
            self.write(translation.exchange.failure(exchange, overhead: overhead))
        } else {
            self.write(outcome.reply.openAIErrorWholeResponse(exchange, overhead: overhead))
        }
    }

    private func fail(_ error: GatewayError, rateLimits: RateLimitReport? = nil) {
        guard !self.done else { return }
        self.state.finish(
            failed: error, requestID: self.requestID, operation: "chat", caller: self.admission.caller, admission: self.admission, started: self.started,
            logger: self.logger, trace: self.trace
        )
        let overhead = ContinuousClock.now - self.started
        var response = self.client == .openAI
            ? error.openAIWholeResponse(requestID: self.requestID, overhead: overhead)
            : error.anthropicWholeResponse(requestID: self.requestID, overhead: overhead)
        response.headers.setRateLimitHeaders(rateLimits)
        self.write(response)
    }

    private func write(_ response: WholeResponse) {
        self.send(WireResponse.whole(response.status, response.headers, body: response.body, date: self.pool.date.now, allocator: self.context.channel.allocator))
    }

    /// The whole answer, written: the exchange is over.
    private func send(_ bytes: ByteBuffer) {
        guard !self.done else { return }
        self.done = true
        self.disarm()
        self.context.write(self.handler.wrapOutboundOut(.byteBuffer(bytes)), promise: nil)
        self.pool.flushAtEndOfTurn(self.context)
        self.handler.exchangeEnded(context: self.context)
    }

    /// The client hung up: the attempt in flight, the wait before the next or the stream being relayed
    /// is dropped, and the request is accounted as the caller's, as on the slow path.
    func clientLeft() {
        guard !self.done else { return }
        self.done = true
        self.disarm()
        _ = self.loop.clientLeft()
        if let relay = self.relay {
            self.relay = nil
            self.unsent = nil
            relay.connection?.abandon(from: self)
            relay.exchange.clientLeft(usage: relay.usage)
        } else {
            if let attempt = self.attempt {
                self.attempt = nil
                attempt.connection?.abandon(from: self)
                self.state.health.withLock { $0.abandoned(attempt.ticket) }
                attempt.span?.cancelled()
            }
            self.state.finish(
                failed: .clientDisconnected, requestID: self.requestID, operation: "chat", caller: self.admission.caller, admission: self.admission,
                started: self.started, logger: self.logger, trace: self.trace
            )
        }
        self.handler.exchangeEnded(context: self.context)
    }
}
