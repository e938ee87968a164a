/// The ledger's SQL, written once for both databases: they differ only in how a statement numbers its
/// parameters (`?1` in SQLite, `$1` in PostgreSQL), in the name of a double's type and of a sum that
/// cannot overflow (`TOTAL`, and `SUM` over doubles).
enum LedgerSQL {
    /// The columns a row is written with, in the order `LedgerRow.write(to:)` gives their values.
    static let columns = [
        "entry_id", "request_id", "at", "tenant", "key_id", "route", "provider", "model", "outcome", "status", "input_tokens",
        "cached_tokens", "output_tokens", "reasoning_tokens", "cost_usd", "latency_ms", "ttft_ms", "cache", "attempts", "cost_saved_usd", "operation",
        "cache_refusal",
    ]

    /// Columns added after the journal was made (v9), which their own migrations add to it.
    static let addedAfterTheJournal: Set<String> = ["cache_refusal"]

    enum Placeholders {
        case sqlite
        case postgres

        func text(_ index: Int) -> String {
            switch self {
            case .sqlite: "?\(index)"
            case .postgres: "$\(index)"
            }
        }
    }

    /// `rows` rows in one statement; a row whose entry id is stored already is skipped.
    static func insert(into table: String, rows: Int, _ placeholders: Placeholders) -> String {
        var values: [String] = []
        values.reserveCapacity(rows)
        for row in 0..<rows {
            let first = row * self.columns.count
            values.append("(" + (1...self.columns.count).map { placeholders.text(first + $0) }.joined(separator: ", ") + ")")
        }
        let conflict = table == "ledger" ? " ON CONFLICT (entry_id) DO NOTHING" : ""
        return "INSERT INTO \(table) (\(self.columns.joined(separator: ", "))) VALUES \(values.joined(separator: ", "))\(conflict)"
    }

    /// A column's type in the journal, which SQLite alone keeps.
    static func sqliteType(_ column: String) -> String {
        switch column {
        case "at", "cost_usd", "latency_ms", "ttft_ms", "cost_saved_usd": "REAL"
        case "status", "input_tokens", "cached_tokens", "output_tokens", "reasoning_tokens", "attempts": "INTEGER NOT NULL"
        case "entry_id", "request_id", "outcome", "cache", "operation": "TEXT NOT NULL"
        default: "TEXT"
        }
    }

    /// Daily totals per tenant, key, route, provider, model and operation, for rows past retention.
    /// Names are '' rather than NULL (a key column); sums are doubles, which cannot overflow.
    static func dailyTable(real: String) -> String {
        let sums = self.sums.map { "\($0.column) \(real) NOT NULL" }.joined(separator: ", ")
        return """
            CREATE TABLE ledger_daily (day \(real) NOT NULL, tenant TEXT NOT NULL, key_id TEXT NOT NULL, route TEXT NOT NULL,
              provider TEXT NOT NULL, model TEXT NOT NULL, operation TEXT NOT NULL, \(sums),
              PRIMARY KEY (day, tenant, key_id, route, provider, model, operation))
            """
    }

    /// What a day's total keeps, and how it is summed from ledger rows.
    static let sums: [(column: String, of: String)] = [
        ("requests", "1"), ("failed", "CASE WHEN outcome = 'success' THEN 0 ELSE 1 END"), ("input_tokens", "input_tokens"),
        ("cached_tokens", "cached_tokens"), ("output_tokens", "output_tokens"), ("reasoning_tokens", "reasoning_tokens"),
        ("cost_usd", "cost_usd"), ("cost_saved_usd", "cost_saved_usd"),
    ]

    /// Folds the rows before the cut-off (parameter 1) into the daily totals, adding to a day already
    /// there (rows that arrive late, from a journal, for a day already rolled up).
    static func rollUp(_ placeholders: Placeholders, floorOfDay: String, sum: String) -> String {
        let names = ["tenant", "key_id", "route", "provider", "model", "operation"]
        return """
            INSERT INTO ledger_daily (day, \(names.joined(separator: ", ")), \(self.sums.map(\.column).joined(separator: ", ")))
            SELECT \(floorOfDay), \(names.map { "COALESCE(\($0), '')" }.joined(separator: ", ")), \(self.sums.map { "\(sum)(\($0.of))" }.joined(separator: ", "))
            FROM ledger WHERE at < \(placeholders.text(1)) GROUP BY 1, 2, 3, 4, 5, 6, 7
            ON CONFLICT (day, \(names.joined(separator: ", "))) DO UPDATE SET
            \(self.sums.map { "\($0.column) = ledger_daily.\($0.column) + excluded.\($0.column)" }.joined(separator: ", "))
            """
    }

    /// Spend per tenant and key since the day's start (parameter 1) and the month's (parameter 2), from
    /// ledger rows and from the daily totals of rolled-up days (budget periods start at a UTC day's
    /// start, so a day's total is in a period whole or not at all). The semantic cache's embedding
    /// calls are not counted, as they are not while running.
    static func spend(_ p: Placeholders, sum: String) -> String {
        """
        SELECT tenant, key_id, \(sum)(day_cost) AS day, \(sum)(month_cost) AS month, \(sum)(day_requests) AS requests, \(sum)(day_tokens) AS tokens FROM (
          SELECT tenant, key_id,
            CASE WHEN at >= \(p.text(1)) THEN cost_usd ELSE 0 END AS day_cost, cost_usd AS month_cost,
            CASE WHEN at >= \(p.text(1)) THEN 1 ELSE 0 END AS day_requests,
            CASE WHEN at >= \(p.text(1)) THEN input_tokens + output_tokens ELSE 0 END AS day_tokens
          FROM ledger WHERE at >= \(p.text(2)) AND operation != 'cache-embedding'
          UNION ALL
          SELECT NULLIF(tenant, ''), NULLIF(key_id, ''),
            CASE WHEN day >= \(p.text(1)) THEN cost_usd ELSE 0 END, cost_usd,
            CASE WHEN day >= \(p.text(1)) THEN requests ELSE 0 END,
            CASE WHEN day >= \(p.text(1)) THEN input_tokens + output_tokens ELSE 0 END
          FROM ledger_daily WHERE day >= \(p.text(2)) AND operation != 'cache-embedding'
        ) AS spent GROUP BY tenant, key_id
        """
    }

    /// Usage lines since parameter 1 (ledger rows) and parameter 2 (daily totals: a day counts whole
    /// from its start). With `tenant`, parameter 3 names it.
    static func usage(_ p: Placeholders, sum: String, tenant: Bool) -> String {
        let ledgerTenant = tenant ? " AND tenant = \(p.text(3))" : ""
        let dailyTenant = tenant ? " AND tenant = \(p.text(3))" : ""
        return """
            SELECT COALESCE(NULLIF(tenant, ''), '(anonymous)') AS tenant, COALESCE(NULLIF(route, ''), '-') AS route,
              COALESCE(NULLIF(provider, ''), '-') AS provider, COALESCE(NULLIF(model, ''), '-') AS model,
              \(sum)(requests) AS requests, \(sum)(failed) AS failed, \(sum)(input_tokens) AS input_tokens,
              \(sum)(output_tokens) AS output_tokens, \(sum)(cost_usd) AS cost_usd FROM (
              SELECT tenant, route, provider, model, 1 AS requests, CASE WHEN outcome = 'success' THEN 0 ELSE 1 END AS failed,
                input_tokens, output_tokens, cost_usd FROM ledger WHERE at >= \(p.text(1))\(ledgerTenant)
              UNION ALL
              SELECT tenant, route, provider, model, requests, failed, input_tokens, output_tokens, cost_usd
                FROM ledger_daily WHERE day >= \(p.text(2))\(dailyTenant)
            ) AS used GROUP BY 1, 2, 3, 4 ORDER BY 9 DESC, 5 DESC
            """
    }

    /// The start of the day `seconds` (since 1970, UTC) falls in.
    static func dayStart(_ seconds: Double) -> Double {
        guard seconds.isFinite else { return 0 }
        return (seconds / 86_400).rounded(.down) * 86_400
    }
}

/// Where a ledger row's values go, in the order of `LedgerSQL.columns`: a SQLite statement's
/// bindings or a PostgreSQL query's.
protocol LedgerValueSink {
    mutating func text(_ value: String?)
    mutating func integer(_ value: Int)
    mutating func double(_ value: Double?)
}

extension LedgerRow {
    /// The row's values in the order of `LedgerSQL.columns`.
    func write(to sink: inout some LedgerValueSink) {
        // A row written without the writer (a test, a tool) has no entry id: NULL, which no unique index refuses.
        sink.text(self.entryId.isEmpty ? nil : self.entryId)
        sink.text(self.requestId)
        sink.double(self.at)
        sink.text(self.tenant)
        sink.text(self.keyId)
        sink.text(self.route)
        sink.text(self.provider)
        sink.text(self.model)
        sink.text(self.outcome)
        sink.integer(self.status)
        sink.integer(self.inputTokens)
        sink.integer(self.cachedTokens)
        sink.integer(self.outputTokens)
        sink.integer(self.reasoningTokens)
        sink.double(self.costUsd)
        sink.double(self.latencyMs)
        sink.double(self.ttftMs)
        sink.text(self.cache)
        sink.integer(self.attempts)
        sink.double(self.costSavedUsd)
        sink.text(self.operation)
        sink.text(self.cacheRefusal)
    }
}
