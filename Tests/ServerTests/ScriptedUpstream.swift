import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// An OpenAI-compatible upstream on loopback whose connection behaviour a test chooses: whether and
/// how soon it answers, and whether it closes a connection shortly after answering on it (as an
/// upstream whose keep-alive timeout is shorter than ours does) without saying so. It counts connections.
final class ScriptedUpstream: Sendable {
    struct Behaviour: Sendable {
        /// False: requests are taken and never answered, so a wait on them ends only by a timeout or a cancellation.
        var answers = true
        var answerAfter: Duration = .zero
        /// Closes each connection this long after its first answer; requests arriving meanwhile are never answered.
        var closeAfterAnswer: Duration?
        /// Answers with this event stream instead of a whole chat completion.
        var events: String?
    }

    let port: Int
    private let channel: any Channel
    private let counts: Counts

    final class Counts: Sendable {
        let open = Atomic<Int>(0)
        let peak = Atomic<Int>(0)
        let opened = Atomic<Int>(0)
        let answered = Atomic<Int>(0)
        let received = Atomic<Int>(0)
    }

    init(_ behaviour: Behaviour) async throws {
        let counts = Counts()
        self.counts = counts
        self.channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(behaviour: behaviour, counts: counts))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        self.port = self.channel.localAddress?.port ?? 0
    }

    var openConnections: Int { self.counts.open.load(ordering: .relaxed) }
    var peakConnections: Int { self.counts.peak.load(ordering: .relaxed) }
    var connectionsOpened: Int { self.counts.opened.load(ordering: .relaxed) }
    var answers: Int { self.counts.answered.load(ordering: .relaxed) }
    /// Requests read whole, answered or not.
    var requests: Int { self.counts.received.load(ordering: .relaxed) }

    func stop() async {
        try? await self.channel.close()
    }

    static let answer = #"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#

    private final class Handler: ChannelInboundHandler, Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        let behaviour: Behaviour
        let counts: Counts
        /// Set once the connection answered and is due to close (only touched on its event loop).
        private let closing = Atomic<Bool>(false)

        init(behaviour: Behaviour, counts: Counts) {
            self.behaviour = behaviour
            self.counts = counts
        }

        func channelActive(context: ChannelHandlerContext) {
            let open = self.counts.open.add(1, ordering: .relaxed).newValue
            self.counts.opened.add(1, ordering: .relaxed)
            var peak = self.counts.peak.load(ordering: .relaxed)
            while open > peak, !self.counts.peak.compareExchange(expected: peak, desired: open, ordering: .relaxed).exchanged {
                peak = self.counts.peak.load(ordering: .relaxed)
            }
            context.fireChannelActive()
        }

        func channelInactive(context: ChannelHandlerContext) {
            self.counts.open.subtract(1, ordering: .relaxed)
            context.fireChannelInactive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .end = self.unwrapInboundIn(data) else { return }
            self.counts.received.add(1, ordering: .relaxed)
            guard self.behaviour.answers, !self.closing.load(ordering: .relaxed) else { return }
            let loop = context.eventLoop.assumeIsolated()
            let answer: () -> Void = {
                let body = self.behaviour.events.map { ByteBuffer(string: $0) } ?? Self.body
                var head = HTTPResponseHead(version: .http1_1, status: .ok)
                head.headers.add(name: "content-type", value: self.behaviour.events == nil ? "application/json" : "text/event-stream")
                head.headers.add(name: "content-length", value: String(body.readableBytes))
                context.write(self.wrapOutboundOut(.head(head)), promise: nil)
                context.write(self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
                context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
                self.counts.answered.add(1, ordering: .relaxed)
                if let delay = self.behaviour.closeAfterAnswer {
                    self.closing.store(true, ordering: .relaxed)
                    loop.scheduleTask(in: TimeAmount(delay)) { context.close(promise: nil) }
                }
            }
            if self.behaviour.answerAfter > .zero {
                loop.scheduleTask(in: TimeAmount(self.behaviour.answerAfter), answer)
            } else {
                answer()
            }
        }

        static let body = ByteBuffer(string: ScriptedUpstream.answer)
    }
}

/// An upstream on loopback that answers every request with bytes a test writes out by hand, to
/// exercise how the fast lane frames answers (chunk extensions and trailers, a body that ends with the
/// connection, garbage), and closes the connection after answering when asked.
final class RawUpstream: Sendable {
    let port: Int
    private let channel: any Channel

    init(answer: String, closeAfterAnswer: Bool) async throws {
        self.channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Handler(answer: answer, closeAfterAnswer: closeAfterAnswer))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        self.port = self.channel.localAddress?.port ?? 0
    }

    func stop() async {
        try? await self.channel.close()
    }

    private final class Handler: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        let answer: String
        let closeAfterAnswer: Bool

        init(answer: String, closeAfterAnswer: Bool) {
            self.answer = answer
            self.closeAfterAnswer = closeAfterAnswer
        }

        /// Answers once a request's blank line and `content-length` bytes have come (requests are small
        /// and come whole in these tests).
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let text = String(buffer: self.unwrapInboundIn(data))
            guard text.contains("\r\n\r\n") else { return }
            context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: self.answer)), promise: nil)
            if self.closeAfterAnswer { context.close(promise: nil) }
        }
    }
}
