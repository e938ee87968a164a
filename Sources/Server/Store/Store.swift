import CSQLiteSetup
import Engine
import Foundation
import GRDB
import Synchronization
import GRDBSQLite

/// The gateway's SQLite database (`STATE_DIR/switchyard.sqlite`, WAL mode): virtual keys (hashes
/// only), the request ledger and the audit log of admin actions. Never touched on a request's path:
/// keys are loaded into memory, ledger rows are written in batches by `LedgerWriter`.
final class Store: Sendable {
    let pool: DatabasePool

    /// One admin action: who did what, and how it ended.
    struct AuditEntry: Codable, Sendable, FetchableRecord, PersistableRecord {
        static let databaseTableName = "audit_log"
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

    /// This replica's name in audit rows, set once its listener is up.
    let replica = Mutex<String?>(nil)

    init(path: String) throws {
        _ = Self.sqliteSetUp
        Self.restrictToOwner(path)
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        self.pool = try DatabasePool(path: path, configuration: configuration)
        try Self.migrator.migrate(self.pool)
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
        migrator.registerMigration("v1: audit log") { db in
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
        migrator.registerMigration("v2: keys and ledger") { db in
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
        migrator.registerMigration("v3: cost saved by the cache") { db in
            try db.alter(table: "ledger") { table in
                table.add(column: "cost_saved_usd", .double).notNull().defaults(to: 0)
            }
        }
        migrator.registerMigration("v4: persistent cache") { db in
            try db.create(table: "cache_entry") { table in
                table.primaryKey("key", .text)
                table.column("scope", .text).notNull()
                table.column("route", .text).notNull()
                table.column("expires_at", .double).notNull().indexed()
                table.column("answer", .text).notNull()
            }
        }
        migrator.registerMigration("v5: ledger operation") { db in
            try db.alter(table: "ledger") { table in
                table.add(column: "operation", .text).notNull().defaults(to: "chat")
            }
        }
        migrator.registerMigration("v6: semantic vectors of cached answers") { db in
            try db.alter(table: "cache_entry") { table in
                table.add(column: "partition", .text)
                table.add(column: "vector", .blob)
            }
        }
        migrator.registerMigration("v7: the replica of an audit row") { db in
            try db.alter(table: "audit_log") { table in
                table.add(column: "replica", .text)
            }
        }
        return migrator
    }

    func audit(actor: String, action: String, target: String?, detail: String, ok: Bool) async throws {
        let entry = AuditEntry(
            id: nil, at: Date().timeIntervalSince1970, actor: actor, action: action, target: target, detail: detail, ok: ok, replica: self.replica.withLock { $0 }
        )
        try await self.pool.write { db in try entry.insert(db) }
    }

    func auditLog(limit: Int = 100) async throws -> [AuditEntry] {
        try await self.pool.read { db in
            try AuditEntry.order(Column("id").desc).limit(limit).fetchAll(db)
        }
    }
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
    /// chat | embeddings | cache-embedding (the semantic cache's own call, beside its request's row).
    var operation = "chat"

    enum CodingKeys: String, CodingKey {
        case at, tenant, route, provider, model, outcome, status, cache, attempts
        case requestId = "request_id", keyId = "key_id", inputTokens = "input_tokens", cachedTokens = "cached_tokens"
        case outputTokens = "output_tokens", reasoningTokens = "reasoning_tokens", costUsd = "cost_usd"
        case latencyMs = "latency_ms", ttftMs = "ttft_ms", costSavedUsd = "cost_saved_usd", operation
    }
}

extension Store {
    func insertKey(_ record: KeyRecord) async throws {
        try await self.pool.write { db in try record.insert(db) }
    }

    func keys() async throws -> [KeyRecord] {
        try await self.pool.read { db in try KeyRecord.order(Column("created_at")).fetchAll(db) }
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

    /// One transaction a batch, rows inserted `ledgerRowsPerInsert` at a time by one cached statement,
    /// their values bound straight to SQLite: GRDB's `StatementArguments` per row (an existential box
    /// per value) cost as much as SQLite's own insert, and one statement a row ran SQLite's per-statement
    /// work (cursors on the table and each index) for every row.
    func append(_ rows: ArraySlice<LedgerRow>) async throws {
        try await self.pool.write { db in
            let many = try db.cachedStatement(sql: Self.ledgerInsert(rows: Self.ledgerRowsPerInsert))
            let one = try db.cachedStatement(sql: Self.ledgerInsert(rows: 1))
            var insert = RowInsert(many.sqliteStatement)
            var start = rows.startIndex
            while rows.endIndex - start >= Self.ledgerRowsPerInsert {
                for row in rows[start..<start + Self.ledgerRowsPerInsert] { insert.bind(row) }
                try insert.step(db)
                start += Self.ledgerRowsPerInsert
            }
            insert = RowInsert(one.sqliteStatement)
            for row in rows[start...] {
                insert.bind(row)
                try insert.step(db)
            }
        }
    }

    static let ledgerRowsPerInsert = 50

    private static func ledgerInsert(rows: Int) -> String {
        let values = "(" + Array(repeating: "?", count: 20).joined(separator: ", ") + ")"
        return """
            INSERT INTO ledger (request_id, at, tenant, key_id, route, provider, model, outcome, status, input_tokens,
              cached_tokens, output_tokens, reasoning_tokens, cost_usd, latency_ms, ttft_ms, cache, attempts, cost_saved_usd, operation)
            VALUES \(Array(repeating: values, count: rows).joined(separator: ", "))
            """
    }

    /// Binds rows' values in order, then runs the statement and readies it for the next rows.
    private struct RowInsert {
        let statement: SQLiteStatement
        var index: Int32 = 1
        /// SQLite copies the bytes (`SQLITE_TRANSIENT`, a macro Swift does not import).
        static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

        init(_ statement: SQLiteStatement) {
            self.statement = statement
        }

        private mutating func text(_ value: String?) {
            if var value {
                value.withUTF8 { bytes in _ = sqlite3_bind_text(self.statement, self.index, bytes.baseAddress, Int32(bytes.count), Self.transient) }
            } else {
                sqlite3_bind_null(self.statement, self.index)
            }
            self.index += 1
        }

        private mutating func integer(_ value: Int) {
            sqlite3_bind_int64(self.statement, self.index, Int64(value))
            self.index += 1
        }

        private mutating func double(_ value: Double?) {
            if let value {
                sqlite3_bind_double(self.statement, self.index, value)
            } else {
                sqlite3_bind_null(self.statement, self.index)
            }
            self.index += 1
        }

        /// Binds the row's 20 values, in the order of `ledgerInsert`'s columns.
        mutating func bind(_ row: LedgerRow) {
            self.text(row.requestId)
            self.double(row.at)
            self.text(row.tenant)
            self.text(row.keyId)
            self.text(row.route)
            self.text(row.provider)
            self.text(row.model)
            self.text(row.outcome)
            self.integer(row.status)
            self.integer(row.inputTokens)
            self.integer(row.cachedTokens)
            self.integer(row.outputTokens)
            self.integer(row.reasoningTokens)
            self.double(row.costUsd)
            self.double(row.latencyMs)
            self.double(row.ttftMs)
            self.text(row.cache)
            self.integer(row.attempts)
            self.double(row.costSavedUsd)
            self.text(row.operation)
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

    /// Spend per tenant and key since `dayStart` and `monthStart` (seconds since 1970), for the
    /// budgets to start from after a restart. The semantic cache's embedding calls are not counted,
    /// as they are not while running. Stored rows are untrusted numbers too: sums are `TOTAL`s
    /// (floating point, which cannot overflow as SQLite's integer `SUM` does, refusing the start-up)
    /// and are bounded on the way out.
    func spend(since dayStart: Double, monthStart: Double) async throws -> [(tenant: String?, key: String?, day: Double, month: Double, requests: Int, tokens: Int)] {
        try await self.pool.read { db in
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT tenant, key_id,
                      TOTAL(CASE WHEN at >= ? THEN cost_usd ELSE 0 END) AS day,
                      TOTAL(cost_usd) AS month,
                      TOTAL(CASE WHEN at >= ? THEN 1 ELSE 0 END) AS requests,
                      TOTAL(CASE WHEN at >= ? THEN input_tokens ELSE 0 END) + TOTAL(CASE WHEN at >= ? THEN output_tokens ELSE 0 END) AS tokens
                    FROM ledger WHERE at >= ? AND operation != 'cache-embedding' GROUP BY tenant, key_id
                    """,
                arguments: [dayStart, dayStart, dayStart, dayStart, monthStart]
            )
            return try rows.map {
                (try $0.decode(forColumn: "tenant"), try $0.decode(forColumn: "key_id"), Self.finite(try $0.decode(forColumn: "day")),
                 Self.finite(try $0.decode(forColumn: "month")), UntrustedNumber.count(Self.finite(try $0.decode(forColumn: "requests"))),
                 UntrustedNumber.count(Self.finite(try $0.decode(forColumn: "tokens"))))
            }
        }
    }

    /// Requests, tokens and cost by model and provider since `since`, for `switchyard usage`.
    func usage(tenant: String?, since: Double) async throws -> [UsageLine] {
        try await self.pool.read { db in
            var sql = """
                SELECT COALESCE(tenant, '(anonymous)') AS tenant, COALESCE(route, '-') AS route, COALESCE(provider, '-') AS provider,
                  COALESCE(model, '-') AS model, COUNT(*) AS requests, SUM(CASE WHEN outcome = 'success' THEN 0 ELSE 1 END) AS failed,
                  TOTAL(input_tokens) AS input_tokens, TOTAL(output_tokens) AS output_tokens, TOTAL(cost_usd) AS cost_usd
                FROM ledger WHERE at >= ?
                """
            var arguments: StatementArguments = [since]
            if let tenant {
                sql += " AND tenant = ?"
                arguments += [tenant]
            }
            sql += " GROUP BY 1, 2, 3, 4 ORDER BY cost_usd DESC, requests DESC"
            return try Row.fetchAll(db, sql: sql, arguments: arguments).map {
                UsageLine(
                    tenant: try $0.decode(forColumn: "tenant"), route: try $0.decode(forColumn: "route"), provider: try $0.decode(forColumn: "provider"),
                    model: try $0.decode(forColumn: "model"), requests: try $0.decode(forColumn: "requests"), failed: try $0.decode(forColumn: "failed"),
                    inputTokens: UntrustedNumber.count(Self.finite(try $0.decode(forColumn: "input_tokens"))),
                    outputTokens: UntrustedNumber.count(Self.finite(try $0.decode(forColumn: "output_tokens"))),
                    costUsd: Self.finite(try $0.decode(forColumn: "cost_usd"))
                )
            }
        }
    }

    /// A stored real as a finite number: NULL, NaN and infinities read as zero.
    private static func finite(_ value: Double?) -> Double {
        guard let value, value.isFinite else { return 0 }
        return value
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
