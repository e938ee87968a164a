import NIOCore
import NIOPosix
import Synchronization

/// An egress proxy on loopback as companies run them: `CONNECT host:port` opens a tunnel, through which
/// the client speaks TLS with the upstream. Every host it is asked for is reached on 127.0.0.1 (so a
/// test can name an upstream `vendor.test`); it records what it was asked for.
final class TunnelProxy: Sendable {
    let port: Int
    private let channel: any Channel
    private let asked = Asked()

    private final class Asked: Sendable {
        let targets = Mutex<[String]>([])
    }

    init() async throws {
        let asked = self.asked
        self.channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ConnectHandler { target in asked.targets.withLock { $0.append(target) } })
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        self.port = self.channel.localAddress?.port ?? 0
    }

    /// The `host:port` of every tunnel asked for, in order.
    var tunnels: [String] { self.asked.targets.withLock { $0 } }

    func stop() async {
        try? await self.channel.close()
    }

    /// Reads the `CONNECT` head, opens the tunnel, then passes bytes both ways.
    private final class ConnectHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        private let record: @Sendable (String) -> Void
        private var head = ByteBuffer()
        private var peer: (any Channel)?

        init(record: @escaping @Sendable (String) -> Void) {
            self.record = record
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = self.unwrapInboundIn(data)
            if let peer = self.peer {
                peer.writeAndFlush(bytes, promise: nil)
                return
            }
            self.head.writeBuffer(&bytes)
            let text = String(buffer: self.head)
            guard let end = text.range(of: "\r\n\r\n") else { return }
            let requestLine = text[..<end.lowerBound].split(separator: "\r\n").first ?? ""
            let parts = requestLine.split(separator: " ")
            guard parts.count == 3, parts[0] == "CONNECT", let colon = parts[1].lastIndex(of: ":"), let port = Int(parts[1][parts[1].index(after: colon)...]) else {
                context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")), promise: nil)
                context.close(promise: nil)
                return
            }
            self.record(String(parts[1]))
            let client = context.channel
            context.channel.setOption(.autoRead, value: false).whenComplete { _ in }
            ClientBootstrap(group: context.eventLoop)
                .channelInitializer { upstream in
                    upstream.eventLoop.makeCompletedFuture { try upstream.pipeline.syncOperations.addHandler(Pipe(to: client)) }
                }
                .connect(host: "127.0.0.1", port: port)
                .assumeIsolated()
                .whenComplete { result in
                    switch result {
                    case .success(let upstream):
                        self.peer = upstream
                        context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 200 Connection established\r\n\r\n")), promise: nil)
                        context.channel.setOption(.autoRead, value: true).whenComplete { _ in }
                    case .failure:
                        context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")), promise: nil)
                        context.close(promise: nil)
                    }
                }
        }

        func channelInactive(context: ChannelHandlerContext) {
            self.peer?.close(promise: nil)
        }
    }

    /// One direction of a tunnel: what arrives goes out on the other channel, and a close closes both.
    private final class Pipe: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer

        private let other: any Channel

        init(to other: any Channel) {
            self.other = other
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            self.other.writeAndFlush(self.unwrapInboundIn(data), promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            self.other.close(promise: nil)
        }
    }
}
