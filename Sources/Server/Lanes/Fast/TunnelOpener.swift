import Foundation
import NIOCore

/// Opens a `CONNECT` tunnel through an egress proxy on a new connection, then leaves the pipeline:
/// TLS with the upstream follows through the tunnel. `established` completes when the proxy says 2xx,
/// fails when it says anything else, closes, or takes longer than the connect timeout.
final class TunnelOpener: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let established: EventLoopPromise<Void>
    private let request: ByteBuffer
    private let timeout: TimeAmount
    private var head = ByteBuffer()
    private var sent = false
    private var done = false
    /// A proxy's answer head past this is not one.
    private static let headLimit = 16 << 10

    /// - Parameter authority: the upstream's `host:port`.
    init(authority: String, credentials: (user: String, password: String)?, timeout: Duration, promise: EventLoopPromise<Void>) {
        var request = "CONNECT \(authority) HTTP/1.1\r\nhost: \(authority)\r\n"
        if let credentials {
            request += "proxy-authorization: Basic \(Data("\(credentials.user):\(credentials.password)".utf8).base64EncodedString())\r\n"
        }
        self.request = ByteBuffer(string: request + "\r\n")
        self.timeout = TimeAmount(timeout)
        self.established = promise
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { self.send(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        self.send(context: context)
        context.fireChannelActive()
    }

    private func send(context: ChannelHandlerContext) {
        guard !self.sent else { return }
        self.sent = true
        context.writeAndFlush(self.wrapOutboundOut(self.request), promise: nil)
        context.eventLoop.assumeIsolated().scheduleTask(in: self.timeout) {
            self.fail(UpstreamTunnelError(detail: "the egress proxy did not open the tunnel in time"), context: context)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = self.unwrapInboundIn(data)
        self.head.writeBuffer(&bytes)
        let text = String(buffer: self.head)
        guard let end = text.range(of: "\r\n\r\n") else {
            if self.head.readableBytes > Self.headLimit { self.fail(UpstreamTunnelError(detail: "the egress proxy's answer is not HTTP"), context: context) }
            return
        }
        let status = text[..<end.lowerBound].split(separator: " ", maxSplits: 2).dropFirst().first.flatMap { Int($0) }
        guard let status, (200..<300).contains(status), text[end.upperBound...].isEmpty else {
            let said = status.map { "status \($0)" } ?? "no HTTP status"
            return self.fail(UpstreamTunnelError(detail: "the egress proxy refused the tunnel (\(said))"), context: context)
        }
        self.done = true
        context.pipeline.syncOperations.removeHandler(self, promise: nil)
        self.established.succeed()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.fail(UpstreamTunnelError(detail: "the egress proxy closed the connection"), context: context)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.fail(error, context: context)
    }

    private func fail(_ error: any Error, context: ChannelHandlerContext) {
        guard !self.done else { return }
        self.done = true
        self.established.fail(error)
        context.close(promise: nil)
    }
}

/// The egress proxy would not carry a connection to the upstream.
struct UpstreamTunnelError: Error, CustomStringConvertible {
    let detail: String

    var description: String { self.detail }
}
