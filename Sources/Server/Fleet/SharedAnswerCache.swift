import Engine
import Logging
import NIOCore
import Redis
import Synchronization

/// The exact cache's fleet tier (`cache: { shared: true }`): answers kept in Redis too, so one that a
/// replica stored serves every replica. Looked up after the replica's own memory misses; a hit there
/// is copied into memory. Redis's `maxmemory` (and its eviction policy) bounds it; each entry expires
/// with its TTL. The semantic index stays per replica.
///
/// Redis being slow or away never fails a request: a lookup that gets no answer within the state
/// timeout is a miss, a store that fails is dropped, and both are counted and logged.
final class SharedAnswerCache: Sendable {
    /// An answer larger than this stays in the replica's memory only.
    static let largestEntry = 4 << 20

    private let redis: RedisClient
    private let logger: Logger
    private let unreachable = ThrottledWarning()
    /// Lookups answered from Redis, and lookups or stores Redis did not answer.
    let hits = Atomic<Int>(0)
    let failures = Atomic<Int>(0)

    init(redis: RedisClient, logger: Logger) {
        self.redis = redis
        self.logger = logger
    }

    /// `sy:{<scope>}:cache:<route>:<key>`: the caller's scope is the hash tag, so a tenant's entries
    /// share a Redis Cluster slot and a flush of one tenant or route is one pattern.
    static func key(_ plan: CachePlan) -> String {
        "sy:{\(RedisKeyText.escaped(plan.scope))}:cache:\(RedisKeyText.escaped(plan.route)):\(plan.key)"
    }

    /// The `SCAN` pattern of the entries a flush removes (all, a tenant's, a route's, or both).
    static func pattern(tenant: String?, route: String?) -> String {
        let scope = tenant.map { RedisKeyText.literalInPattern("tenant:\($0)") } ?? "*"
        let routePart = route.map { RedisKeyText.literalInPattern($0) + ":" } ?? ""
        return "sy:{\(scope)}:cache:\(routePart)*"
    }

    /// The plan's answer in Redis and how long it has left, or nil (a miss, or Redis did not answer).
    func answer(for plan: CachePlan) async -> (answer: CachedAnswer, ttl: Duration)? {
        let key = RedisArgument(Self.key(plan))
        do {
            let replies = try await self.redis.send([RedisCommand("GET", [key]), RedisCommand("PTTL", [key])])
            guard case .bulkString(let stored) = replies[0], stored.readableBytes <= Self.largestEntry,
                let answer = CachedAnswer(json: String(buffer: stored)),
                let left = replies[1].int, left > 0
            else { return nil }
            self.hits.add(1, ordering: .relaxed)
            // Redis's number, bounded by the plan's TTL before it becomes a Duration.
            let most = Int64(plan.ttl / .milliseconds(1))
            return (answer, .milliseconds(min(left, most)))
        } catch {
            self.failed("a shared cache lookup", error)
            return nil
        }
    }

    /// Stores `answer` for the plan's TTL, without the caller waiting.
    func store(_ answer: CachedAnswer, plan: CachePlan) {
        let json = answer.json
        guard json.utf8.count <= Self.largestEntry else { return }
        let milliseconds = max(1, Int(plan.ttl / .milliseconds(1)))
        let command = RedisCommand("SET", [RedisArgument(Self.key(plan)), RedisArgument(json), "PX", RedisArgument(milliseconds)])
        Task {
            do {
                _ = try await self.redis.send(command)
            } catch {
                self.failed("a shared cache store", error)
            }
        }
    }

    /// Removes the entries of a flush's scope from Redis, a batch at a time.
    /// - Returns: how many went.
    /// - Throws: when Redis does not answer: some entries may be left.
    func flush(tenant: String?, route: String?) async throws -> Int {
        let pattern = RedisArgument(Self.pattern(tenant: tenant, route: route))
        var cursor = "0"
        var removed = 0
        // Bounded: a keyspace of a billion keys is 1,000,000 batches of 1,000.
        for _ in 0..<1_000_000 {
            let reply = try await self.redis.send(RedisCommand("SCAN", [RedisArgument(cursor), "MATCH", pattern, "COUNT", "1000"]))
            guard let parts = reply.elements, parts.count == 2, let next = parts[0].string else {
                throw RedisError(.protocolViolation, "SCAN answered \(reply)")
            }
            let keys = (parts[1].elements ?? []).compactMap(\.string)
            if !keys.isEmpty {
                let unlinked = try await self.redis.send(RedisCommand("UNLINK", keys.map { RedisArgument($0) })).int ?? 0
                removed += Int(clamping: unlinked)
            }
            cursor = next
            if cursor == "0" { break }
        }
        return removed
    }

    private func failed(_ what: String, _ error: any Error) {
        self.failures.add(1, ordering: .relaxed)
        self.unreachable.note { count in
            self.logger.warning("\(what) did not reach Redis; the request went on without it", metadata: ["gw.error": "\(error)", "gw.requests": "\(count)"])
        }
    }
}
