import Foundation

/// What keys, the ledger and the audit log need from a database: the SQLite file of one process
/// (`Store`) or the PostgreSQL a fleet shares (`PostgresDatabase`). Both keep the same tables, made by
/// the same list of migrations (`SchemaHistory`).
protocol GatewayDatabase: AnyObject, Sendable {
    /// Whether other replicas read and write the same rows (keys can change under this replica).
    var isShared: Bool { get }
    /// `sqlite`, or the URL without its password: for logs, metrics and the console.
    var label: String { get }

    /// Names this replica in the audit rows it writes, once its listener is up.
    func setReplica(_ name: String)
    /// Drops the connections and opens new ones as needed: a write that never answered may hold one.
    func reconnect()

    func insertKey(_ record: KeyRecord) async throws
    func keys() async throws -> [KeyRecord]
    /// The key with this SHA-256, for a key another replica made a moment ago.
    func key(hash: String) async throws -> KeyRecord?
    func key(id: String) async throws -> KeyRecord?
    /// - Returns: the revoked key, or nil when no key has that id or prefix.
    func revokeKey(_ idOrPrefix: String, at time: Double) async throws -> KeyRecord?

    /// Writes rows; a row whose `entryId` is already stored is skipped, so a batch retried after a
    /// failure that came after its commit is never counted twice.
    func append(_ rows: ArraySlice<LedgerRow>) async throws
    /// Spend per tenant and key since `dayStart` and `monthStart`, for budgets to start from.
    func spend(since dayStart: Double, monthStart: Double) async throws -> [SpendLine]
    /// Requests, tokens and cost by tenant, route, provider and model since `since`.
    func usage(tenant: String?, since: Double) async throws -> [UsageLine]
    /// Rows older than `cutoff` (seconds since 1970, a day's start) folded into daily totals and removed.
    func rollUp(before cutoff: Double) async throws -> RollUp

    func audit(actor: String, action: String, target: String?, detail: String, ok: Bool) async throws
    func auditLog(limit: Int) async throws -> [AuditEntry]

    /// Keeps a Responses answer; never replaces one (an upstream's ids are not ours to trust unique).
    /// - Throws: `StoredResponse.IdTaken` when its id is kept already.
    func keep(_ response: StoredResponse) async throws
    /// The answer with this id, if `tenant` made it: another tenant's id is as good as unknown.
    func storedResponse(id: String, tenant: String) async throws -> StoredResponse?
    /// - Returns: whether `tenant` had such an answer.
    func deleteStoredResponse(id: String, tenant: String) async throws -> Bool
    /// Answers made before `cutoff` (seconds since 1970) removed.
    /// - Returns: how many.
    func forgetResponses(before cutoff: Double) async throws -> Int
}

/// One tenant's or key's spend and use, summed from the ledger.
struct SpendLine: Sendable, Equatable {
    var tenant: String?
    var key: String?
    var day: Double
    var month: Double
    var requests: Int
    var tokens: Int
}

/// What one retention pass did.
struct RollUp: Sendable, Equatable {
    /// Ledger rows folded into daily totals and removed.
    var rows: Int
    /// Daily total rows written or added to.
    var days: Int
}

/// One admin action: who did what, and how it ended.
struct AuditEntry: Codable, Sendable {
    var id: Int64?
    /// Seconds since 1970.
    var at: Double
    /// `uid:1000` for a socket peer, `signal:SIGHUP` for a signal.
    var actor: String
    var action: String
    var target: String?
    var detail: String
    var ok: Bool
    /// The replica that performed it (host name and port), for when a fleet's logs are read together.
    var replica: String?
}

/// Numbers read back from a database are untrusted: NULL, NaN and infinities read as zero.
enum StoredNumber {
    static func finite(_ value: Double?) -> Double {
        guard let value, value.isFinite else { return 0 }
        return value
    }
}
