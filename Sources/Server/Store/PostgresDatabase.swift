import Engine
import Foundation
import Logging
import NIOSSL
import PostgresNIO
import Synchronization

/// The database a fleet shares: every replica's keys, ledger and audit log in one PostgreSQL. Keys
/// made or revoked on one replica are announced on `switchyard_keys` (`NOTIFY`, sent when the change
/// commits), which every replica listens on (`listenForKeys`).
final class PostgresDatabase: GatewayDatabase {
    /// A pool and the task that runs it: replaced whole by `reconnect()`.
    private struct Connections {
        let client: PostgresClient
        let running: Task<Void, Never>

        /// Detached, so it is not stopped by the service group's graceful shutdown (which `run()`
        /// follows): the ledger's last rows are written after the listeners close.
        init(_ configuration: PostgresClient.Configuration, logger: Logger) {
            let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
            self.client = client
            self.running = Task.detached { await client.run() }
        }
    }

    private let connections: Mutex<Connections>
    private let configuration: PostgresClient.Configuration
    private let background: Logger
    private let logger: Logger
    private let replica = Mutex<String?>(nil)
    let settings: PostgresSettings

    /// The channel key changes are announced on; the payload is the key's id.
    static let keysChannel = "switchyard_keys"
    /// The advisory lock migrations run under, so replicas starting together migrate once
    /// (`hashtext('switchyard schema')` would do as well; a constant is easier to find in `pg_locks`).
    static let migrationLock: Int64 = 0x5357_5943_4844_0001
    /// Rows per INSERT statement: 500 × 21 values stays far below PostgreSQL's 65,535 parameters.
    static let rowsPerInsert = 500

    /// Connects (lazily: the pool opens connections when asked) and migrates the schema.
    /// - Throws: when PostgreSQL cannot be reached, the schema is newer than this build, or a migration fails.
    init(settings: PostgresSettings, logger: Logger) async throws {
        self.settings = settings
        self.logger = logger
        // The pool logs each failed connection attempt (many a second while PostgreSQL is away) at
        // info: the ledger writer and the key listener say once what an outage means.
        var background = logger
        background.logLevel = max(logger.logLevel, .warning)
        self.background = background
        self.configuration = try Self.configuration(settings)
        self.connections = Mutex(Connections(self.configuration, logger: background))
        do {
            try await self.migrate()
        } catch {
            self.connections.withLock { $0.running.cancel() }
            throw error
        }
    }

    deinit {
        self.connections.withLock { $0.running.cancel() }
    }

    private var client: PostgresClient { self.connections.withLock { $0.client } }

    func reconnect() {
        let old = self.connections.withLock { connections in
            defer { connections = Connections(self.configuration, logger: self.background) }
            return connections
        }
        old.running.cancel()
        self.logger.notice("the shared database's connections were replaced after a write got no answer")
    }

    /// For a command-line tool: the pool's own logging stays quiet, failures reach the caller.
    static func forCommandLine(_ settings: PostgresSettings) async throws -> PostgresDatabase {
        try await PostgresDatabase(settings: settings, logger: Logger(label: "switchyard.cli", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    var isShared: Bool { true }
    var label: String { self.settings.redacted }

    func setReplica(_ name: String) {
        self.replica.withLock { $0 = name }
    }

    static func configuration(_ settings: PostgresSettings) throws -> PostgresClient.Configuration {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let roots = settings.rootCertificate { tls.trustRoots = .file(roots) }
        let mode: PostgresClient.Configuration.TLS
        switch settings.tlsMode {
        case .disable: mode = .disable
        case .prefer:
            tls.certificateVerification = .none
            mode = .prefer(tls)
        case .require:
            tls.certificateVerification = .none
            mode = .require(tls)
        case .verifyCA:
            tls.certificateVerification = .noHostnameVerification
            mode = .require(tls)
        case .verifyFull: mode = .require(tls)
        }
        var configuration = PostgresClient.Configuration(
            host: settings.host, port: settings.port, username: settings.user, password: settings.password?.exposedValue, database: settings.database, tls: mode
        )
        configuration.options.connectTimeout = .seconds(5)
        configuration.options.maximumConnections = 8
        configuration.options.additionalStartupParameters = [("application_name", "switchyard")]
        return configuration
    }

    // MARK: Schema

    /// Applies the migrations this database lacks, under an advisory lock: a replica that waited for
    /// the lock finds them applied and does nothing.
    private func migrate() async throws {
        try await self.client.withConnection { connection in
            try await connection.query("SELECT pg_advisory_lock(\(Self.migrationLock))", logger: self.logger)
            do {
                try await connection.query(
                    "CREATE TABLE IF NOT EXISTS switchyard_schema (name TEXT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL, replica TEXT)",
                    logger: self.logger
                )
                var applied = Set<String>()
                for try await name in try await connection.query("SELECT name FROM switchyard_schema", logger: self.logger).decode(String.self) {
                    applied.insert(name)
                }
                let unknown = applied.subtracting(SchemaHistory.migrations)
                guard unknown.isEmpty else { throw SchemaHistory.TooNew(database: "PostgreSQL database \(self.settings.redacted)", unknown: unknown.sorted()) }
                for name in SchemaHistory.migrations where !applied.contains(name) {
                    try await connection.withTransaction(logger: self.logger) { transaction in
                        for statement in PostgresSchema.statements(for: name) {
                            try await transaction.query(PostgresQuery(unsafeSQL: statement), logger: self.logger)
                        }
                        let host = ProcessInfo.processInfo.hostName
                        try await transaction.query(
                            "INSERT INTO switchyard_schema (name, applied_at, replica) VALUES (\(name), \(Date().timeIntervalSince1970), \(host))", logger: self.logger
                        )
                    }
                    self.logger.notice("database migrated", metadata: ["gw.migration": "\(name)"])
                }
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(\(Self.migrationLock))", logger: self.logger)
                throw error
            }
            try await connection.query("SELECT pg_advisory_unlock(\(Self.migrationLock))", logger: self.logger)
        }
    }

    // MARK: Keys

    private static let keyColumns = """
        id, tenant, name, prefix, hash, created_at, expires_at, revoked_at, rpm, rpd, tpm, concurrency, budget_daily_usd, budget_monthly_usd, models
        """

    private func records(_ rows: PostgresRowSequence) async throws -> [KeyRecord] {
        var records: [KeyRecord] = []
        typealias Columns = (String, String, String, String, String, Double, Double?, Double?, Int?, Int?, Int?, Int?, Double?, Double?, String)
        for try await row in rows.decode(Columns.self) {
            records.append(KeyRecord(
                id: row.0, tenant: row.1, name: row.2, prefix: row.3, hash: row.4, createdAt: row.5, expiresAt: row.6, revokedAt: row.7,
                rpm: row.8, rpd: row.9, tpm: row.10, concurrency: row.11, budgetDailyUsd: row.12, budgetMonthlyUsd: row.13, models: row.14
            ))
        }
        return records
    }

    func insertKey(_ record: KeyRecord) async throws {
        try await self.client.withTransaction(logger: self.logger) { connection in
            try await connection.query(
                """
                INSERT INTO api_key (\(unescaped: Self.keyColumns)) VALUES (\(record.id), \(record.tenant), \(record.name), \(record.prefix),
                  \(record.hash), \(record.createdAt), \(record.expiresAt), \(record.revokedAt), \(record.rpm), \(record.rpd), \(record.tpm),
                  \(record.concurrency), \(record.budgetDailyUsd), \(record.budgetMonthlyUsd), \(record.models))
                """,
                logger: self.logger
            )
            try await connection.query("SELECT pg_notify(\(Self.keysChannel), \(record.id))", logger: self.logger)
        }
    }

    func keys() async throws -> [KeyRecord] {
        try await self.records(try await self.client.query("SELECT \(unescaped: Self.keyColumns) FROM api_key ORDER BY created_at", logger: self.logger))
    }

    func key(hash: String) async throws -> KeyRecord? {
        try await self.records(try await self.client.query("SELECT \(unescaped: Self.keyColumns) FROM api_key WHERE hash = \(hash)", logger: self.logger)).first
    }

    func key(id: String) async throws -> KeyRecord? {
        try await self.records(try await self.client.query("SELECT \(unescaped: Self.keyColumns) FROM api_key WHERE id = \(id)", logger: self.logger)).first
    }

    func revokeKey(_ idOrPrefix: String, at time: Double) async throws -> KeyRecord? {
        try await self.client.withTransaction(logger: self.logger) { connection in
            let found = try await self.records(try await connection.query(
                "SELECT \(unescaped: Self.keyColumns) FROM api_key WHERE id = \(idOrPrefix) OR prefix = \(idOrPrefix) LIMIT 1 FOR UPDATE", logger: self.logger
            ))
            guard var record = found.first else { return nil }
            if record.revokedAt == nil {
                record.revokedAt = time
                try await connection.query("UPDATE api_key SET revoked_at = \(time) WHERE id = \(record.id)", logger: self.logger)
                try await connection.query("SELECT pg_notify(\(Self.keysChannel), \(record.id))", logger: self.logger)
            }
            return record
        }
    }

    /// Calls `changed` with each key made or revoked anywhere in the fleet, and `resubscribed` each time
    /// listening starts (again): notifications sent while this replica was not listening are lost, so
    /// the caller reloads every key then. Retries every second until cancelled.
    func listenForKeys(changed: @escaping @Sendable (KeyRecord) -> Void, resubscribed: @escaping @Sendable () async -> Void) async {
        while !Task.isCancelled {
            do {
                try await self.client.withConnection { connection in
                    try await connection.listen(on: Self.keysChannel) { notifications in
                        await resubscribed()
                        for try await notification in notifications {
                            if let record = try await self.key(id: notification.payload) { changed(record) }
                        }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                self.logger.warning("not listening for key changes; retrying in 1 s", metadata: ["gw.error": "\(String(reflecting: error))"])
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    // MARK: Ledger

    func append(_ rows: ArraySlice<LedgerRow>) async throws {
        guard !rows.isEmpty else { return }
        try await self.client.withTransaction(logger: self.logger) { connection in
            var start = rows.startIndex
            while start < rows.endIndex {
                let end = min(start + Self.rowsPerInsert, rows.endIndex)
                var bindings = RowBindings(PostgresBindings(capacity: (end - start) * LedgerSQL.columns.count))
                for row in rows[start..<end] { row.write(to: &bindings) }
                try await connection.query(
                    PostgresQuery(unsafeSQL: LedgerSQL.insert(into: "ledger", rows: end - start, .postgres), binds: bindings.bindings), logger: self.logger
                )
                start = end
            }
        }
    }

    private struct RowBindings: LedgerValueSink {
        var bindings: PostgresBindings

        init(_ bindings: PostgresBindings) {
            self.bindings = bindings
        }

        mutating func text(_ value: String?) {
            self.bindings.append(value)
        }

        mutating func integer(_ value: Int) {
            self.bindings.append(Int64(value))
        }

        mutating func double(_ value: Double?) {
            self.bindings.append(value)
        }
    }

    func spend(since dayStart: Double, monthStart: Double) async throws -> [SpendLine] {
        let rows = try await self.client.query(
            PostgresQuery(unsafeSQL: LedgerSQL.spend(.postgres, sum: "SUM"), binds: Self.bindings([dayStart, monthStart])), logger: self.logger
        )
        var lines: [SpendLine] = []
        for try await (tenant, key, day, month, requests, tokens) in rows.decode((String?, String?, Double?, Double?, Double?, Double?).self) {
            lines.append(SpendLine(
                tenant: tenant, key: key, day: StoredNumber.finite(day), month: StoredNumber.finite(month),
                requests: UntrustedNumber.count(StoredNumber.finite(requests)), tokens: UntrustedNumber.count(StoredNumber.finite(tokens))
            ))
        }
        return lines
    }

    func usage(tenant: String?, since: Double) async throws -> [UsageLine] {
        var binds = Self.bindings([since, LedgerSQL.dayStart(since)])
        if let tenant { binds.append(tenant) }
        let rows = try await self.client.query(
            PostgresQuery(unsafeSQL: LedgerSQL.usage(.postgres, sum: "SUM", tenant: tenant != nil), binds: binds), logger: self.logger
        )
        var lines: [UsageLine] = []
        typealias Columns = (String, String, String, String, Double?, Double?, Double?, Double?, Double?)
        for try await row in rows.decode(Columns.self) {
            lines.append(UsageLine(
                tenant: row.0, route: row.1, provider: row.2, model: row.3, requests: UntrustedNumber.count(StoredNumber.finite(row.4)),
                failed: UntrustedNumber.count(StoredNumber.finite(row.5)), inputTokens: UntrustedNumber.count(StoredNumber.finite(row.6)),
                outputTokens: UntrustedNumber.count(StoredNumber.finite(row.7)), costUsd: StoredNumber.finite(row.8)
            ))
        }
        return lines
    }

    /// One replica at a time (a transaction-scoped advisory lock; the others skip this pass). Counts
    /// come back as one row each, not a row per folded or removed row.
    func rollUp(before cutoff: Double) async throws -> RollUp {
        try await self.client.withTransaction(logger: self.logger) { connection in
            var turn = false
            for try await locked in try await connection.query("SELECT pg_try_advisory_xact_lock(\(Self.migrationLock + 1))", logger: self.logger).decode(Bool.self) {
                turn = locked
            }
            guard turn else { return RollUp(rows: 0, days: 0) }
            let fold = "WITH folded AS (\(LedgerSQL.rollUp(.postgres, floorOfDay: "floor(at / 86400) * 86400", sum: "SUM")) RETURNING 1) SELECT COUNT(*) FROM folded"
            let days = try await self.count(connection.query(PostgresQuery(unsafeSQL: fold, binds: Self.bindings([cutoff])), logger: self.logger))
            let rows = try await self.count(connection.query(
                "WITH removed AS (DELETE FROM ledger WHERE at < \(cutoff) RETURNING 1) SELECT COUNT(*) FROM removed", logger: self.logger
            ))
            return RollUp(rows: rows, days: days)
        }
    }

    private func count(_ rows: PostgresRowSequence) async throws -> Int {
        var count = 0
        for try await value in rows.decode(Int.self) { count = value }
        return count
    }

    private static func bindings(_ values: [Double]) -> PostgresBindings {
        var bindings = PostgresBindings(capacity: values.count + 1)
        for value in values { bindings.append(value) }
        return bindings
    }

    // MARK: Audit

    func audit(actor: String, action: String, target: String?, detail: String, ok: Bool) async throws {
        let replica = self.replica.withLock { $0 }
        try await self.client.query(
            """
            INSERT INTO audit_log (at, actor, action, target, detail, ok, replica)
            VALUES (\(Date().timeIntervalSince1970), \(actor), \(action), \(target), \(detail), \(ok), \(replica))
            """,
            logger: self.logger
        )
    }

    func keep(_ response: StoredResponse) async throws {
        let rows = try await self.client.query(
            """
            INSERT INTO stored_response (\(unescaped: StoredResponse.columnList))
            VALUES (\(response.id), \(response.tenant), \(response.keyId), \(response.createdAt), \(response.provider), \(response.upstreamModel),
              \(response.heldUpstream), \(response.inputItems), \(response.response))
            ON CONFLICT (id) DO NOTHING RETURNING id
            """,
            logger: self.logger
        )
        for try await _ in rows { return }
        throw StoredResponse.IdTaken(id: response.id)
    }

    func storedResponse(id: String, tenant: String) async throws -> StoredResponse? {
        let rows = try await self.client.query(
            "SELECT \(unescaped: StoredResponse.columnList) FROM stored_response WHERE id = \(id) AND tenant = \(tenant)", logger: self.logger
        )
        for try await row in rows.decode((String, String, String?, Double, String, String, Bool, String, String).self) {
            return StoredResponse(
                id: row.0, tenant: row.1, keyId: row.2, createdAt: StoredNumber.finite(row.3), provider: row.4, upstreamModel: row.5, heldUpstream: row.6,
                inputItems: row.7, response: row.8
            )
        }
        return nil
    }

    func deleteStoredResponse(id: String, tenant: String) async throws -> Bool {
        let rows = try await self.client.query("DELETE FROM stored_response WHERE id = \(id) AND tenant = \(tenant) RETURNING id", logger: self.logger)
        for try await _ in rows { return true }
        return false
    }

    func forgetResponses(before cutoff: Double) async throws -> Int {
        let rows = try await self.client.query(
            "WITH gone AS (DELETE FROM stored_response WHERE created_at < \(cutoff) RETURNING 1) SELECT COUNT(*) FROM gone", logger: self.logger
        )
        for try await count in rows.decode(Int64.self) { return Int(clamping: count) }
        return 0
    }

    func auditLog(limit: Int) async throws -> [AuditEntry] {
        let rows = try await self.client.query(
            "SELECT id, at, actor, action, target, detail, ok, replica FROM audit_log ORDER BY id DESC LIMIT \(Int64(limit))", logger: self.logger
        )
        var entries: [AuditEntry] = []
        for try await row in rows.decode((Int64, Double, String, String, String?, String, Bool, String?).self) {
            entries.append(AuditEntry(id: row.0, at: row.1, actor: row.2, action: row.3, target: row.4, detail: row.5, ok: row.6, replica: row.7))
        }
        return entries
    }
}

/// The gateway cannot start: its shared database does not answer, or refuses its schema.
struct DatabaseUnavailable: Error, CustomStringConvertible {
    let database: String
    let error: any Error
    var description: String { "the database \(self.database) cannot be used: \(String(reflecting: self.error))" }
}
