import Engine
import Foundation

/// A change an operator made on one replica that every replica of the fleet applies: what goes out on
/// `sy:fleet:events`, as JSON.
struct FleetAnnouncement: Codable, Sendable, Equatable {
    enum Change: Codable, Sendable, Equatable {
        case drain(provider: String)
        case undrain(provider: String)
        /// A route's strategy and targets replaced at runtime (`PUT /v1/routes/{alias}`).
        case route(alias: String, edit: RouteEdit)
        /// The config file re-read: each replica reloads its own copy, and runtime edits are discarded.
        case reload
        case cacheFlush(tenant: String?, route: String?)
        /// A vendor's 429 (or out-of-quota) heard by one replica: its rate limit is the account's, so
        /// every replica rests the target as long.
        case rest(provider: String, model: String, seconds: Double)
        /// An operator opened (`open`) or reset the breakers of a provider's targets, or of one model's.
        case breaker(provider: String, model: String?, open: Bool)
    }

    var change: Change
    /// The replica that made the change: it has applied it already and skips its own announcement.
    var replica: String
    /// Who asked for it (`uid:1000` on the admin socket).
    var actor: String

    /// A message larger than this is not ours: it is dropped unread.
    static let largest = 256 << 10

    func encoded() -> String {
        // Plain strings and numbers only: encoding cannot fail.
        String(decoding: (try? JSONEncoder().encode(self)) ?? Data(), as: UTF8.self)
    }

    static func decode(_ bytes: some Collection<UInt8>) -> FleetAnnouncement? {
        guard bytes.count <= Self.largest else { return nil }
        return try? JSONDecoder().decode(FleetAnnouncement.self, from: Data(bytes))
    }
}

/// What the fleet's state in Redis says now: what a replica makes its own when it starts or reconnects.
struct FleetState: Sendable, Equatable {
    var drained: Set<String> = []
    /// Runtime route edits since the last reload, by alias.
    var routes: [String: RouteEdit] = [:]
}
