import Engine
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes

/// The public API's connections: Hummingbird's HTTP/1.1 channel with the fast lane in front of it.
struct GatewayChannel: ServerChildChannel {
    let http1: HTTP1Channel
    let state: GatewayState

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<HTTP1Channel.Value> {
        do {
            try channel.pipeline.syncOperations.addHandler(FastLaneHandler(state: self.state))
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        return self.http1.setup(channel: channel, logger: logger)
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
                    configuration: .init(additionalChannelHandlers: [state.disconnects.makeHandler(), FrameworkResponseWatch()])
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
final class FastLaneHandler: ChannelDuplexHandler, RemovableChannelHandler {
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

    init(state: GatewayState) {
        self.state = state
    }

    private var isServing: Bool {
        if case .serving = self.phase { return true }
        return false
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = self.unwrapInboundIn(data)
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
        while var buffer = self.buffered, buffer.readableBytes > 0 {
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
                    self.phase = .handedOver
                case .head(let head):
                    buffer.moveReaderIndex(forwardBy: head.bytes.readableBytes)
                    self.buffered = buffer
                    self.phase = .idle(searched: 0)
                    if self.frameworkResponses == 0, self.isCandidate(head) {
                        if head.contentLength == 0 {
                            self.dispatch(head, body: context.channel.allocator.buffer(capacity: 0), context: context)
                        } else {
                            self.phase = .collecting(head, body: context.channel.allocator.buffer(capacity: 0))
                        }
                    } else {
                        self.handOver(head, context: context)
                    }
                }
            }
        }
        self.buffered = nil
    }

    /// Only `POST /v1/chat/completions` with a body within `server.max_body`, on a connection the
    /// client keeps open, can be fast; Hummingbird answers the rest (its 413 for a body too large).
    private func isCandidate(_ head: RequestHead) -> Bool {
        head.isPost && !head.closes && !head.expects && head.contentLength <= self.state.server.maxBodyBytes
            && head.targets("/v1/chat/completions")
    }

    /// A candidate's whole body is here: the fast lane answers it, or passes it on as it came.
    private func dispatch(_ head: RequestHead, body: ByteBuffer, context: ChannelHandlerContext) {
        if let exchange = FastExchange(head: head, body: body, state: self.state, handler: self, context: context) {
            self.phase = .serving(exchange)
            exchange.begin()
        } else {
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
        if case .some(.inputClosed) = event as? ChannelEvent { self.clientLeft() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.clientLeft()
        context.fireChannelInactive()
    }

    /// Requests still waiting are not started for a client that is gone.
    private func clientLeft() {
        self.buffered = nil
        if case .serving(let exchange) = self.phase { exchange.clientLeft() }
    }
}

/// Tells the connection's fast lane when Hummingbird has finished a response, so the lane knows when
/// it may answer again without overtaking it. It sits after Hummingbird's HTTP/1.1 codec.
final class FrameworkResponseWatch: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private var lane: FastLaneHandler?

    func handlerAdded(context: ChannelHandlerContext) {
        self.lane = try? context.pipeline.syncOperations.handler(type: FastLaneHandler.self)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.lane = nil
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = self.unwrapOutboundIn(data) { self.lane?.frameworkResponseEnded() }
        context.write(data, promise: promise)
    }
}
