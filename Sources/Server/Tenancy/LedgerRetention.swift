import Engine
import Foundation
import Logging

/// `database.retention_days`: ledger rows older than that are folded into daily totals per tenant,
/// key, route, provider and model, and removed, so a year of traffic stays small and fast to query.
/// A pass runs a minute after start, then hourly; in a fleet one replica does each pass.
enum LedgerRetention {
    static let firstPass = Duration.seconds(60)
    static let every = Duration.seconds(3600)

    static func run(_ database: any GatewayDatabase, keepingDays days: Int, logger: Logger) async {
        try? await Task.sleep(for: self.firstPass)
        while !Task.isCancelled {
            let cutoff = self.cutoff(now: Date().timeIntervalSince1970, keepingDays: days)
            do {
                let done = try await database.rollUp(before: cutoff)
                if done.rows > 0 {
                    logger.notice("ledger rows past retention rolled up into daily totals", metadata: ["gw.rows": "\(done.rows)", "gw.days": "\(done.days)"])
                }
            } catch {
                logger.warning("the ledger's retention pass failed; it runs again in an hour", metadata: ["gw.error": "\(String(reflecting: error))"])
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
