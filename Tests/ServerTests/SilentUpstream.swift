import NIOCore
import NIOPosix
import Synchronization

/// A TCP server on loopback that accepts requests and never answers: the gateway's wait on it can only
/// end by a timeout or a cancellation, and `openConnections` shows when the gateway gave up.
final class SilentUpstream: Sendable {
    let port: Int
    private let channel: any Channel
    private let counter: Counter

    final class Counter: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let open = Atomic<Int>(0)

        func channelActive(context: ChannelHandlerContext) {
            self.open.add(1, ordering: .relaxed)
            context.fireChannelActive()
        }

        func channelInactive(context: ChannelHandlerContext) {
            self.open.subtract(1, ordering: .relaxed)
            context.fireChannelInactive()
        }
    }

    init() async throws {
        let counter = Counter()
        self.counter = counter
        self.channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in channel.pipeline.addHandler(counter) }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        self.port = self.channel.localAddress?.port ?? 0
    }

    var openConnections: Int { self.counter.open.load(ordering: .relaxed) }

    func stop() async {
        try? await self.channel.close()
    }
}
