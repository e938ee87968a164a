import Engine
import Foundation
import Synchronization

/// Fans admin events (request summaries, state changes) out to `/v1/events` subscribers. Each has its
/// own bounded buffer that drops the oldest events when the reader falls behind: a slow console can
/// never slow traffic down. Sequence numbers let a reader see what it missed.
final class EventHub: Sendable {
    /// Events a subscriber may have waiting before the oldest go.
    static let bufferLimit = 1_024

    private struct Subscribers {
        var next = 0
        var sequence = 0
        var continuations: [Int: AsyncStream<AdminEvent>.Continuation] = [:]
    }

    private let subscribers = Mutex(Subscribers())
    private let subscriberCount = Atomic<Int>(0)

    /// Whether anyone listens: request summaries are not even built otherwise.
    var hasSubscribers: Bool { self.subscriberCount.load(ordering: .relaxed) > 0 }

    func publish(_ event: AdminEvent) {
        var event = event
        event.time = Date().timeIntervalSince1970
        self.subscribers.withLock { subscribers in
            subscribers.sequence += 1
            event.seq = subscribers.sequence
            for continuation in subscribers.continuations.values { continuation.yield(event) }
        }
    }

    func subscribe() -> AsyncStream<AdminEvent> {
        let (stream, continuation) = AsyncStream<AdminEvent>.makeStream(bufferingPolicy: .bufferingNewest(Self.bufferLimit))
        let id = self.subscribers.withLock { subscribers in
            subscribers.next += 1
            subscribers.continuations[subscribers.next] = continuation
            return subscribers.next
        }
        self.subscriberCount.add(1, ordering: .relaxed)
        continuation.onTermination = { [weak self] _ in
            guard let self else { return }
            self.subscribers.withLock { _ = $0.continuations.removeValue(forKey: id) }
            self.subscriberCount.subtract(1, ordering: .relaxed)
        }
        return stream
    }

    /// Ends every subscription (shutdown).
    func finishAll() {
        let continuations = self.subscribers.withLock { $0.continuations.values }
        for continuation in continuations { continuation.finish() }
    }
}
