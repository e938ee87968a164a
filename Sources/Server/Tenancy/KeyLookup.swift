import Synchronization

/// A key made on another replica is in the shared database before this replica hears of it (the
/// `NOTIFY` is on its way): a request that presents a key this replica does not know has it looked up
/// once, so a key answers on every replica the moment it exists. Lookups are bounded, so a client
/// spraying made-up keys costs the database little: at most `perSecond` a second, and a hash not found
/// is not asked for again for `missMemory`.
final class KeyLookup: Sendable {
    static let perSecond = 20
    static let missMemory = Duration.seconds(2)
    static let missCapacity = 10_000

    private struct Budget {
        var windowStart = ContinuousClock.now
        var used = 0
        var misses: [String: ContinuousClock.Instant] = [:]
    }

    private let database: any GatewayDatabase
    private let budget = Mutex(Budget())

    init(database: any GatewayDatabase) {
        self.database = database
    }

    /// The stored key with this hash, when the database is shared and the lookup is within bounds.
    func find(hash: String) async -> KeyRecord? {
        guard self.database.isShared, self.admit(hash, now: .now) else { return nil }
        let record = try? await self.database.key(hash: hash)
        if record == nil {
            self.budget.withLock { budget in
                if budget.misses.count >= Self.missCapacity { budget.misses.removeAll(keepingCapacity: true) }
                budget.misses[hash] = .now + Self.missMemory
            }
        }
        return record
    }

    private func admit(_ hash: String, now: ContinuousClock.Instant) -> Bool {
        self.budget.withLock { budget in
            if let until = budget.misses[hash] {
                guard now >= until else { return false }
                budget.misses[hash] = nil
            }
            if now - budget.windowStart >= .seconds(1) {
                budget.windowStart = now
                budget.used = 0
            }
            guard budget.used < Self.perSecond else { return false }
            budget.used += 1
            return true
        }
    }
}
