import Logging
import NIOCore
import Redis

/// The operator's changes that every replica of a fleet applies: today, which providers are drained.
///
/// The current state lives in Redis (`sy:fleet:drained`, a hash of provider → who drained it), so a
/// replica that starts or reconnects later reads it; a change is announced on `sy:fleet:events`, so
/// the others apply it at once (well within a second on one network).
final class FleetSync: Sendable {
    static let drainedKey = "sy:fleet:drained"
    static let channel = "sy:fleet:events"

    private let redis: RedisClient
    private let subscriber: RedisSubscriber
    private let logger: Logger

    init(redis: RedisClient, eventLoop: any EventLoop, logger: Logger) {
        self.redis = redis
        self.subscriber = RedisSubscriber(redis.configuration, channels: [Self.channel], eventLoop: eventLoop)
        self.logger = logger
    }

    /// Records and announces that `provider` is drained (or back in rotation), by `operator`.
    func announce(_ provider: String, drained: Bool, by actor: String) async throws(RedisError) {
        let change = drained
            ? RedisCommand("HSET", [RedisArgument(Self.drainedKey), RedisArgument(provider), RedisArgument(actor)])
            : RedisCommand("HDEL", [RedisArgument(Self.drainedKey), RedisArgument(provider)])
        let message = RedisArgument((drained ? "drain " : "undrain ") + provider)
        for reply in try await self.redis.send([change, RedisCommand("PUBLISH", [RedisArgument(Self.channel), message])]) {
            if case .error(let error) = reply { throw RedisError(.protocolViolation, error.message) }
        }
    }

    /// Keeps the replica in step until cancelled: `reconcile` with the whole set of drained providers
    /// when subscribed (at first and after every reconnection, since changes announced meanwhile were
    /// missed), `apply` for each change announced.
    func run(reconcile: @escaping @Sendable (Set<String>) -> Void, apply: @escaping @Sendable (_ provider: String, _ drained: Bool) -> Void) async {
        await withTaskGroup(of: Void.self) { tasks in
            tasks.addTask { await self.subscriber.run() }
            for await event in self.subscriber.events {
                switch event {
                case .subscribed:
                    do {
                        let reply = try await self.redis.send(RedisCommand("HKEYS", [RedisArgument(Self.drainedKey)]))
                        reconcile(Set((reply.elements ?? []).compactMap(\.string)))
                    } catch {
                        self.logger.warning("the fleet's drained providers could not be read", metadata: ["gw.error": "\(error)"])
                    }
                case .message(_, let payload):
                    let text = String(buffer: payload)
                    if let provider = text.split(separator: " ", maxSplits: 1).last.map(String.init), text.hasPrefix("drain ") || text.hasPrefix("undrain ") {
                        apply(provider, text.hasPrefix("drain "))
                    }
                }
            }
            tasks.cancelAll()
        }
    }
}
