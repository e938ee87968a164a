/// PostgreSQL's SQL for each step of `SchemaHistory`: the same tables and columns as SQLite's
/// (`Store.migrator`), in PostgreSQL's types. The persistent cache and the ledger journal belong to
/// each replica's own SQLite file, so their steps are empty here.
enum PostgresSchema {
    static func statements(for migration: String) -> [String] {
        switch migration {
        case "v1: audit log":
            return [
                """
                CREATE TABLE audit_log (id BIGSERIAL PRIMARY KEY, at DOUBLE PRECISION NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
                  target TEXT, detail TEXT NOT NULL, ok BOOLEAN NOT NULL)
                """
            ]
        case "v2: keys and ledger":
            return [
                """
                CREATE TABLE api_key (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, name TEXT NOT NULL, prefix TEXT NOT NULL, hash TEXT NOT NULL UNIQUE,
                  created_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION, revoked_at DOUBLE PRECISION, rpm BIGINT, rpd BIGINT, tpm BIGINT,
                  concurrency BIGINT, budget_daily_usd DOUBLE PRECISION, budget_monthly_usd DOUBLE PRECISION, models TEXT NOT NULL DEFAULT '')
                """,
                "CREATE INDEX api_key_on_tenant ON api_key (tenant)",
                "CREATE INDEX api_key_on_prefix ON api_key (prefix)",
                """
                CREATE TABLE ledger (id BIGSERIAL PRIMARY KEY, request_id TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, tenant TEXT, key_id TEXT,
                  route TEXT, provider TEXT, model TEXT, outcome TEXT NOT NULL, status BIGINT NOT NULL, input_tokens BIGINT NOT NULL,
                  cached_tokens BIGINT NOT NULL, output_tokens BIGINT NOT NULL, reasoning_tokens BIGINT NOT NULL, cost_usd DOUBLE PRECISION NOT NULL,
                  latency_ms DOUBLE PRECISION NOT NULL, ttft_ms DOUBLE PRECISION, cache TEXT NOT NULL, attempts BIGINT NOT NULL)
                """,
                "CREATE INDEX ledger_on_at ON ledger (at)",
                "CREATE INDEX ledger_on_tenant ON ledger (tenant)",
            ]
        case "v3: cost saved by the cache":
            return ["ALTER TABLE ledger ADD COLUMN cost_saved_usd DOUBLE PRECISION NOT NULL DEFAULT 0"]
        case "v5: ledger operation":
            return ["ALTER TABLE ledger ADD COLUMN operation TEXT NOT NULL DEFAULT 'chat'"]
        case "v7: the replica of an audit row":
            return ["ALTER TABLE audit_log ADD COLUMN replica TEXT"]
        case "v8: ledger entry ids and daily totals":
            return [
                "ALTER TABLE ledger ADD COLUMN entry_id TEXT",
                "CREATE UNIQUE INDEX ledger_entry_id ON ledger (entry_id)",
                LedgerSQL.dailyTable(real: "DOUBLE PRECISION"),
            ]
        case "v10: responses kept for their callers":
            return [
                """
                CREATE TABLE stored_response (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, key_id TEXT, created_at DOUBLE PRECISION NOT NULL,
                  provider TEXT NOT NULL, upstream_model TEXT NOT NULL, held_upstream BOOLEAN NOT NULL, input_items TEXT NOT NULL, response TEXT NOT NULL)
                """,
                "CREATE INDEX stored_response_on_created_at ON stored_response (created_at)",
            ]
        case "v11: why the semantic cache refused a hit":
            return ["ALTER TABLE ledger ADD COLUMN cache_refusal TEXT"]
        default:
            return []
        }
    }
}
