import Engine
import Foundation
import Logging
import RedisTestSupport
import Synchronization
import Testing

@testable import Server

/// The database behind keys, the ledger and the audit log, against a real PostgreSQL (and the same
/// checks against SQLite, which must behave alike).
@Suite(.serialized) struct SharedDatabaseTests {
    let logger = Logger(label: "test")

    private func postgres(_ server: PostgresServerProcess, _ name: String) async throws -> PostgresDatabase {
        try await PostgresDatabase(settings: try PostgresSettings.parse(try server.url(database: name)), logger: self.logger)
    }

    private func row(_ id: String, at: Double, tenant: String = "acme", key: String? = "key_a", cost: Double = 0.25, entry: String? = nil) -> LedgerRow {
        var row = LedgerRow(
            requestId: id, at: at, tenant: tenant, keyId: key, route: "fast", provider: "sim", model: "m", outcome: "success", status: 200,
            inputTokens: 10, cachedTokens: 0, outputTokens: 5, reasoningTokens: 0, costUsd: cost, latencyMs: 1, ttftMs: nil, cache: "miss", attempts: 1
        )
        row.entryId = entry ?? "entry_\(id)"
        return row
    }

    @Test func replicasStartingTogetherMigrateOnceAndANewerSchemaIsRefused() async throws {
        let server = try await PostgresServerProcess()
        let url = try server.url(database: "fleet")
        let settings = try PostgresSettings.parse(url)
        // Without the advisory lock, replicas creating the same tables at once fail with duplicate errors.
        let started = try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<3 { group.addTask { _ = try await PostgresDatabase(settings: settings, logger: self.logger); return true } }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(started == 3)
        #expect(try server.psql("SELECT COUNT(*) FROM switchyard_schema", database: "fleet") == "\(SchemaHistory.migrations.count)")
        #expect(try server.psql("SELECT COUNT(*) FROM ledger_daily", database: "fleet") == "0")

        try server.psql("INSERT INTO switchyard_schema VALUES ('v99: from the future', 0, 'newer')", database: "fleet")
        do {
            _ = try await PostgresDatabase(settings: settings, logger: self.logger)
            Issue.record("a schema newer than this build was used")
        } catch let error as SchemaHistory.TooNew {
            #expect(error.description.contains("v99: from the future") && error.description.contains("newer Switchyard"))
        }
    }

    @Test(arguments: ["sqlite", "postgres"])
    func bothDatabasesKeepKeysLedgerTotalsAndAuditAlike(kind: String) async throws {
        let server = kind == "postgres" ? try await PostgresServerProcess() : nil
        let directory = RunningService.temporaryStateDir()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let database: any GatewayDatabase = if let server { try await self.postgres(server, "alike") } else { try Store(path: directory + "/switchyard.sqlite") }

        let (key, record) = KeyRing.make(tenant: "acme", name: "ci", limits: LimitSettings(requestsPerMinute: 60, dailyBudgetUSD: 2), models: ["fast"], expires: nil, now: 100)
        try await database.insertKey(record)
        #expect(try await database.key(hash: KeyRing.hash(key)) == record)
        #expect(try await database.key(hash: KeyRing.hash(key + "x")) == nil)
        #expect(try await database.revokeKey(record.prefix, at: 200)?.revokedAt == 200)
        #expect(try await database.keys().map(\.revokedAt) == [200])
        #expect(try await database.revokeKey("key_nobody", at: 300) == nil)

        let now = Date().timeIntervalSince1970
        let today = LedgerSQL.dayStart(now)
        let old = today - 3 * 86_400 + 60
        let rows = (0..<10).map { self.row("new\($0)", at: now) } + (0..<4).map { self.row("old\($0)", at: old, key: "key_b", cost: 1) }
        try await database.append(rows[...])
        // A batch written again (its commit's answer lost, say) is stored once; a row without an entry
        // id (written by a tool) always is.
        try await database.append(rows[2...5])
        var bare = self.row("bare", at: now)
        bare.entryId = ""
        try await database.append([bare, bare][...])

        let week = try await database.usage(tenant: "acme", since: now - 7 * 86_400)
        #expect(week.map(\.requests).reduce(0, +) == 16)
        #expect(abs(week.map(\.costUsd).reduce(0, +) - 7.0) < 1e-9)
        let spend = try await database.spend(since: today, monthStart: today - 5 * 86_400)
        #expect(spend.first { $0.key == "key_a" }.map { ($0.day, $0.requests, $0.tokens) } ?? (0, 0, 0) == (3.0, 12, 180))
        #expect(spend.first { $0.key == "key_b" }.map { ($0.day, $0.month) } ?? (0, 0) == (0, 4.0))

        // Retention: the old day becomes one total per tenant, key, route, provider and model; the
        // numbers read the same before and after, and a second pass finds nothing.
        #expect(try await database.rollUp(before: today - 86_400) == RollUp(rows: 4, days: 1))
        #expect(try await database.rollUp(before: today - 86_400) == RollUp(rows: 0, days: 0))
        let after = try await database.usage(tenant: "acme", since: now - 7 * 86_400)
        #expect(after.map(\.requests).reduce(0, +) == 16 && abs(after.map(\.costUsd).reduce(0, +) - 7.0) < 1e-9)
        #expect(try await database.spend(since: today, monthStart: today - 5 * 86_400).first { $0.key == "key_b" }.map(\.month) == 4.0)
        // A row that arrives late for a day already rolled up (from a journal) is added to its total.
        try await database.append([self.row("late", at: old, key: "key_b", cost: 1)][...])
        #expect(try await database.rollUp(before: today - 86_400) == RollUp(rows: 1, days: 1))
        #expect(try await database.spend(since: today, monthStart: today - 5 * 86_400).first { $0.key == "key_b" }.map(\.month) == 5.0)

        database.setReplica("host-a:8080")
        try await database.audit(actor: "uid:0", action: "key_create", target: record.id, detail: "tenant acme", ok: true)
        let audit = try await database.auditLog(limit: 10)
        #expect(audit.count == 1 && audit.first?.replica == "host-a:8080" && audit.first?.action == "key_create")
    }

    @Test(arguments: ["sqlite", "postgres"])
    func bothDatabasesKeepResponsesForTheTenantThatMadeThem(kind: String) async throws {
        let server = kind == "postgres" ? try await PostgresServerProcess() : nil
        let directory = RunningService.temporaryStateDir()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let database: any GatewayDatabase = if let server { try await self.postgres(server, "responses") } else { try Store(path: directory + "/switchyard.sqlite") }

        let kept = StoredResponse(
            id: "resp_1", tenant: "acme", keyId: "key_a", createdAt: 1_000, provider: "claude", upstreamModel: "claude-sonnet-4-5", heldUpstream: false,
            inputItems: #"[{"role":"user","content":"Hi — ünïcode"}]"#, response: #"{"id":"resp_1","object":"response","output":[]}"#
        )
        try await database.keep(kept)
        try await database.keep(StoredResponse(
            id: "resp_2", tenant: "", keyId: nil, createdAt: 3_000, provider: "openai", upstreamModel: "gpt-4.1", heldUpstream: true, inputItems: "[]", response: "{}"
        ))
        #expect(try await database.storedResponse(id: "resp_1", tenant: "acme") == kept)
        #expect(try await database.storedResponse(id: "resp_1", tenant: "other") == nil, "another tenant's id is unknown to it")
        #expect(try await database.storedResponse(id: "resp_1", tenant: "") == nil)
        #expect(try await database.storedResponse(id: "resp_2", tenant: "")?.heldUpstream == true)
        // The same id again (an upstream that reuses ids, another tenant's request): refused, never replaced.
        var intruder = kept
        (intruder.tenant, intruder.provider) = ("other", "elsewhere")
        await #expect(throws: StoredResponse.IdTaken.self) { try await database.keep(intruder) }
        #expect(try await database.storedResponse(id: "resp_1", tenant: "acme") == kept)
        #expect(try await database.storedResponse(id: "resp_1", tenant: "other") == nil)
        #expect(try await database.deleteStoredResponse(id: "resp_1", tenant: "other") == false)
        #expect(try await database.forgetResponses(before: 2_000) == 1)
        #expect(try await database.storedResponse(id: "resp_1", tenant: "acme") == nil)
        #expect(try await database.deleteStoredResponse(id: "resp_2", tenant: "") == true)
        #expect(try await database.deleteStoredResponse(id: "resp_2", tenant: "") == false)
    }

    @Test func ledgerRowsWaitInTheJournalWhilePostgresIsDownAndAreWrittenOnceWhenItReturns() async throws {
        let server = try await PostgresServerProcess()
        let database = try await self.postgres(server, "journal")
        let directory = RunningService.temporaryStateDir()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try Store(path: directory + "/switchyard.sqlite")
        let writer = LedgerWriter(database: database, journal: store, logger: self.logger)
        let now = Date().timeIntervalSince1970
        let count = { try server.psql("SELECT COUNT(*) || '/' || COUNT(DISTINCT request_id) FROM ledger", database: "journal") }

        for index in 0..<100 { writer.append(self.row("up\(index)", at: now, entry: "")) }
        await writer.flush()
        #expect(try count() == "100/100")

        server.stop()
        for index in 0..<50 { writer.append(self.row("down\(index)", at: now, entry: "")) }
        await writer.flush()
        var backlog = writer.backlog
        #expect(backlog.journalled == 50 && backlog.queued == 0 && backlog.databaseDown && backlog.oldestWaiting == now)
        #expect(try await store.journalBacklog() == (50, now))
        // A replica restarted with a journal shows it as its backlog from the start.
        let restarted = LedgerWriter(database: database, journal: store, logger: self.logger)
        await restarted.start()
        #expect(restarted.backlog.journalled == 50 && restarted.backlog.oldestWaiting == now)

        try await server.start()
        for index in 0..<10 { writer.append(self.row("back\(index)", at: now, entry: "")) }
        // Drained once the replay has also seen the journal empty (its last batch written, it looks
        // once more before it clears the outage): under load that look can come a moment later.
        let drained = try await eventually(within: .seconds(15)) {
            await writer.flush()
            let backlog = writer.backlog
            return backlog.journalled == 0 && backlog.queued == 0 && backlog.oldestWaiting == nil && !backlog.databaseDown
        }
        #expect(drained)
        backlog = writer.backlog
        #expect(try count() == "160/160")
        #expect(backlog.written == 160 && !backlog.databaseDown && backlog.oldestWaiting == nil)
        #expect(try await store.journalBacklog().rows == 0)
    }

    @Test func aKeyMadeOrRevokedOnOneReplicaIsAnnouncedToTheOthers() async throws {
        let server = try await PostgresServerProcess()
        let first = try await self.postgres(server, "keys")
        let second = try await self.postgres(server, "keys")
        let heard = HeardKeys()
        let listening = Task {
            await second.listenForKeys(changed: { heard.add($0) }, resubscribed: { heard.subscribed() })
        }
        defer { listening.cancel() }
        #expect(try await eventually { heard.subscriptions > 0 })

        let (_, record) = KeyRing.make(tenant: "acme", name: "ci", limits: LimitSettings(), models: [], expires: nil, now: 100)
        try await first.insertKey(record)
        #expect(try await eventually { heard.records.contains { $0.id == record.id && $0.revokedAt == nil } })
        _ = try await first.revokeKey(record.id, at: 200)
        #expect(try await eventually { heard.records.contains { $0.id == record.id && $0.revokedAt == 200 } })

        // Listening again after PostgreSQL comes back: the replica is told to read every key again.
        let before = heard.subscriptions
        server.stop()
        try await server.start()
        #expect(try await eventually(within: .seconds(15)) { heard.subscriptions > before })
    }
}

private final class HeardKeys: Sendable {
    private let state = Mutex<(records: [KeyRecord], subscriptions: Int)>(([], 0))
    func add(_ record: KeyRecord) { self.state.withLock { $0.records.append(record) } }
    func subscribed() { self.state.withLock { $0.subscriptions += 1 } }
    var records: [KeyRecord] { self.state.withLock { $0.records } }
    var subscriptions: Int { self.state.withLock { $0.subscriptions } }
}

/// A gateway on a shared database, on each lane.
@Suite(.serialized) struct SharedKeysOnLanesTests {
    /// A key another replica made a moment ago (straight into the database, no announcement heard
    /// yet) answers at once; made-up keys shaped like ours are refused with 401, however many.
    @Test(arguments: Lane.allCases)
    func aKeyMadeElsewhereAnswersAtOnceAndMadeUpKeysAreRefused(lane: Lane) async throws {
        let server = try await PostgresServerProcess()
        let settings = try PostgresSettings.parse(try server.url(database: "lanes"))
        let fixture = try await GatewayFixture.start(lane: lane) {
            $0.database = DatabaseSettings(location: .postgres(settings))
            $0.server.anonymous = false
        }
        let elsewhere = try await PostgresDatabase(settings: settings, logger: Logger(label: "test"))
        let (key, record) = KeyRing.make(tenant: "acme", name: "ci", limits: LimitSettings(), models: [], expires: nil, now: Date().timeIntervalSince1970)
        try await elsewhere.insertKey(record)
        let url = "\(fixture.gateway.url)/v1/chat/completions"
        let answer = try await TestClient.post(url, TestClient.chat(model: "fast"), headers: [("authorization", "Bearer \(key)")])
        #expect(answer.status == 200, "\(answer.body)")
        for number in 0..<50 {
            let madeUp = "sk-sy-madeup\(number)0000000000000000000000000000000"
            #expect(try await TestClient.post(url, TestClient.chat(model: "fast"), headers: [("authorization", "Bearer \(madeUp)")]).status == 401)
        }
        await fixture.stop()
    }
}
