import ArgumentParser
import Engine
import Foundation
import NIOHTTP1

/// Talks to the running gateway when there is one (its admin socket), else works on the state
/// directory's database directly (a stopped gateway loads the keys when it starts).
struct TenancyConnection: ParsableArguments {
    @OptionGroup var admin: Ctl.Connection

    @Option(name: .long, help: "State directory, for when the gateway is not running. Default: $SWITCHYARD_STATE_DIR, else ./.switchyard.")
    var stateDir: String?

    @Option(name: .long, help: "A fleet's PostgreSQL (postgres://…), for when no gateway runs here. Default: $SWITCHYARD_DATABASE, else the state directory's SQLite.")
    var database: String?

    var running: Bool { AdminSocket.answers(self.admin.socketPath) }

    /// The database keys and the ledger are in, opened directly: a fleet's PostgreSQL, or the state
    /// directory's SQLite file.
    func offlineStore() async throws -> any GatewayDatabase {
        if let url = self.database ?? ProcessInfo.processInfo.environment["SWITCHYARD_DATABASE"], url != "sqlite" {
            let settings: PostgresSettings
            do {
                settings = try PostgresSettings.parse(url)
            } catch {
                throw ValidationError("--database: \(error.message)")
            }
            return try await PostgresDatabase.forCommandLine(settings)
        }
        let directory = self.stateDir ?? ProcessInfo.processInfo.environment["SWITCHYARD_STATE_DIR"] ?? "./.switchyard"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        return try Store(path: (directory as NSString).appendingPathComponent("switchyard.sqlite"))
    }
}

struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Virtual keys: each tenant's keys, shown once at creation and stored only as a hash.",
        subcommands: [Create.self, List.self, Revoke.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a key for a tenant; it is printed once.")
        @OptionGroup var connection: TenancyConnection
        @Option(name: .long) var tenant: String
        @Option(name: .long, help: "A name to tell keys apart.") var name: String?
        @Option(name: .long, help: "Requests per minute.") var rpm: Int?
        @Option(name: .long, help: "Requests per day.") var rpd: Int?
        @Option(name: .long, help: "Tokens per minute (prompt estimate + max_tokens reserved, settled to actual).") var tpm: Int?
        @Option(name: .long, help: "Requests in flight at once.") var concurrency: Int?
        @Option(name: .long) var budgetDailyUsd: Double?
        @Option(name: .long) var budgetMonthlyUsd: Double?
        @Option(name: .long, help: "Allowed routes, comma-separated globs: gpt-4o,claude-*") var models: String?
        @Option(name: .long, help: "Lifetime: 30d, 12h, 90m.") var expires: String?

        func run() async throws {
            var request = KeyRequest(tenant: self.tenant, name: self.name)
            request.rpm = self.rpm
            request.rpd = self.rpd
            request.tpm = self.tpm
            request.concurrency = self.concurrency
            request.budgetDailyUsd = self.budgetDailyUsd
            request.budgetMonthlyUsd = self.budgetMonthlyUsd
            request.models = self.models.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
            if let expires = self.expires {
                guard let lifetime = Self.lifetime(expires) else { throw ValidationError("--expires '\(expires)': use e.g. 30d, 12h, 90m") }
                request.expiresInSeconds = lifetime
            }
            let created: CreatedKey
            if self.connection.running {
                let data = try await self.connection.admin.call(.POST, "/v1/keys", body: try AdminJSON.encoder().encode(request))
                created = try AdminJSON.decoder().decode(CreatedKey.self, from: data)
            } else {
                if let problems = request.problems { throw ValidationError(problems) }
                let (key, record) = KeyRing.make(
                    tenant: request.tenant, name: request.name ?? "key", limits: request.limits, models: request.models ?? [],
                    expires: request.expiresInSeconds.map { .seconds($0) }, now: Date().timeIntervalSince1970
                )
                let store = try await self.connection.offlineStore()
                try await store.insertKey(record)
                try await store.audit(actor: "cli:uid:\(getuid())", action: "key_create", target: record.id, detail: "offline; tenant \(record.tenant)", ok: true)
                created = CreatedKey(key: key, view: record.view)
            }
            if self.connection.admin.json {
                print(String(decoding: try AdminJSON.encoder().encode(created), as: UTF8.self))
                return
            }
            print("""
                \(created.key)

                This is the only time the key is shown: store it now. Tenant \(created.view.tenant), \
                key \(created.view.name) (id \(created.view.id)), limits: \(created.view.limits)\
                \(created.view.models.isEmpty ? "" : ", models: \(created.view.models)").
                """)
        }

        static func lifetime(_ text: String) -> Double? {
            guard let unit = text.last, let number = Double(text.dropLast()), number > 0 else { return nil }
            switch unit {
            case "d": return number * 86_400
            case "h": return number * 3_600
            case "m": return number * 60
            default: return nil
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every key: tenant, prefix, limits, state. Never the keys themselves.")
        @OptionGroup var connection: TenancyConnection

        func run() async throws {
            let views: [KeyView]
            if self.connection.running {
                views = try AdminJSON.decoder().decode([KeyView].self, from: try await self.connection.admin.call(.GET, "/v1/keys"))
            } else {
                views = try await self.connection.offlineStore().keys().map(\.view)
            }
            if self.connection.admin.json {
                print(String(decoding: try AdminJSON.encoder().encode(views), as: UTF8.self))
                return
            }
            let now = Date().timeIntervalSince1970
            print(StatusText.table(
                ["id", "tenant", "name", "prefix", "state", "limits", "models"],
                views.map { view in
                    let state = view.revokedAt != nil ? "revoked" : (view.expiresAt.map { $0 <= now } == true ? "expired" : "active")
                    return [view.id, view.tenant, view.name, view.prefix + "…", state, view.limits, view.models.isEmpty ? "all" : view.models]
                }
            ), terminator: "")
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a key (by id or prefix); it stops working at once.")
        @OptionGroup var connection: TenancyConnection
        @Argument var key: String

        func run() async throws {
            if self.connection.running {
                let data = try await self.connection.admin.call(.DELETE, "/v1/keys/\(AdminPath.segment(self.key))")
                print(try AdminJSON.decoder().decode(AdminAck.self, from: data).message)
                return
            }
            let store = try await self.connection.offlineStore()
            guard let record = try await store.revokeKey(self.key, at: Date().timeIntervalSince1970) else {
                throw CtlFailure(message: "no key with id or prefix '\(self.key)'")
            }
            try await store.audit(actor: "cli:uid:\(getuid())", action: "key_revoke", target: record.id, detail: "offline", ok: true)
            print("key \(record.name) (\(record.prefix)…) of tenant \(record.tenant) revoked")
        }
    }

    typealias Drain = Ctl.Drain
}

struct Tenants: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Tenants.", subcommands: [List.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every tenant with today's requests, tokens, cost and budget use (gateway running).")
        @OptionGroup var connection: Ctl.Connection

        func run() async throws {
            let data = try await self.connection.call(.GET, "/v1/tenants")
            try self.connection.show(data, as: [AdminTenant].self) { tenants in
                StatusText.table(
                    ["tenant", "requests today", "tokens today", "cost today", "budget used", "rejected"],
                    tenants.map {
                        [$0.name, "\($0.requestsToday)", "\($0.tokensToday)", String(format: "$%.4f", $0.costTodayUsd),
                         $0.budgetUsed.map { StatusText.percent($0) } ?? "no budget", "\($0.limitRejections)"]
                    }
                )
            }
        }
    }
}

struct UsageReport: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "usage", abstract: "Requests, tokens and cost by model and provider, from the ledger.")
    @OptionGroup var connection: TenancyConnection
    @Option(name: .long) var tenant: String?
    @Option(name: .long, help: "How far back: 24h, 7d, 30m.") var since = "24h"

    func run() async throws {
        guard let window = Keys.Create.lifetime(self.since) else { throw ValidationError("--since '\(self.since)': use e.g. 24h, 7d, 30m") }
        let start = Date().timeIntervalSince1970 - window
        let lines: [UsageLine]
        if self.connection.running {
            var path = "/v1/usage?since=\(start)"
            if let tenant = self.tenant { path += "&tenant=\(AdminPath.query(tenant))" }
            lines = try AdminJSON.decoder().decode([UsageLine].self, from: try await self.connection.admin.call(.GET, path))
        } else {
            lines = try await self.connection.offlineStore().usage(tenant: self.tenant, since: start)
        }
        if self.connection.admin.json {
            print(String(decoding: try AdminJSON.encoder().encode(lines), as: UTF8.self))
            return
        }
        var rows = lines.map {
            [$0.tenant, $0.route, $0.provider, $0.model, "\($0.requests)", "\($0.failed)", "\($0.inputTokens)", "\($0.outputTokens)", String(format: "$%.4f", $0.costUsd)]
        }
        let total = lines.reduce(into: (requests: 0, input: 0, output: 0, cost: 0.0)) {
            $0.requests += $1.requests
            $0.input += $1.inputTokens
            $0.output += $1.outputTokens
            $0.cost += $1.costUsd
        }
        rows.append(["total", "", "", "", "\(total.requests)", "", "\(total.input)", "\(total.output)", String(format: "$%.4f", total.cost)])
        print(StatusText.table(["tenant", "route", "provider", "model", "requests", "failed", "input tok", "output tok", "cost"], rows), terminator: "")
    }
}

struct LedgerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger", abstract: "The ledger's upkeep.", subcommands: [RollUpCommand.self]
    )

    struct RollUpCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rollup",
            abstract: "Fold ledger rows older than --keep-days into daily totals now (what database.retention_days does hourly)."
        )
        @OptionGroup var connection: TenancyConnection
        @Option(name: .long, help: "Whole days of rows to keep (1-\(DatabaseSettings.longestRetentionDays)).") var keepDays: Int

        func run() async throws {
            guard (1...DatabaseSettings.longestRetentionDays).contains(self.keepDays) else {
                throw ValidationError("--keep-days must be 1-\(DatabaseSettings.longestRetentionDays)")
            }
            let cutoff = Retention.cutoff(now: Date().timeIntervalSince1970, keepingDays: self.keepDays)
            let done = try await self.connection.offlineStore().rollUp(before: cutoff)
            if self.connection.admin.json {
                print(#"{"rows":\#(done.rows),"days":\#(done.days),"before":\#(cutoff)}"#)
            } else {
                print("\(done.rows) ledger rows before \(Date(timeIntervalSince1970: cutoff)) folded into \(done.days) daily totals")
            }
        }
    }
}
