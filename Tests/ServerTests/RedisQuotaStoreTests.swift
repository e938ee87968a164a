import Engine
import Foundation
import Logging
import NIOPosix
import Redis
import RedisTestSupport
import Testing
@testable import Server

/// Limits shared through a real redis-server: two stores stand for two replicas, and whatever one
/// admits, the other sees at once.
@Suite(.serialized)
struct RedisQuotaStoreTests {
    private let day = "2026-12-06"
    private let month = "2026-12"
    private let tenant = QuotaSubject(.tenant, "acme{1}:x")
    private let key = QuotaSubject(.key, "k1")

    private func replicas(_ server: RedisServerProcess, onError: RedisStateSettings.OnError = .deny, leaseTTL: Duration = .seconds(30)) -> [RedisQuotaStore] {
        (0..<2).map { _ in
            RedisQuotaStore(
                redis: RedisClient(server.configuration(), group: MultiThreadedEventLoopGroup.singleton), onError: onError, leaseTTL: leaseTTL,
                logger: Logger(label: "test")
            )
        }
    }

    private func request(_ tenantLimits: LimitSettings, _ keyLimits: LimitSettings = LimitSettings(), tokens: Int = 10, cost: Double = 0) -> AdmissionRequest {
        AdmissionRequest(subjects: [(self.tenant, tenantLimits), (self.key, keyLimits)], reservedTokens: tokens, reservedCost: cost)
    }

    private func admit(_ store: RedisQuotaStore, _ request: AdmissionRequest) async -> Result<AdmissionTicket, QuotaRejection> {
        await store.admit(request, at: .now, day: self.day, month: self.month)
    }

    @Test func aRequestLimitHoldsAcrossReplicas() async throws {
        let server = try await RedisServerProcess()
        let stores = self.replicas(server)
        var admitted = 0
        var last: QuotaRejection?
        let started = ContinuousClock.now
        for index in 0..<25 {
            switch await self.admit(stores[index % 2], self.request(LimitSettings(), LimitSettings(requestsPerMinute: 10))) {
            case .success(let ticket):
                admitted += 1
                #expect(ticket.report.requests?.limit == 10)
                stores[index % 2].settle(ticket, tokens: 5, cost: 0, at: .now, day: self.day, month: self.month)
            case .failure(let rejection):
                last = rejection
            }
        }
        // GCRA: a burst of the whole limit, then one every 6 s (however slowly this ran).
        let allowance = Int((ContinuousClock.now - started) / .seconds(6))
        #expect(admitted >= 10 && admitted <= 10 + allowance, "\(admitted) admitted")
        #expect(last?.kind == .requests)
        #expect(last?.message.contains("10 requests per minute reached for key 'k1'") == true)
        #expect((last?.retryAfter ?? .zero) > .zero && (last?.retryAfter ?? .zero) <= .seconds(6))
    }

    @Test func concurrencyAndBudgetsHoldAcrossReplicasAndSettle() async throws {
        let server = try await RedisServerProcess()
        let stores = self.replicas(server)
        let limits = LimitSettings(concurrency: 2, dailyBudgetUSD: 1.0)
        let first = try await self.admit(stores[0], self.request(limits, cost: 0.3)).get()
        let second = try await self.admit(stores[1], self.request(limits, cost: 0.3)).get()
        guard case .failure(let third) = await self.admit(stores[0], self.request(limits, cost: 0.3)) else {
            Issue.record("a third request in flight was admitted past a concurrency of 2")
            return
        }
        #expect(third.kind == .concurrency)
        stores[1].settle(first, tokens: 5, cost: 0.25, at: .now, day: self.day, month: self.month)
        #expect(try await eventually { await stores[0].usage(of: self.tenant)?.spentToday == 0.25 })
        // Spent 0.25, reserved 0.3 by the second: 0.5 more would pass a $1.00 budget.
        guard case .failure(let budget) = await self.admit(stores[0], self.request(limits, cost: 0.5)) else {
            Issue.record("a budget was passed")
            return
        }
        #expect(budget.kind == .budget)
        #expect(budget.message.contains("spent $0.25, reserved $0.3"))
        let fourth = try await self.admit(stores[0], self.request(limits, cost: 0.4)).get()
        let usage = try #require(await stores[1].usage(of: self.tenant))
        #expect(usage.inFlight == 2 && abs(usage.reserved - 0.7) < 1e-9 && usage.requestsToday == 3 && usage.rejections == 2)
        stores[0].settle(second, tokens: 1, cost: 0, at: .now, day: self.day, month: self.month)
        stores[0].settle(fourth, tokens: 1, cost: 0, at: .now, day: self.day, month: self.month)
        #expect(try await eventually { await stores[1].usage(of: self.tenant)?.inFlight == 0 })
    }

    @Test func tokensAreReservedAndTheUnusedOnesGivenBack() async throws {
        let server = try await RedisServerProcess()
        let stores = self.replicas(server)
        let limits = LimitSettings(tokensPerMinute: 100)
        let first = try await self.admit(stores[0], self.request(limits, tokens: 60)).get()
        #expect(first.report.tokens?.remaining == 40)
        guard case .failure(let refused) = await self.admit(stores[1], self.request(limits, tokens: 60)) else {
            Issue.record("120 tokens reserved against 100 a minute")
            return
        }
        #expect(refused.kind == .tokens && refused.retryAfter != nil)
        stores[0].settle(first, tokens: 10, cost: 0, at: .now, day: self.day, month: self.month)
        #expect(try await eventually {
            guard case .success(let ticket) = await self.admit(stores[1], self.request(limits, tokens: 60)) else { return false }
            stores[1].settle(ticket, tokens: 60, cost: 0, at: .now, day: self.day, month: self.month)
            return true
        })
    }

    @Test func theLeasesOfAReplicaThatDiedComeBackWithinTheirTTL() async throws {
        let server = try await RedisServerProcess()
        let stores = self.replicas(server, leaseTTL: .seconds(2))
        let limits = LimitSettings(concurrency: 1)
        // Replica 0 admits and dies: it never settles, and nothing renews its lease.
        _ = try await self.admit(stores[0], self.request(limits)).get()
        guard case .failure = await self.admit(stores[1], self.request(limits)) else {
            Issue.record("a second request admitted past a concurrency of 1")
            return
        }
        #expect(try await eventually { (try? await self.admit(stores[1], self.request(limits)).get()) != nil })
    }

    @Test func aLongRequestsLeaseIsRenewedWhileItRuns() async throws {
        let server = try await RedisServerProcess()
        // Checked for twice the TTL; renewed every third of it.
        let stores = self.replicas(server, leaseTTL: .seconds(3))
        let renewing = Task { await stores[0].renewLeases() }
        defer { renewing.cancel() }
        let limits = LimitSettings(concurrency: 1)
        let ticket = try await self.admit(stores[0], self.request(limits)).get()
        for _ in 0..<12 {
            try await Task.sleep(for: .milliseconds(500))
            guard case .failure(let refused) = await self.admit(stores[1], self.request(limits)) else {
                Issue.record("the running request's lease expired while it was renewed")
                return
            }
            #expect(refused.kind == .concurrency)
        }
        stores[0].settle(ticket, tokens: 1, cost: 0, at: .now, day: self.day, month: self.month)
        #expect(try await eventually { (try? await self.admit(stores[1], self.request(limits)).get()) != nil })
    }

    @Test(arguments: [RedisStateSettings.OnError.deny, .allow])
    func whenRedisIsGoneAdmissionFollowsThePolicyAtOnceAndRecovers(policy: RedisStateSettings.OnError) async throws {
        let server = try await RedisServerProcess()
        let store = self.replicas(server, onError: policy)[0]
        let limits = LimitSettings(requestsPerMinute: 1_000)
        _ = try await self.admit(store, self.request(limits)).get()
        server.stop()
        for _ in 0..<5 {
            let started = ContinuousClock.now
            let result = await self.admit(store, self.request(limits))
            // Refused at once (nothing listens), never hanging; a generous bound, not a timing assertion.
            #expect(ContinuousClock.now - started < .seconds(5))
            switch (policy, result) {
            case (.deny, .failure(let rejection)):
                #expect(rejection.kind == .unavailable && rejection.message.contains("on_state_error: deny"))
            case (.allow, .success(let ticket)):
                #expect(ticket.subjects.isEmpty && ticket.lease == nil)
            default:
                Issue.record("\(policy): \(result)")
            }
        }
        try await server.start()
        #expect(try await eventually { (try? await self.admit(store, self.request(limits)).get())?.lease != nil })
    }

    @Test func aReplicasLedgerIsAddedOncePerRedisLifetimeSoBudgetsCountWhatWasSpent() async throws {
        let server = try await RedisServerProcess()
        let stores = self.replicas(server)
        let directory = RunningService.temporaryStateDir()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let ledger = try Store(path: directory + "/switchyard.sqlite")
        let row = { (id: String, cost: Double) in
            LedgerRow(
                requestId: id, at: Date().timeIntervalSince1970, tenant: self.tenant.id, keyId: self.key.id, route: "r", provider: "p", model: "m",
                outcome: "success", status: 200, inputTokens: 10, cachedTokens: 0, outputTokens: 5, reasoningTokens: 0, costUsd: cost, latencyMs: 1,
                ttftMs: nil, cache: "miss", attempts: 1
            )
        }
        try await ledger.append([row("a", 0.25), row("b", 0.35)][...])
        #expect(try await stores[0].seedSpend(from: ledger, replica: "r1") == 2)
        // Once per Redis lifetime for a replica: its settlements reach Redis one by one after that.
        #expect(try await stores[1].seedSpend(from: ledger, replica: "r1") == 0)
        let (day, month) = BudgetCalendar.shared.dayAndMonth()
        let budget = AdmissionRequest(subjects: [(self.tenant, LimitSettings(dailyBudgetUSD: 1.0)), (self.key, LimitSettings())], reservedTokens: 1, reservedCost: 0.5)
        guard case .failure(let refusal) = await stores[1].admit(budget, at: .now, day: day, month: month) else {
            Issue.record("$0.60 spent before Redis knew of it, and $0.50 more was admitted against a $1.00 budget")
            return
        }
        #expect(refusal.kind == .budget && refusal.message.contains("spent $0.6,"), "\(refusal.message)")

        // Redis restarts empty: a new lifetime, and the ledger goes in again.
        server.stop()
        try await server.start()
        #expect(try await eventually { (try? await stores[0].seedSpend(from: ledger, replica: "r1")) == 2 })
        guard case .failure = await stores[1].admit(budget, at: .now, day: day, month: month) else {
            Issue.record("after Redis restarted empty, the budget forgot what was spent")
            return
        }
    }

    @Test func everyKeyOfARequestSharesItsTenantsHashTag() {
        let keys = RedisQuotaStore.keys([self.tenant, self.key], day: self.day, month: self.month)
        #expect(keys.count == 2 * QuotaScripts.keysPerSubject)
        #expect(keys.allSatisfy { $0.hasPrefix("sy:{tenant:acme%7B1%7D%3Ax}:") })
        #expect(keys[8] == "sy:{tenant:acme%7B1%7D%3Ax}:key:k1:rpm")
        #expect(keys.contains("sy:{tenant:acme%7B1%7D%3Ax}:key:k1:spent:2026-12"))
    }

    @Test func aFlushPatternTakesNamesLiterallyAndNeverMatchesLimits() {
        #expect(SharedAnswerCache.pattern(tenant: nil, route: nil) == "sy:{*}:cache:*")
        #expect(SharedAnswerCache.pattern(tenant: "a*c[1]", route: nil) == #"sy:{tenant%3Aa\*c\[1\]}:cache:*"#)
        #expect(SharedAnswerCache.pattern(tenant: "acme", route: "gpt:4o?") == #"sy:{tenant%3Aacme}:cache:gpt%3A4o\?:*"#)
        // A tenant named "cache": its limits' keys put the subject's kind after the tag, never "cache".
        let limits = RedisQuotaStore.keys([QuotaSubject(.tenant, "cache")], day: self.day, month: self.month)
        #expect(limits.allSatisfy { !$0.contains("}:cache:") })
    }
}
