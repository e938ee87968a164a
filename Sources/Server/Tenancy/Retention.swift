import Engine
import Foundation
import Logging

/// What the database keeps, and for how long. `database.retention_days`: ledger rows older than that
/// are folded into daily totals per tenant, key, route, provider and model, and removed, so a year of
/// traffic stays small and fast to query (in a fleet one replica does each pass). `responses.keep_days`:
/// kept Responses answers are removed. Each pass runs a minute after start, then hourly.
enum Retention {
    static let firstPass = Duration.seconds(60)
    static let every = Duration.seconds(3600)

    static func run(_ database: any GatewayDatabase, keepingDays days: Int, logger: Logger) async {
        await self.hourly(named: "the ledger's retention pass", logger: logger) {
            let done = try await database.rollUp(before: self.cutoff(now: Date().timeIntervalSince1970, keepingDays: days))
            if done.rows > 0 {
                logger.notice("ledger rows past retention rolled up into daily totals", metadata: ["gw.rows": "\(done.rows)", "gw.days": "\(done.days)"])
            }
        }
    }

    /// `responses.keep_days`: kept Responses answers older than that are removed (every replica may
    /// pass; a removal is the same whoever does it).
    static func forgetResponses(_ database: any GatewayDatabase, keepingDays days: Int, logger: Logger) async {
        await self.hourly(named: "the kept responses' retention pass", logger: logger) {
            let gone = try await database.forgetResponses(before: Date().timeIntervalSince1970 - Double(days) * 86_400)
            if gone > 0 { logger.info("kept responses past retention removed", metadata: ["gw.responses": "\(gone)"]) }
        }
    }

    /// `pass` a minute after start, then hourly, until cancelled; a failed pass is logged and tried again.
    private static func hourly(named name: String, logger: Logger, _ pass: () async throws -> Void) async {
        try? await Task.sleep(for: self.firstPass)
        while !Task.isCancelled {
            do {
                try await pass()
            } catch {
                logger.warning("\(name) failed; it runs again in an hour", metadata: ["gw.error": "\(String(reflecting: error))"])
            }
            try? await Task.sleep(for: self.every)
        }
    }

    /// The start of the UTC day `days` days before today's: whole days are rolled up, so a budget
    /// period (which starts at a day's start) holds a day's rows or its total, never half of each.
    static func cutoff(now: Double, keepingDays days: Int) -> Double {
        LedgerSQL.dayStart(now) - Double(min(max(days, 1), DatabaseSettings.longestRetentionDays)) * 86_400
    }
}
