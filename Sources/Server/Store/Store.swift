import CSQLiteSetup
import Engine
import Foundation
import GRDB
import Synchronization
import GRDBSQLite

/// The gateway's SQLite database (`STATE_DIR/switchyard.sqlite`, WAL mode). For one process it is the
/// `GatewayDatabase`: virtual keys (hashes only), the request ledger and the audit log. Always, also for
/// a replica whose database is PostgreSQL: the persistent cache tier and the journal of ledger rows
/// waiting for PostgreSQL. Never touched on a request's path: keys are loaded into memory, ledger rows
/// are written in batches by `LedgerWriter`.
final class Store: GatewayDatabase {
    let pool: DatabasePool

    /// This replica's name in audit rows, set once its listener is up.
    let replica = Mutex<String?>(nil)

    init(path: String) throws {
        _ = Self.sqliteSetUp
        Self.restrictToOwner(path)
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        self.pool = try DatabasePool(path: path, configuration: configuration)
        let unknown = try self.pool.read { db in try Self.migrator.appliedIdentifiers(db) }.subtracting(SchemaHistory.migrations)
        guard unknown.isEmpty else { throw SchemaHistory.TooNew(database: "SQLite database \(path)", unknown: unknown.sorted()) }
        try Self.migrator.migrate(self.pool)
    }

    var isShared: Bool { false }
    var label: String { "sqlite" }

    /// A file has no connections to drop.
    func reconnect() {}

    func setReplica(_ name: String) {
        self.replica.withLock { $0 = name }
    }

    /// Keys' hashes, tenants and the ledger are the owner's alone, whatever the state dir's mode: the
    /// database is created (or narrowed) to 0600 before SQLite opens it, and SQLite gives its `-wal`
    /// and `-shm` files the database's own mode.
    private static func restrictToOwner(_ path: String) {
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        if descriptor >= 0 { close(descriptor) }
        for file in [path, path + "-wal", path + "-shm"] { _ = chmod(file, 0o600) }
    }

    /// Process-wide SQLite settings, made once before the first database opens.
    private static let sqliteSetUp: Void = {
        _ = switchyard_sqlite_disable_memstatus()
    }()

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration(SchemaHistory.migrations[0]) { db in
            try db.create(table: "audit_log") { table in
                table.autoIncrementedPrimaryKey("id")
                table.column("at", .double).notNull()
                table.column("actor", .text).notNull()
                table.column("action", .text).notNull()
                table.column("target", .text)
                table.column("detail", .text).notNull()
                table.column("ok", .boolean).notNull()
            }
        }
        migrator.registerMigration(SchemaHistory.migrations[1]) { db in
            try db.create(table: "api_key") { table in
                table.primaryKey("id", .text)
                table.column("tenant", .text).notNull().indexed()
                table.column("name", .text).notNull()
                table.column("prefix", .text).notNull().indexed()
                table.column("hash", .text).notNull().unique()
                table.column("created_at", .double).notNull()
                table.column("expires_at", .double)
                table.column("revoked_at", .double)
                table.column("rpm", .integer)
                table.column("rpd", .integer)
                table.column("tpm", .integer)
                table.column("concurrency", .integer)
                table.column("budget_daily_usd", .double)
                table.column("budget_monthly_usd", .double)
                table.column("models", .text).notNull().defaults(to: "")
            }
            try db.create(table: "ledger") { table in
                table.autoIncrementedPrimaryKey("id")
                table.column("request_id", .text).notNull()
                table.column("at", .double).notNull().indexed()
                table.column("tenant", .text).indexed()
                table.column("key_id", .text)
                table.column("route", .text)
                table.column("provider", .text)
                table.column("model", .text)
                table.column("outcome", .text).notNull()
                table.column("status", .integer).notNull()
                table.column("input_tokens", .integer).notNull()
                table.column("cached_tokens", .integer).notNull()
                table.column("output_tokens", .integer).notNull()
                table.column("reasoning_tokens", .integer).notNull()
                table.column("cost_usd", .double).notNull()
                table.column("latency_ms", .double).notNull()
                table.column("ttft_ms", .double)
                table.column("cache", .text).notNull()
                table.column("attempts", .integer).notNull()
            }
        }
        migrator.registerMigration(SchemaHistory.migrations[2]) { db in
            try db.alter(table: "ledger") { table in
                table.add(column: "cost_saved_usd", .double).notNull().defaults(to: 0)
            }
        }
        migrator.registerMigration(SchemaHistory.migrations[3]) { db in
            try db.create(table: "cache_entry") { table in
                table.primaryKey("key", .text)
                table.column("scope", .text).notNull()
                table.column("route", .text).notNull()
                table.column("expires_at", .double).notNull().indexed()
                table.column("answer", .text).notNull()
            }
        }
        migrator.registerMigration(SchemaHistory.migrations[4]) { db in
            try db.alter(table: "ledger") { table in
                table.add(column: "operation", .text).notNull().defaults(to: "chat")
            }
        }
        migrator.registerMigration(SchemaHistory.migrations[5]) { db in
            try db.alter(table: "cache_entry") { table in
                table.add(column: "partition", .text)
                table.add(column: "vector", .blob)
            }
        }
        migrator.registerMigration(SchemaHistory.migrations[6]) { db in
            try db.alter(table: "audit_log") { table in
                table.add(column: "replica", .text)
            }
        }
        migrator.registerMigration(SchemaHistory.migrations[7]) { db in
            // Rows written before entry ids have none (NULL, which a unique index allows many of).
            try db.alter(table: "ledger") { table in table.add(column: "entry_id", .text) }
            try db.create(index: "ledger_entry_id", on: "ledger", columns: ["entry_id"], unique: true)
            try db.execute(sql: LedgerSQL.dailyTable(real: "REAL"))
        }
        migrator.registerMigration(SchemaHistory.migrations[8]) { db in
            // The columns the ledger had then: later ones come with their own migrations.
            let columns = LedgerSQL.columns.filter { !LedgerSQL.addedAfterTheJournal.contains($0) }
            try db.execute(sql: "CREATE TABLE ledger_journal (seq INTEGER PRIMARY KEY AUTOINCREMENT, " + columns.map { "\($0) \(LedgerSQL.sqliteType($0))" }.joined(separator: ", ") + ")")
        }
        migrator.registerMigration(SchemaHistory.migrations[9]) { db in
            try db.create(table: "stored_response") { table in
                table.primaryKey("id", .text)
                table.column("tenant", .text).notNull()
                table.column("key_id", .text)
                table.column("created_at", .double).notNull().indexed()
                table.column("provider", .text).notNull()
                table.column("upstream_model", .text).notNull()
                table.column("held_upstream", .boolean).notNull()
                table.column("input_items", .text).notNull()
                table.column("response", .text).notNull()
            }
        }
        migrator.registerMigration(SchemaHistory.migrations[10]) { db in
            try db.alter(table: "ledger") { table in table.add(column: "cache_refusal", .text) }
            try db.alter(table: "ledger_journal") { table in table.add(column: "cache_refusal", .text) }
        }
        return migrator
    }

    func audit(actor: String, action: String, target: String?, detail: String, ok: Bool) async throws {
        let entry = AuditEntry(
            id: nil, at: Date().timeIntervalSince1970, actor: actor, action: action, target: target, detail: detail, ok: ok, replica: self.replica.withLock { $0 }
        )
        try await self.pool.write { db in try entry.insert(db) }
    }

    func auditLog(limit: Int) async throws -> [AuditEntry] {
        try await self.pool.read { db in
            try AuditEntry.order(Column("id").desc).limit(limit).fetchAll(db)
        }
    }

    func keep(_ response: StoredResponse) async throws {
        try await self.pool.write { db in
            do {
                try response.insert(db)
            } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
                throw StoredResponse.IdTaken(id: response.id)
            }
        }
    }

    func storedResponse(id: String, tenant: String) async throws -> StoredResponse? {
        try await self.pool.read { db in
            try StoredResponse.filter(StoredResponse.Columns.id == id && StoredResponse.Columns.tenant == tenant).fetchOne(db)
        }
    }

    func deleteStoredResponse(id: String, tenant: String) async throws -> Bool {
        try await self.pool.write { db in
            try StoredResponse.filter(StoredResponse.Columns.id == id && StoredResponse.Columns.tenant == tenant).deleteAll(db) > 0
        }
    }

    func forgetResponses(before cutoff: Double) async throws -> Int {
        try await self.pool.write { db in try StoredResponse.filter(StoredResponse.Columns.createdAt < cutoff).deleteAll(db) }
    }
}

extension AuditEntry: FetchableRecord, PersistableRecord {
    static let databaseTableName = "audit_log"
}

/// A virtual key as stored: never the key itself, only its SHA-256 and a short prefix to recognise it.
struct KeyRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "api_key"
    var id: String
    var tenant: String
    var name: String
    var prefix: String
    var hash: String
    var createdAt: Double
    var expiresAt: Double?
    var revokedAt: Double?
    var rpm: Int?
    var rpd: Int?
    var tpm: Int?
    var concurrency: Int?
    var budgetDailyUsd: Double?
    var budgetMonthlyUsd: Double?
    /// Comma-separated globs over route aliases; empty = all.
    var models: String

    enum CodingKeys: String, CodingKey {
        case id, tenant, name, prefix, hash, rpm, rpd, tpm, concurrency, models
        case createdAt = "created_at", expiresAt = "expires_at", revokedAt = "revoked_at"
        case budgetDailyUsd = "budget_daily_usd", budgetMonthlyUsd = "budget_monthly_usd"
    }
}

/// One request, accounted for.
struct LedgerRow: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "ledger"
    /// Unique across the fleet (given by `LedgerWriter`): what makes writing a row twice harmless.
    /// Not the request id, which a client may choose and repeat.
    var entryId = ""
    var requestId: String
    var at: Double
    var tenant: String?
    var keyId: String?
    var route: String?
    var provider: String?
    var model: String?
    /// success, or the fault domain of the failure.
    var outcome: String
    var status: Int
    var inputTokens: Int
    var cachedTokens: Int
    var outputTokens: Int
    var reasoningTokens: Int
    var costUsd: Double
    var latencyMs: Double
    var ttftMs: Double?
    /// hit | semantic-hit | miss | bypass
    var cache: String
    var attempts: Int
    /// For cache hits: the upstream cost the cache saved.
    var costSavedUsd: Double = 0
    /// chat | embeddings | responses | cache-embedding (the semantic cache's own call, beside its request's row).
    var operation = "chat"
    /// Why a semantic hit was refused (`SemanticGuard.Refusal`): the request went upstream.
    var cacheRefusal: String?

    enum CodingKeys: String, CodingKey {
        case at, tenant, route, provider, model, outcome, status, cache, attempts
        case entryId = "entry_id", requestId = "request_id", keyId = "key_id", inputTokens = "input_tokens", cachedTokens = "cached_tokens"
        case outputTokens = "output_tokens", reasoningTokens = "reasoning_tokens", costUsd = "cost_usd"
        case latencyMs = "latency_ms", ttftMs = "ttft_ms", costSavedUsd = "cost_saved_usd", operation
        case cacheRefusal = "cache_refusal"
    }
}

extension Store {
    func insertKey(_ record: KeyRecord) async throws {
        try await self.pool.write { db in try record.insert(db) }
    }

    func keys() async throws -> [KeyRecord] {
        try await self.pool.read { db in try KeyRecord.order(Column("created_at")).fetchAll(db) }
    }

    func key(hash: String) async throws -> KeyRecord? {
        try await self.pool.read { db in try KeyRecord.filter(Column("hash") == hash).fetchOne(db) }
    }

    func key(id: String) async throws -> KeyRecord? {
        try await self.pool.read { db in try KeyRecord.filter(Column("id") == id).fetchOne(db) }
    }

    /// - Returns: the revoked key, or nil when no key has that id or prefix.
    func revokeKey(_ idOrPrefix: String, at time: Double) async throws -> KeyRecord? {
        try await self.pool.write { db in
            guard var record = try KeyRecord.filter(Column("id") == idOrPrefix || Column("prefix") == idOrPrefix).fetchOne(db) else { return nil }
            if record.revokedAt == nil {
                record.revokedAt = time
                try record.update(db)
            }
            return record
        }
    }

    func append(_ rows: ArraySlice<LedgerRow>) async throws {
        try await self.pool.write { db in try Self.insert(rows, into: "ledger", db) }
    }

    /// One transaction a batch, rows inserted `ledgerRowsPerInsert` at a time by one cached statement,
    /// their values bound straight to SQLite: GRDB's `StatementArguments` per row (an existential box
    /// per value) cost as much as SQLite's own insert, and one statement a row ran SQLite's per-statement
    /// work (cursors on the table and each index) for every row.
    private static func insert(_ rows: ArraySlice<LedgerRow>, into table: String, _ db: Database) throws {
        let many = try db.cachedStatement(sql: LedgerSQL.insert(into: table, rows: Self.ledgerRowsPerInsert, .sqlite))
        let one = try db.cachedStatement(sql: LedgerSQL.insert(into: table, rows: 1, .sqlite))
        var insert = RowInsert(many.sqliteStatement)
        var start = rows.startIndex
        while rows.endIndex - start >= Self.ledgerRowsPerInsert {
            for row in rows[start..<start + Self.ledgerRowsPerInsert] { row.write(to: &insert) }
            try insert.step(db)
            start += Self.ledgerRowsPerInsert
        }
        insert = RowInsert(one.sqliteStatement)
        for row in rows[start...] {
            row.write(to: &insert)
            try insert.step(db)
        }
    }

    static let ledgerRowsPerInsert = 50

    /// Binds rows' values in order, then runs the statement and readies it for the next rows.
    private struct RowInsert: LedgerValueSink {
        let statement: SQLiteStatement
        var index: Int32 = 1
        /// SQLite copies the bytes (`SQLITE_TRANSIENT`, a macro Swift does not import).
        static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

        init(_ statement: SQLiteStatement) {
            self.statement = statement
        }

        mutating func text(_ value: String?) {
            if var value {
                value.withUTF8 { bytes in _ = sqlite3_bind_text(self.statement, self.index, bytes.baseAddress, Int32(bytes.count), Self.transient) }
            } else {
                sqlite3_bind_null(self.statement, self.index)
            }
            self.index += 1
        }

        mutating func integer(_ value: Int) {
            sqlite3_bind_int64(self.statement, self.index, Int64(value))
            self.index += 1
        }

        mutating func double(_ value: Double?) {
            if let value {
                sqlite3_bind_double(self.statement, self.index, value)
            } else {
                sqlite3_bind_null(self.statement, self.index)
            }
            self.index += 1
        }

        mutating func step(_ db: Database) throws {
            let code = sqlite3_step(self.statement)
            sqlite3_reset(self.statement)
            self.index = 1
            guard code == SQLITE_DONE else {
                throw DatabaseError(resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(db.sqliteConnection)))
            }
        }
    }

    /// Stored rows are untrusted numbers too: sums are `TOTAL`s (floating point, which cannot overflow as
    /// SQLite's integer `SUM` does, refusing the start-up) and are bounded on the way out.
    func spend(since dayStart: Double, monthStart: Double) async throws -> [SpendLine] {
        try await self.pool.read { db in
            try Row.fetchAll(db, sql: LedgerSQL.spend(.sqlite, sum: "TOTAL"), arguments: [dayStart, monthStart]).map {
                SpendLine(
                    tenant: try $0.decode(forColumn: "tenant"), key: try $0.decode(forColumn: "key_id"), day: StoredNumber.finite(try $0.decode(forColumn: "day")),
                    month: StoredNumber.finite(try $0.decode(forColumn: "month")), requests: UntrustedNumber.count(StoredNumber.finite(try $0.decode(forColumn: "requests"))),
                    tokens: UntrustedNumber.count(StoredNumber.finite(try $0.decode(forColumn: "tokens")))
                )
            }
        }
    }

    func usage(tenant: String?, since: Double) async throws -> [UsageLine] {
        try await self.pool.read { db in
            var arguments: StatementArguments = [since, LedgerSQL.dayStart(since)]
            if let tenant { arguments += [tenant] }
            return try Row.fetchAll(db, sql: LedgerSQL.usage(.sqlite, sum: "TOTAL", tenant: tenant != nil), arguments: arguments).map {
                UsageLine(
                    tenant: try $0.decode(forColumn: "tenant"), route: try $0.decode(forColumn: "route"), provider: try $0.decode(forColumn: "provider"),
                    model: try $0.decode(forColumn: "model"), requests: UntrustedNumber.count(StoredNumber.finite(try $0.decode(forColumn: "requests"))),
                    failed: UntrustedNumber.count(StoredNumber.finite(try $0.decode(forColumn: "failed"))),
                    inputTokens: UntrustedNumber.count(StoredNumber.finite(try $0.decode(forColumn: "input_tokens"))),
                    outputTokens: UntrustedNumber.count(StoredNumber.finite(try $0.decode(forColumn: "output_tokens"))),
                    costUsd: StoredNumber.finite(try $0.decode(forColumn: "cost_usd"))
                )
            }
        }
    }

    func rollUp(before cutoff: Double) async throws -> RollUp {
        try await self.pool.write { db in
            try db.execute(sql: LedgerSQL.rollUp(.sqlite, floorOfDay: "CAST(at / 86400 AS INTEGER) * 86400.0", sum: "TOTAL"), arguments: [cutoff])
            let days = db.changesCount
            try db.execute(sql: "DELETE FROM ledger WHERE at < ?", arguments: [cutoff])
            return RollUp(rows: db.changesCount, days: days)
        }
    }

    // MARK: The journal (rows waiting for a shared database)

    func journal(_ rows: ArraySlice<LedgerRow>) async throws {
        try await self.pool.write { db in try Self.insert(rows, into: "ledger_journal", db) }
    }

    /// The oldest journalled rows, up to `limit`, with the sequence number of the last.
    func journalled(limit: Int) async throws -> (rows: [LedgerRow], through: Int64) {
        try await self.pool.read { db in
            let rows = try Row.fetchAll(db, sql: "SELECT * FROM ledger_journal ORDER BY seq LIMIT ?", arguments: [limit])
            let through: Int64 = try rows.last?.decode(forColumn: "seq") ?? 0
            return (try rows.map { try LedgerRow(row: $0) }, through)
        }
    }

    func forgetJournal(through sequence: Int64) async throws {
        try await self.pool.write { db in try db.execute(sql: "DELETE FROM ledger_journal WHERE seq <= ?", arguments: [sequence]) }
    }

    /// How many rows the journal holds, and the time of the oldest.
    func journalBacklog() async throws -> (rows: Int, oldest: Double?) {
        try await self.pool.read { db in
            let row = try Row.fetchOne(db, sql: "SELECT COUNT(*) AS rows, MIN(at) AS oldest FROM ledger_journal")
            return (try row?.decode(forColumn: "rows") ?? 0, try row?.decode(forColumn: "oldest"))
        }
    }

    /// A cached answer for the persistent tier, with its semantic partition and vector when it has them.
    struct CacheRow: Sendable {
        let key: String
        let scope: String
        let route: String
        let expiresAt: Double
        let answer: String
        let semantic: FiledVector?
    }

    func putCacheEntry(_ row: CacheRow) async throws {
        try await self.pool.write { db in
            try db.execute(
                sql: "INSERT OR REPLACE INTO cache_entry (key, scope, route, expires_at, answer, partition, vector) VALUES (?, ?, ?, ?, ?, ?, ?)",
                arguments: [row.key, row.scope, row.route, row.expiresAt, row.answer, row.semantic?.partition, row.semantic.map { Data(OpenAIEmbeddings.littleEndianBytes($0.vector)) }]
            )
        }
    }

    /// Unexpired entries, newest expiry first; expired ones are deleted on the way.
    func cacheEntries(now: Double) async throws -> [CacheRow] {
        try await self.pool.write { db in
            try db.execute(sql: "DELETE FROM cache_entry WHERE expires_at <= ?", arguments: [now])
            let sql = "SELECT key, scope, route, expires_at, answer, partition, vector FROM cache_entry ORDER BY expires_at DESC"
            // A row that does not decode is skipped (cached answers are disposable), never a trap:
            // GRDB's subscripts stop the process on a value of the wrong type.
            return try Row.fetchAll(db, sql: sql).compactMap { row in
                do {
                    var semantic: FiledVector?
                    if let partition: String = try row.decode(forColumn: "partition"), let data: Data = try row.decode(forColumn: "vector") {
                        semantic = (partition, OpenAIEmbeddings.vector(fromLittleEndian: [UInt8](data)))
                    }
                    return CacheRow(
                        key: try row.decode(forColumn: "key"), scope: try row.decode(forColumn: "scope"), route: try row.decode(forColumn: "route"),
                        expiresAt: try row.decode(forColumn: "expires_at"), answer: try row.decode(forColumn: "answer"), semantic: semantic
                    )
                } catch {
                    return nil
                }
            }
        }
    }

    func deleteCacheEntries(scope: String?, route: String?) async throws {
        try await self.pool.write { db in
            var sql = "DELETE FROM cache_entry WHERE 1 = 1"
            var arguments: StatementArguments = []
            if let scope {
                sql += " AND scope = ?"
                arguments += [scope]
            }
            if let route {
                sql += " AND route = ?"
                arguments += [route]
            }
            try db.execute(sql: sql, arguments: arguments)
        }
    }
}

/// One line of `switchyard usage`.
public struct UsageLine: Codable, Sendable, Equatable {
    public var tenant: String
    public var route: String
    public var provider: String
    public var model: String
    public var requests: Int
    public var failed: Int
    public var inputTokens: Int
    public var outputTokens: Int
    public var costUsd: Double
}
