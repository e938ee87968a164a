import Engine
import Foundation
import Synchronization

/// Fans admin events (request summaries, state changes) out to `/v1/events` subscribers.
///
/// Publishing only appends to each subscriber's bounded queue under a lock: it wakes no task and
/// encodes nothing, so traffic pays the same whether the readers are fast, slow or absent. Each
/// subscriber's writer drains its queue in batches on its own schedule; when a reader falls more than
/// `queueLimit` events behind, the oldest are dropped (the sequence numbers show the gap).
final class EventHub: Sendable {
    static let queueLimit = 1_024

    final class Subscription: Sendable {
        private struct Queue {
            var events: [AdminEvent] = []
            var closed = false
        }

        private let queue = Mutex(Queue())

        fileprivate func append(_ event: AdminEvent) {
            self.queue.withLock { queue in
                if queue.events.count >= EventHub.queueLimit { queue.events.removeFirst(queue.events.count - EventHub.queueLimit + 1) }
                queue.events.append(event)
            }
        }

        /// Everything queued since the last call; nil once the hub closed it.
        func take() -> [AdminEvent]? {
            self.queue.withLock { queue in
                if queue.closed && queue.events.isEmpty { return nil }
                defer { queue.events.removeAll(keepingCapacity: true) }
                return queue.events
            }
        }

        fileprivate func close() {
            self.queue.withLock { $0.closed = true }
        }
    }

    private struct Subscribers {
        var next = 0
        var sequence = 0
        var all: [Int: Subscription] = [:]
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
            for subscription in subscribers.all.values { subscription.append(event) }
        }
    }

    /// A new subscription, and the id to end it with.
    func subscribe() -> (id: Int, subscription: Subscription) {
        let subscription = Subscription()
        let id = self.subscribers.withLock { subscribers in
            subscribers.next += 1
            subscribers.all[subscribers.next] = subscription
            return subscribers.next
        }
        self.subscriberCount.add(1, ordering: .relaxed)
        return (id, subscription)
    }

    func unsubscribe(_ id: Int) {
        let removed = self.subscribers.withLock { $0.all.removeValue(forKey: id) }
        if removed != nil { self.subscriberCount.subtract(1, ordering: .relaxed) }
    }

    /// Ends every subscription (shutdown): their writers send what is queued and finish.
    func finishAll() {
        let all = self.subscribers.withLock { $0.all.values }
        for subscription in all { subscription.close() }
    }
}

extension AdminEvent {
    /// The event as one SSE `data:` line, written directly (a JSONEncoder per event costs more than
    /// the request it describes).
    var serverSentEvent: String {
        var json = JSONWriter()
        json.openObject()
        json.field("seq", self.seq)
        json.field("time", self.time)
        json.field("kind", self.kind.rawValue)
        json.field("message", self.message)
        if let value = self.requestId { json.field("requestId", value) }
        if let value = self.route { json.field("route", value) }
        if let value = self.provider { json.field("provider", value) }
        if let value = self.model { json.field("model", value) }
        if let value = self.status { json.field("status", value) }
        if let value = self.latencyMs { json.field("latencyMs", value) }
        if let value = self.failure { json.field("failure", value) }
        json.closeObject()
        return "data: \(json.output)\n\n"
    }
}
