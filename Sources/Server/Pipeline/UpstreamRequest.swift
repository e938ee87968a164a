import NIOCore

/// What one attempt sends. Built per target: the targets of one route may speak different dialects.
struct UpstreamRequest: Sendable {
    let body: ByteBuffer
    let path: String
    let streaming: Bool
    /// The client's `traceparent`, when valid.
    var traceparent: String?
    /// The client connection's event loop, where the call goes when it can.
    var eventLoop: (any EventLoop)?
}
