import Engine
import Foundation
import Logging
import NIOCore
import Redis

/// The operator's changes that every replica of a fleet applies (drains, route edits, reloads, cache
/// flushes), and the fleet's roll call: every replica's heartbeat.
///
/// What is state lives in Redis, so a replica that starts or reconnects later reads it: the drained
/// providers (`sy:fleet:drained`, provider → who drained it) and the runtime route edits since the last
/// reload (`sy:fleet:routes`, alias → the edit). Every change is announced on `sy:fleet:events`, so the
/// others apply it at once (well within a second on one network).
final class FleetSync: Sendable {
    static let drainedKey = "sy:fleet:drained"
    static let routesKey = "sy:fleet:routes"
    static let channel = "sy:fleet:events"

    private let redis: RedisClient
    private let subscriber: RedisSubscriber
    private let logger: Logger

    init(redis: RedisClient, eventLoop: any EventLoop, logger: Logger) {
        self.redis = redis
        self.subscriber = RedisSubscriber(redis.configuration, channels: [Self.channel], eventLoop: eventLoop)
        self.logger = logger
    }

    /// Records the change in the fleet's state and announces it, in one round trip.
    func announce(_ announcement: FleetAnnouncement) async throws(RedisError) {
        var commands: [RedisCommand] = []
        switch announcement.change {
        case .drain(let provider):
            commands.append(RedisCommand("HSET", [RedisArgument(Self.drainedKey), RedisArgument(provider), RedisArgument(announcement.actor)]))
        case .undrain(let provider):
            commands.append(RedisCommand("HDEL", [RedisArgument(Self.drainedKey), RedisArgument(provider)]))
        case .route(let alias, let edit):
            let json = String(decoding: (try? JSONEncoder().encode(edit)) ?? Data(), as: UTF8.self)
            commands.append(RedisCommand("HSET", [RedisArgument(Self.routesKey), RedisArgument(alias), RedisArgument(json)]))
        case .reload:
            commands.append(RedisCommand("DEL", [RedisArgument(Self.routesKey)]))
        case .cacheFlush, .rest, .breaker:
            // Not state: a flush is done once, a rest ends by itself, a breaker goes on judging by itself.
            break
        }
        commands.append(RedisCommand("PUBLISH", [RedisArgument(Self.channel), RedisArgument(announcement.encoded())]))
        for reply in try await self.redis.send(commands) {
            if case .error(let error) = reply { throw RedisError(.protocolViolation, error.message) }
        }
    }

    /// The fleet's drains and route edits now; an edit that does not decode is left out.
    func state() async throws -> FleetState {
        let replies = try await self.redis.send([
            RedisCommand("HKEYS", [RedisArgument(Self.drainedKey)]), RedisCommand("HGETALL", [RedisArgument(Self.routesKey)]),
        ])
        for reply in replies {
            if case .error(let error) = reply { throw error }
        }
        var state = FleetState(drained: Set((replies[0].elements ?? []).compactMap(\.string)))
        // RESP3 answers HGETALL with a map; RESP2 with a flat list of field, value, field, value.
        var pairs: [(RESPValue, RESPValue)] = []
        if case .map(let entries) = replies[1] {
            pairs = entries.map { ($0.key, $0.value) }
        } else if let flat = replies[1].elements {
            pairs = stride(from: 0, to: flat.count - 1, by: 2).map { (flat[$0], flat[$0 + 1]) }
        }
        for (field, value) in pairs {
            guard let alias = field.string, let json = value.string, json.utf8.count <= FleetAnnouncement.largest,
                let edit = try? JSONDecoder().decode(RouteEdit.self, from: Data(json.utf8))
            else { continue }
            state.routes[alias] = edit
        }
        return state
    }

    static let beatsKey = "sy:fleet:beats"
    static let replicasKey = "sy:fleet:replicas"
    /// A replica not heard from for this long is not listed (it beats every 2 s).
    static let silentAfter = Duration.seconds(10)

    /// Records `replica`'s heartbeat, on Redis's clock; forgets replicas silent for an hour.
    func beat(_ replica: AdminReplica) async throws {
        let json = String(decoding: try JSONEncoder().encode(replica), as: UTF8.self)
        _ = try await self.redis.run(Self.beatScript, keys: [RedisArgument(Self.beatsKey), RedisArgument(Self.replicasKey)], arguments: [RedisArgument(replica.id), RedisArgument(json)])
    }

    /// The replicas heard from within `silentAfter`, each with how long ago.
    func replicas() async throws -> [AdminReplica] {
        let reply = try await self.redis.run(
            Self.rollCallScript, keys: [RedisArgument(Self.beatsKey), RedisArgument(Self.replicasKey)],
            arguments: [RedisArgument(Int(Self.silentAfter / .milliseconds(1)))]
        )
        let values = reply.elements ?? []
        var replicas: [AdminReplica] = []
        // Pairs of (the replica's heartbeat, milliseconds since it); what does not decode is skipped.
        for index in stride(from: 0, to: values.count - 1, by: 2) {
            guard case .bulkString(let json) = values[index], json.readableBytes <= 16 << 10,
                var replica = try? JSONDecoder().decode(AdminReplica.self, from: Data(json.readableBytesView)),
                let ago = values[index + 1].int
            else { continue }
            replica.lastSeenSecondsAgo = Double(min(max(ago, 0), 86_400_000)) / 1_000
            // Another replica's numbers: bounded before anyone does arithmetic on them.
            replica.upSince = replica.upSince.isFinite ? min(max(replica.upSince, 0), 1e11) : 0
            replica.errorRate = replica.errorRate.isFinite ? min(max(replica.errorRate, 0), 1) : 0
            replica.requestsLastMinute = max(0, replica.requestsLastMinute)
            replicas.append(replica)
        }
        return replicas.sorted { $0.id < $1.id }
    }

    private static let beatScript = RedisScript(
        """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        redis.call('ZADD', KEYS[1], now, ARGV[1])
        redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
        local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - 3600000, 'LIMIT', 0, 100)
        if #gone > 0 then
          redis.call('ZREM', KEYS[1], unpack(gone))
          redis.call('HDEL', KEYS[2], unpack(gone))
        end
        return 1
        """
    )

    private static let rollCallScript = RedisScript(
        """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local live = redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[1]), '+inf', 'WITHSCORES', 'LIMIT', 0, 1000)
        local out = {}
        for i = 1, #live, 2 do
          local beat = redis.call('HGET', KEYS[2], live[i])
          if beat then
            out[#out + 1] = beat
            out[#out + 1] = now - tonumber(live[i + 1])
          end
        end
        return out
        """
    )

    /// Keeps the replica in step until cancelled: `subscribed` when subscribed (at first and after
    /// every reconnection, when Redis may have restarted), then `reconcile` with the fleet's state
    /// (changes announced meanwhile were missed), `apply` for each change announced.
    func run(
        subscribed: @escaping @Sendable () async -> Void, reconcile: @escaping @Sendable (FleetState) -> Void,
        apply: @escaping @Sendable (FleetAnnouncement) -> Void
    ) async {
        await withTaskGroup(of: Void.self) { tasks in
            tasks.addTask { await self.subscriber.run() }
            for await event in self.subscriber.events {
                switch event {
                case .subscribed:
                    await subscribed()
                    do {
                        reconcile(try await self.state())
                    } catch {
                        self.logger.warning("the fleet's drains and route edits could not be read", metadata: ["gw.error": "\(error)"])
                    }
                case .message(_, let payload):
                    guard let announcement = FleetAnnouncement.decode(payload.readableBytesView) else {
                        self.logger.warning("a fleet announcement that is not ours was ignored", metadata: ["gw.bytes": "\(payload.readableBytes)"])
                        continue
                    }
                    apply(announcement)
                }
            }
            tasks.cancelAll()
        }
    }
}
