import Engine
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import Synchronization

/// The public API's connections: Hummingbird's HTTP/1.1 channel with the fast lane in front of it,
/// at most `server.max_connections` of them at once.
struct GatewayChannel: ServerChildChannel {
    let http1: HTTP1Channel
    let state: GatewayState

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<HTTP1Channel.Value> {
        let state = self.state
        guard state.clientConnections.add(1, ordering: .relaxed).newValue <= state.maxClientConnections else {
            state.clientConnections.subtract(1, ordering: .relaxed)
            return Self.refuse(channel, state: state)
        }
        channel.closeFuture.whenComplete { _ in state.clientConnections.subtract(1, ordering: .relaxed) }
        do {
            try channel.pipeline.syncOperations.addHandler(FastLaneHandler(state: state))
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        return self.http1.setup(channel: channel, logger: logger).flatMapThrowing { value in
            // Where requests still carry their HTTP version and `Connection` field, before they become `HTTPRequest`s.
            let decoder = try channel.pipeline.syncOperations.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            try channel.pipeline.syncOperations.addHandler(FrameworkWatch(), position: .after(decoder))
            return value
        }
    }

    /// A connection past the cap: answered 503 and closed, without an HTTP pipeline (Hummingbird's
    /// loop finds no request on it and ends when it closes).
    private static func refuse(_ channel: any Channel, state: GatewayState) -> EventLoopFuture<HTTP1Channel.Value> {
        state.metrics.recordRefusedConnection()
        state.logger.debug("client connection refused", metadata: ["gw.open": "\(state.clientConnections.load(ordering: .relaxed))", "gw.max_connections": "\(state.maxClientConnections)"])
        let error = GatewayError.tooManyConnections
        var answer = error.openAIWholeResponse(requestID: state.identity.make(clientSupplied: nil), overhead: .zero)
        answer.headers[.connection] = "close"
        let date = state.loopUpstreams.pool(on: channel.eventLoop)?.date.now ?? HTTPDateCache().now
        let bytes = WireResponse.whole(answer.status, answer.headers, body: answer.body, date: date, allocator: channel.allocator)
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(ConnectionRefusal(answer: bytes))
            return try HTTP1Channel.Value(wrappingChannelSynchronously: channel)
        }
    }

    func handle(value: HTTP1Channel.Value, logger: Logger) async {
        await self.http1.handle(value: value, logger: logger)
    }

    /// The server for `state`: Hummingbird's handlers after `disconnects`' watch, the fast lane first.
    static func server(_ state: GatewayState) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            GatewayChannel(
                http1: HTTP1Channel(
                    responder: responder,
                    configuration: .init(additionalChannelHandlers: [state.disconnects.makeHandler()])
                ),
                state: state
            )
        }
    }
}

/// The OpenAI fast path served where the request arrives: on the connection's event loop, in front of
/// Hummingbird's HTTP/1.1 decoder, with the upstream reached through that loop's own connections,
/// without a task, an async hop, a header-type conversion or AsyncHTTPClient. It frames each request
/// from the bytes (`RequestHead`) and takes those that need nothing else: a chat completion (whole or
/// streamed), from a caller whose limits the quota store can decide on the spot (anonymous, or kept in
/// memory), to a route without hedging, and without a cache for this request, whose targets are all
/// plain-HTTP OpenAI-compatible upstreams. Its answers are written as bytes (`WireResponse`).
///
/// Every other request, and every request the fast lane could not take as it is (a bad body, an
/// unknown model, a refusal), goes on to Hummingbird as the bytes it came as, where the same code
/// answers it in full. Bytes it cannot frame (a chunked body, an upgrade, anything unusual) make the
/// connection Hummingbird's for good, so the two never disagree on where a request ends.
///
/// Requests on one connection are answered in order: while the fast lane answers one, what follows
/// waits (and once something waits, the connection is not read further); while Hummingbird owes
/// answers, the next requests go to Hummingbird too.
///
/// It also holds the client to `server`'s limits on both lanes (`ClientPacing`, on the loop's client
/// sweep: no timer per request), and once an answer ends the connection (`FrameworkWatch` says so),
/// nothing the client sent after that request is framed, passed on or served.
final class FastLaneHandler: ChannelDuplexHandler, RemovableChannelHandler, DeadlineHolder {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private enum Phase {
        /// Between requests: what is buffered begins a head, of which `searched` bytes hold no blank line.
        case idle(searched: Int)
        /// A fast-lane candidate's body arriving.
        case collecting(RequestHead, body: ByteBuffer)
        /// The body of a request Hummingbird answers, passed on as it arrives: this many bytes more.
        case passing(remaining: Int)
        case serving(FastExchange)
        /// Everything goes to Hummingbird from here on.
        case handedOver
    }

    private let state: GatewayState
    private var phase = Phase.idle(searched: 0)
    /// Received and not yet framed or passed on.
    private var buffered: ByteBuffer?
    /// Requests handed to Hummingbird whose response has not ended.
    private var frameworkResponses = 0
    /// Set while `advance` runs, so an answer that ends inside it does not start it again.
    private var advancing = false
    private var readHeld = false
    /// Whether bytes went on to Hummingbird since the last end of a read, which it must then hear of.
    private var passedOn = false
    /// A graceful shutdown asked to close the connection while the fast lane answers: passed on (and
    /// the connection closed by Hummingbird) once the answer is written.
    private var quiescePending = false
    private var heldError: (any Error)?

    // The client's pace: what `ClientPacing` looks at on each tick.
    private var pacing = ClientPacing(acceptedAt: .now)
    /// Bytes received and requests begun on the connection, and bytes of the current request's body.
    private var received = 0
    private var requests = 0
    private var bodyReceived = 0
    /// `received` when an answer of Hummingbird's last ended: bytes past it, on a connection Hummingbird
    /// frames, begin the next head.
    private var receivedAtLastAnswer = 0
    /// Hummingbird decoded a request head whose end has not come yet.
    private var frameworkReading = false
    /// Hummingbird's response has begun (its head went out) and not ended.
    private var frameworkWriting = false
    /// The answer being written ends the connection: nothing after its request is framed, passed on or served.
    private var closing = false
    /// A client limit ran out: the connection is saying its last words.
    private var timedOut = false
    private var context: ChannelHandlerContext?
    private var pool: LoopConnectionPool?
    var sweepSlot: Int?

    private let limits: ClientLimits

    init(state: GatewayState) {
        self.state = state
        self.limits = state.server.client
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.pool = self.state.loopUpstreams.pool(on: context.eventLoop)
        self.pool?.clientDeadlines.watch(self)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.stopPacing()
    }

    private func stopPacing() {
        self.pool?.clientDeadlines.unwatch(self)
        self.context = nil
    }

    private var isServing: Bool {
        if case .serving = self.phase { return true }
        return false
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = self.unwrapInboundIn(data)
        self.received &+= bytes.readableBytes
        guard !self.closing else { return }
        if case .handedOver = self.phase { return self.passOn(bytes, context: context) }
        if self.buffered == nil {
            self.buffered = bytes
        } else {
            self.buffered!.writeBuffer(&bytes)
        }
        self.advance(context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.passReadComplete(context: context)
    }

    /// The end of a read, for Hummingbird, when something reached it (skipped for the fast lane's own
    /// requests, which Hummingbird never sees).
    private func passReadComplete(context: ChannelHandlerContext) {
        guard self.passedOn else { return }
        self.passedOn = false
        context.fireChannelReadComplete()
    }

    private func passOn(_ bytes: ByteBuffer, context: ChannelHandlerContext) {
        self.passedOn = true
        context.fireChannelRead(self.wrapInboundOut(bytes))
    }

    /// Frames and dispatches what is buffered, until it runs out or the fast lane is answering.
    private func advance(context: ChannelHandlerContext) {
        guard !self.advancing else { return }
        self.advancing = true
        defer { self.advancing = false }
        while !self.closing, var buffer = self.buffered, buffer.readableBytes > 0 {
            switch self.phase {
            case .serving:
                return
            case .handedOver:
                self.buffered = nil
                self.passOn(buffer, context: context)
            case .passing(let remaining):
                let slice = buffer.readSlice(length: min(remaining, buffer.readableBytes))!
                self.buffered = buffer
                self.phase = remaining == slice.readableBytes ? .idle(searched: 0) : .passing(remaining: remaining - slice.readableBytes)
                self.passOn(slice, context: context)
            case .collecting(let head, var body):
                self.phase = .idle(searched: 0)
                var slice = buffer.readSlice(length: min(head.contentLength - body.readableBytes, buffer.readableBytes))!
                self.buffered = buffer
                if body.readableBytes == 0 {
                    body = slice
                } else {
                    body.writeBuffer(&slice)
                }
                self.bodyReceived = body.readableBytes
                if body.readableBytes == head.contentLength {
                    self.dispatch(head, body: body, context: context)
                } else {
                    self.phase = .collecting(head, body: body)
                }
            case .idle(let searched):
                switch RequestHead.parse(buffer, searchedUpTo: searched) {
                case .incomplete:
                    self.phase = .idle(searched: buffer.readableBytes)
                    return
                case .unframeable:
                    // With the switch off, every request is counted as `disabled`, whatever its framing.
                    self.state.metrics.recordFastLaneSkip(self.state.server.fastLane ? .unusualFraming : .disabled)
                    self.phase = .handedOver
                case .head(let head):
                    self.requests &+= 1
                    self.bodyReceived = 0
                    buffer.moveReaderIndex(forwardBy: head.bytes.readableBytes)
                    self.buffered = buffer
                    self.phase = .idle(searched: 0)
                    if let skip = self.skipReason(head) {
                        self.state.metrics.recordFastLaneSkip(skip)
                        self.handOver(head, context: context)
                    } else if head.contentLength == 0 {
                        self.dispatch(head, body: context.channel.allocator.buffer(capacity: 0), context: context)
                    } else {
                        self.phase = .collecting(head, body: context.channel.allocator.buffer(capacity: 0))
                    }
                }
            }
        }
        self.buffered = nil
    }

    /// The first half of the lane decision, on the head: only `POST /v1/chat/completions` (or
    /// `/v1/messages`, translated for OpenAI-compatible upstreams) with a body
    /// within `server.max_body`, on a connection the client keeps open and with no framework answer
    /// owed, can be fast; Hummingbird answers the rest (its 413 for a body too large). The second
    /// half, on the body, is `FastExchange.init`.
    private func skipReason(_ head: RequestHead) -> FastLaneSkip? {
        if !self.state.server.fastLane { return .disabled }
        if !head.isPost || !(head.targets("/v1/chat/completions") || head.targets("/v1/messages")) { return .otherEndpoint }
        if head.closes { return .connectionCloses }
        if head.expects { return .expectsContinue }
        if head.contentLength > self.state.server.maxBodyBytes { return .bodyTooLarge }
        if self.frameworkResponses > 0 { return .behindFrameworkAnswer }
        return nil
    }

    /// A candidate's whole body is here: the fast lane answers it, or passes it on as it came.
    private func dispatch(_ head: RequestHead, body: ByteBuffer, context: ChannelHandlerContext) {
        do throws(FastLaneSkip) {
            let client: ClientDialect = head.targets("/v1/messages") ? .anthropic : .openAI
            let exchange = try FastExchange(head: head, body: body, client: client, state: self.state, handler: self, context: context)
            self.phase = .serving(exchange)
            exchange.begin()
        } catch {
            self.state.metrics.recordFastLaneSkip(error)
            self.handOver(head, context: context)
            self.phase = .idle(searched: 0)
            if body.readableBytes > 0 { self.passOn(body, context: context) }
        }
    }

    /// Passes a request's head on to Hummingbird, which now owes a response; its body follows as it comes.
    private func handOver(_ head: RequestHead, context: ChannelHandlerContext) {
        self.frameworkResponses += 1
        self.passOn(head.bytes, context: context)
        if head.contentLength > 0 { self.phase = .passing(remaining: head.contentLength) }
    }

    /// Hummingbird wrote the end of a response (also for what never reached it as a request: its 400
    /// for a broken head).
    fileprivate func frameworkResponseEnded() {
        self.frameworkResponses = max(0, self.frameworkResponses - 1)
        self.frameworkWriting = false
        self.receivedAtLastAnswer = self.received
    }

    fileprivate func frameworkResponseBegan() {
        self.frameworkWriting = true
    }

    /// Hummingbird's decoder framed a request head. On a connection handed over for good, only it
    /// sees where requests begin, so its answers owed are counted here.
    fileprivate func frameworkRequestBegan() {
        self.frameworkReading = true
        self.bodyReceived = 0
        guard case .handedOver = self.phase else { return }
        self.requests &+= 1
        self.frameworkResponses += 1
    }

    fileprivate func frameworkBodyReceived(_ count: Int) {
        self.bodyReceived &+= count
    }

    fileprivate func frameworkRequestEnded() {
        self.frameworkReading = false
        // Answered before its body was read (a refusal): the keep-alive pause begins now.
        if self.frameworkResponses == 0 { self.receivedAtLastAnswer = self.received }
    }

    /// The connection ends after the answer Hummingbird owes (the client asked, or its framing broke):
    /// what arrived after that request is dropped, and so is what comes.
    fileprivate func frameworkWillClose() {
        self.closing = true
        self.buffered = nil
    }

    /// The fast lane's answer is written: the connection goes on with what arrived meanwhile.
    func exchangeEnded(context: ChannelHandlerContext) {
        self.phase = .idle(searched: 0)
        if !self.advancing, self.buffered != nil {
            self.advance(context: context)
            // Outside a read of the socket: what was passed on reaches Hummingbird at the end of a read.
            self.passReadComplete(context: context)
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
        // Hummingbird may close the connection at once: the answer written must go out first.
        context.flush()
        context.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
    }

    private var isFree: Bool {
        switch self.phase {
        case .idle, .passing, .handedOver: return true
        case .collecting, .serving: return false
        }
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
        if self.isServing, self.buffered != nil {
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
        if case .some(.inputClosed) = event as? ChannelEvent {
            self.clientLeft()
            // The client read the last words of a connection the gateway ends.
            if self.timedOut { context.close(promise: nil) }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.stopPacing()
        self.clientLeft()
        context.fireChannelInactive()
    }

    /// Requests still waiting are not started for a client that is gone.
    private func clientLeft() {
        self.buffered = nil
        if case .serving(let exchange) = self.phase { exchange.clientLeft() }
    }
}

// MARK: Client limits

extension FastLaneHandler {
    /// What the client is doing, for its timeouts: only its sending and its keep-alive pauses are timed,
    /// never the gateway's own work (an upstream, a stream relayed), which the providers' timeouts bound.
    private var clientStage: ClientStage {
        switch self.phase {
        case .serving:
            return .answering
        case .collecting:
            return .body
        case .passing:
            // Behind answers owed for earlier requests, the body may wait on Hummingbird's reading.
            return self.frameworkResponses <= 1 ? .body : .answering
        case .idle:
            if self.frameworkResponses > 0 { return .answering }
            return self.requests == 0 || (self.buffered?.readableBytes ?? 0) > 0 ? .head : .idle
        case .handedOver:
            if self.frameworkReading { return self.frameworkResponses <= 1 ? .body : .answering }
            if self.frameworkResponses > 0 { return .answering }
            return self.requests == 0 || self.received != self.receivedAtLastAnswer ? .head : .idle
        }
    }

    func sweep(now: ContinuousClock.Instant) {
        guard let context = self.context,
            let timeout = self.pacing.check(self.clientStage, requests: self.requests, bodyReceived: self.bodyReceived, now: now, limits: self.limits)
        else { return }
        self.stopPacing()
        self.timedOut = true
        self.state.metrics.recordClientTimeout(timeout)
        self.state.logger.debug("client connection timed out", metadata: ["gw.phase": "\(timeout.rawValue)", "gw.remote": "\(context.channel.remoteAddress?.description ?? "?")"])
        self.frameworkWillClose()
        // A request the client is slow to send is answered (unless an answer has begun: Hummingbird
        // may answer before a body is read); an idle connection is just closed.
        if timeout != .idle, !self.isServing, !self.frameworkWriting {
            let limits = self.limits
            let what = timeout == .header
                ? "the request head took longer than server.header_timeout (\(DurationText.format(limits.headerTimeout)))"
                : "the request body arrived slower than server.body_min_rate (\(ByteSize.format(limits.bodyMinRate)) a second)"
            var answer = GatewayError.requestTimeout(what).openAIWholeResponse(requestID: self.state.identity.make(clientSupplied: nil), overhead: .zero)
            answer.headers[.connection] = "close"
            let date = self.pool?.date.now ?? HTTPDateCache().now
            let bytes = WireResponse.whole(answer.status, answer.headers, body: answer.body, date: date, allocator: context.channel.allocator)
            LastWords.say(bytes, context: context)
        } else {
            context.close(promise: nil)
        }
    }
}

/// An answer that ends a connection the gateway ends (a timeout, a refusal): the output is closed once
/// it is written, and the connection once the client closes its side or after `linger`. Meanwhile
/// what the client sends is dropped (its reads go nowhere): a close with unread bytes resets the
/// connection, and a reset can discard the answer before the client reads it.
enum LastWords {
    static let linger: TimeAmount = .seconds(2)

    static func say(_ answer: ByteBuffer, context: ChannelHandlerContext) {
        context.writeAndFlush(NIOAny(IOData.byteBuffer(answer))).assumeIsolated().whenComplete { _ in context.close(mode: .output, promise: nil) }
        context.eventLoop.assumeIsolated().scheduleTask(in: Self.linger) { context.close(promise: nil) }
    }
}

/// Hummingbird's side of a connection, seen where its HTTP/1.1 decoder and encoder work (requests
/// still carry their version and `Connection` field): it tells the fast lane where Hummingbird's
/// requests begin and end and when its responses begin and end, so the lane knows when it may answer
/// again without overtaking one, and what the client is doing.
///
/// It also decides, for both lanes' sake, when an answer ends the connection: for a request the client
/// does not keep alive (HTTP/1.0 without `keep-alive`, `Connection: close`), for an HTTP/1.0 answer of
/// unknown length (its end is the close), and once the client's framing broke (Hummingbird's decoder
/// failed: nothing after it can be trusted). Such an answer says `Connection: close`, nothing the client
/// sent after it is served, and the connection closes once the answer is written.
final class FrameworkWatch: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private struct Pending {
        let keepAlive: Bool
        let version: HTTPVersion
    }

    private var lane: FastLaneHandler?
    /// Requests decoded whose response has not begun, in order.
    private var pending = CircularBuffer<Pending>()
    private var framingBroke = false
    /// The response being written closes the connection when it ends.
    private var closeAfterResponse = false

    func handlerAdded(context: ChannelHandlerContext) {
        self.lane = try? context.pipeline.syncOperations.handler(type: FastLaneHandler.self)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.lane = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(var head):
            let keepAlive = head.isKeepAlive
            self.pending.append(Pending(keepAlive: keepAlive, version: head.version))
            self.lane?.frameworkRequestBegan()
            // Hummingbird ends its loop after a request that says `close`, and only one that says exactly that.
            if !keepAlive { head.headers.replaceOrAdd(name: "connection", value: "close") }
            context.fireChannelRead(self.wrapInboundOut(.head(head)))
        case .body(let bytes):
            self.lane?.frameworkBodyReceived(bytes.readableBytes)
            context.fireChannelRead(data)
        case .end:
            self.lane?.frameworkRequestEnded()
            if self.pending.last?.keepAlive == false { self.lane?.frameworkWillClose() }
            context.fireChannelRead(data)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is HTTPParserError {
            self.framingBroke = true
            self.lane?.frameworkWillClose()
        }
        context.fireErrorCaught(error)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch self.unwrapOutboundIn(data) {
        case .head(var head) where head.status.code >= 200:
            // No request decoded: Hummingbird's 400 for a head its decoder refused.
            let request = self.pending.popFirst()
            var closes = self.framingBroke || !(request?.keepAlive ?? false) || !head.isKeepAlive
            if let request, request.version.major == 1, request.version.minor == 0 {
                // An HTTP/1.0 client reads no chunks: an answer of unknown length ends with the connection.
                head.version = .http1_0
                if !head.headers.contains(name: "content-length") { closes = true }
                if !closes { head.headers.replaceOrAdd(name: "connection", value: "keep-alive") }
            }
            if closes {
                head.headers.replaceOrAdd(name: "connection", value: "close")
                self.closeAfterResponse = true
                self.lane?.frameworkWillClose()
            }
            self.lane?.frameworkResponseBegan()
            context.write(self.wrapOutboundOut(.head(head)), promise: promise)
        case .end where self.closeAfterResponse:
            let written = promise ?? context.eventLoop.makePromise()
            written.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            context.writeAndFlush(data, promise: written)
            self.lane?.frameworkResponseEnded()
        case .end:
            context.write(data, promise: promise)
            self.lane?.frameworkResponseEnded()
        default:
            context.write(data, promise: promise)
        }
    }
}

/// A connection past `server.max_connections`: answered at once (`LastWords`), then closed; nothing it
/// sends goes further.
final class ConnectionRefusal: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let answer: ByteBuffer
    private var answered = false

    init(answer: ByteBuffer) {
        self.answer = answer
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { self.refuse(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        self.refuse(context: context)
        context.fireChannelActive()
    }

    private func refuse(context: ChannelHandlerContext) {
        guard !self.answered else { return }
        self.answered = true
        LastWords.say(self.answer, context: context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .some(.inputClosed) = event as? ChannelEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}
