import NIOCore
import NIOPosix

// The same proxy without SwiftNIO's HTTP/1.1 codecs: request and answer framed by hand from the bytes
// (head up to the blank line, a Content-Length body), one write each way. What is left is SwiftNIO's
// event loop, its channels and the kernel: the floor under a gateway that parses HTTP itself.

/// Where the blank line ending a head is, and the value of its Content-Length (0 when absent).
func frame(_ buffer: ByteBuffer) -> (headEnd: Int, contentLength: Int)? {
    buffer.withUnsafeReadableBytes { bytes -> (Int, Int)? in
        guard bytes.count >= 4 else { return nil }
        var index = 0
        var lineStart = 0
        var contentLength = 0
        while index + 1 < bytes.count {
            if bytes[index] == 13, bytes[index + 1] == 10 {
                if index == lineStart { return (index + 2, contentLength) }
                // "content-length:" case-insensitively
                let length = index - lineStart
                if length > 15, bytes[lineStart] | 0x20 == UInt8(ascii: "c"), bytes[lineStart + 14] == UInt8(ascii: ":"),
                    bytes[lineStart + 8] | 0x20 == UInt8(ascii: "l")
                {
                    var value = 0
                    for position in (lineStart + 15)..<index where bytes[position] >= 48 && bytes[position] <= 57 {
                        value = value * 10 + Int(bytes[position] - 48)
                    }
                    contentLength = value
                }
                index += 2
                lineStart = index
            } else {
                index += 1
            }
        }
        return nil
    }
}

final class RawUpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    var buffer: ByteBuffer?
    var answered: ((ByteBuffer) -> Void)?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var part = self.unwrapInboundIn(data)
        if self.buffer == nil { self.buffer = part } else { self.buffer!.writeBuffer(&part) }
        guard let buffer = self.buffer, let (headEnd, length) = frame(buffer), buffer.readableBytes >= headEnd + length else { return }
        self.buffer = nil
        let body = buffer.getSlice(at: buffer.readerIndex + headEnd, length: length)!
        let answered = self.answered
        self.answered = nil
        answered?(body)
    }
}

final class RawProxyHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let idle: RawIdleConnections
    let upstream: SocketAddress
    var buffer: ByteBuffer?

    init(idle: RawIdleConnections, upstream: SocketAddress) {
        self.idle = idle
        self.upstream = upstream
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var part = self.unwrapInboundIn(data)
        if self.buffer == nil { self.buffer = part } else { self.buffer!.writeBuffer(&part) }
        while let buffer = self.buffer, let (headEnd, length) = frame(buffer), buffer.readableBytes >= headEnd + length {
            var rest = buffer
            rest.moveReaderIndex(forwardBy: headEnd)
            let body = rest.readSlice(length: length)!
            self.buffer = rest.readableBytes > 0 ? rest : nil
            self.forward(body, context: context)
        }
    }

    private func forward(_ body: ByteBuffer, context: ChannelHandlerContext) {
        var request = context.channel.allocator.buffer(capacity: 128 + body.readableBytes)
        request.writeString("POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ")
        request.writeString(String(body.readableBytes))
        request.writeString("\r\n\r\n")
        var body = body
        request.writeBuffer(&body)
        let send = { (channel: any Channel, handler: RawUpstreamHandler) in
            handler.answered = { answer in
                self.idle.connections.append((channel, handler))
                var out = context.channel.allocator.buffer(capacity: 128 + answer.readableBytes)
                out.writeString("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ")
                out.writeString(String(answer.readableBytes))
                out.writeString("\r\nx-request-id: floor\r\n\r\n")
                var answer = answer
                out.writeBuffer(&answer)
                context.writeAndFlush(self.wrapOutboundOut(out), promise: nil)
            }
            channel.writeAndFlush(request, promise: nil)
        }
        if let (channel, handler) = self.idle.connections.popLast() {
            send(channel, handler)
            return
        }
        ClientBootstrap(group: context.eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(RawUpstreamHandler()) }
            }
            .connect(to: self.upstream)
            .assumeIsolated()
            .whenSuccess { channel in
                if let handler = try? channel.pipeline.syncOperations.handler(type: RawUpstreamHandler.self) { send(channel, handler) }
            }
    }
}

final class RawIdleConnections {
    var connections: [(any Channel, RawUpstreamHandler)] = []
}
