public import NIOCore
import Synchronization

/// A dedicated connection subscribed to channels (RESP3 pub/sub), kept subscribed: when it drops, it
/// is made again after a backoff and subscribes again, and says so (`subscribed`), since messages
/// published meanwhile were lost and the state they announced must be read again.
public final class RedisSubscriber: Sendable {
    public enum Event: Sendable, Equatable {
        /// Subscribed to every channel: the first time, and again after each reconnection.
        case subscribed
        case message(channel: String, payload: ByteBuffer)
    }

    public let events: AsyncStream<Event>
    private let continuation: AsyncStream<Event>.Continuation
    private let configuration: RedisConfiguration
    private let channels: [String]
    private let eventLoop: any EventLoop
    private let current = Mutex<RedisConnection?>(nil)

    public init(_ configuration: RedisConfiguration, channels: [String], eventLoop: any EventLoop) {
        (self.events, self.continuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(4096))
        self.configuration = configuration
        self.channels = channels
        self.eventLoop = eventLoop
    }

    /// Keeps the subscription until the task is cancelled, then ends `events`.
    public func run() async {
        var backoff = Duration.milliseconds(50)
        while !Task.isCancelled {
            let pending = Mutex(Set(self.channels))
            let continuation = self.continuation
            do {
                let connection = try await RedisConnection.connect(self.configuration, on: self.eventLoop) { push in
                    guard let values = push.elements, let kind = values.first?.string, values.count >= 3 else { return }
                    switch kind {
                    case "message":
                        guard let channel = values[1].string, case .bulkString(let payload) = values[2] else { return }
                        continuation.yield(.message(channel: channel, payload: payload))
                    case "subscribe":
                        guard let channel = values[1].string else { return }
                        let complete = pending.withLock { pending in
                            pending.remove(channel) != nil && pending.isEmpty
                        }
                        if complete { continuation.yield(.subscribed) }
                    default:
                        return
                    }
                }
                self.current.withLock { $0 = connection }
                connection.post([RedisCommand("SUBSCRIBE", self.channels.map { RedisArgument($0) })])
                backoff = .milliseconds(50)
                await withTaskCancellationHandler {
                    try? await connection.channel.closeFuture.get()
                } onCancel: {
                    connection.channel.close(promise: nil)
                }
                self.current.withLock { $0 = nil }
            } catch {
                // Retried after the backoff: a subscriber outlives any outage.
            }
            guard !Task.isCancelled else { break }
            try? await Task.sleep(for: backoff * Double.random(in: 0.5...1))
            backoff = min(backoff * 2, .seconds(2))
        }
        self.continuation.finish()
    }
}
