import NIOCore
import NIOHTTP1
import NIOPosix

// POST bodies go to the upstream's /v1/chat/completions as they came; answers come back with only
// content-type, content-length and an x-request-id. No routing, no parsing of bodies, no accounting,
// no timeouts: what is left is SwiftNIO's HTTP/1.1 codecs, its event loop and the kernel.
//
//   swift run -c release NIOFloor LISTEN_PORT UPSTREAM_PORT [raw]
// With `raw`, the codecs are left out too (RawProxy.swift).

let arguments = CommandLine.arguments
let listenPort = arguments.count > 1 ? Int(arguments[1]) ?? 18099 : 18099
let upstream = try SocketAddress(ipAddress: "127.0.0.1", port: arguments.count > 2 ? Int(arguments[2]) ?? 18080 : 18080)
let raw = arguments.count > 3 && arguments[3] == "raw"

/// Idle upstream connections of the one event loop.
final class IdleConnections {
    var connections: [(Channel, UpstreamHandler)] = []
}

final class UpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    var status: HTTPResponseStatus = .ok
    var body: ByteBuffer?
    var answered: ((HTTPResponseStatus, ByteBuffer?) -> Void)?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.status = head.status
        case .body(var part):
            if self.body == nil { self.body = part } else { self.body?.writeBuffer(&part) }
        case .end:
            let answered = self.answered
            let body = self.body
            (self.answered, self.body) = (nil, nil)
            answered?(self.status, body)
        }
    }
}

final class ProxyHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = IOData
    let idle: IdleConnections
    var body: ByteBuffer?

    init(idle: IdleConnections) {
        self.idle = idle
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head:
            self.body = nil
        case .body(var part):
            if self.body == nil { self.body = part } else { self.body?.writeBuffer(&part) }
        case .end:
            let requestBody = self.body ?? ByteBuffer()
            var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/v1/chat/completions")
            head.headers.add(name: "host", value: "127.0.0.1")
            head.headers.add(name: "content-type", value: "application/json")
            head.headers.add(name: "content-length", value: String(requestBody.readableBytes))
            let send = { (channel: Channel, handler: UpstreamHandler) in
                handler.answered = { status, answer in
                    self.idle.connections.append((channel, handler))
                    var out = context.channel.allocator.buffer(capacity: 256 + (answer?.readableBytes ?? 0))
                    out.writeString("HTTP/1.1 \(status.code) \(status.reasonPhrase)\r\ncontent-type: application/json\r\n")
                    out.writeString("content-length: \(answer?.readableBytes ?? 0)\r\nx-request-id: floor\r\n\r\n")
                    if var answer { out.writeBuffer(&answer) }
                    context.writeAndFlush(self.wrapOutboundOut(.byteBuffer(out)), promise: nil)
                }
                channel.write(HTTPClientRequestPart.head(head), promise: nil)
                channel.write(HTTPClientRequestPart.body(.byteBuffer(requestBody)), promise: nil)
                channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
            }
            if let (channel, handler) = self.idle.connections.popLast() {
                send(channel, handler)
                return
            }
            ClientBootstrap(group: context.eventLoop)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        try channel.pipeline.syncOperations.addHandler(UpstreamHandler())
                    }
                }
                .connect(to: upstream)
                .assumeIsolated()
                .whenSuccess { channel in
                    if let handler = try? channel.pipeline.syncOperations.handler(type: UpstreamHandler.self) { send(channel, handler) }
                }
        }
    }
}

let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let idle = IdleConnections()
let rawIdle = RawIdleConnections()
let server = try ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 1024)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            if raw {
                try channel.pipeline.syncOperations.addHandler(RawProxyHandler(idle: rawIdle, upstream: upstream))
            } else {
                try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder()))
                try channel.pipeline.syncOperations.addHandler(ProxyHandler(idle: idle))
            }
        }
    }
    .bind(host: "127.0.0.1", port: listenPort)
    .wait()
try server.closeFuture.wait()
