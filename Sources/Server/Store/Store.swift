import Foundation
import GRDB

/// The gateway's SQLite database (`STATE_DIR/switchyard.sqlite`, WAL mode): the audit log of admin
/// actions now; tenants, keys and the request ledger join it in later migrations.
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
    }

    init(path: String) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        self.pool = try DatabasePool(path: path, configuration: configuration)
        try Self.migrator.migrate(self.pool)
    }

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
        return migrator
    }

    func audit(actor: String, action: String, target: String?, detail: String, ok: Bool) async throws {
        let entry = AuditEntry(id: nil, at: Date().timeIntervalSince1970, actor: actor, action: action, target: target, detail: detail, ok: ok)
        try await self.pool.write { db in try entry.insert(db) }
    }

    func auditLog(limit: Int = 100) async throws -> [AuditEntry] {
        try await self.pool.read { db in
            try AuditEntry.order(Column("id").desc).limit(limit).fetchAll(db)
        }
    }
}
