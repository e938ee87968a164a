import Engine
import NIOCore

/// A stream relay as the framework lane's body writer drives it: the bytes for the client for each
/// upstream chunk, with what the stream used, how it ended and its whole answer read on the way.
/// Translated streams and Responses streams passed through event for event share one loop.
protocol ClientStreamRelay {
    /// True once the client's stream has its last event.
    var isFinished: Bool { get }
    var usage: Usage? { get }
    var failure: GatewayError? { get }
    /// The whole answer, once it has ended well (when the relay records).
    var recordedAnswer: ChatResponse? { get }
    mutating func bytes(for chunk: ByteBuffer) -> ByteBuffer
    /// The upstream's body ended.
    mutating func bytesAtEnd() -> ByteBuffer
    /// Ours ends the stream (a timeout, a broken connection).
    mutating func bytes(failingWith error: GatewayError) -> ByteBuffer
}

extension TranslatedStreamRelay: ClientStreamRelay {
    mutating func bytes(for chunk: ByteBuffer) -> ByteBuffer { ByteBuffer(string: self.feed(chunk)) }
    mutating func bytesAtEnd() -> ByteBuffer { ByteBuffer(string: self.finish()) }
    mutating func bytes(failingWith error: GatewayError) -> ByteBuffer { ByteBuffer(string: self.fail(error)) }
}

extension ResponsesStreamRelay: ClientStreamRelay {
    mutating func bytes(for chunk: ByteBuffer) -> ByteBuffer { self.feed(chunk) }
    mutating func bytesAtEnd() -> ByteBuffer { self.finish() }
    mutating func bytes(failingWith error: GatewayError) -> ByteBuffer { self.fail(error) }
}
