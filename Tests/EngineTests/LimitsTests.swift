import Engine
import Foundation
import Testing

struct GCRATests {
    @Test func aBurstOfTheLimitThenOneAnInterval() {
        var clock = FakeClock()
        var limiter = GCRA(limit: 60, period: .seconds(60))
        var admitted = 0
        for _ in 0..<100 {
            let decision = limiter.check(at: clock.now)
            if decision.allowed {
                limiter.take(at: clock.now)
                admitted += 1
            }
        }
        #expect(admitted == 60)
        let refused = limiter.check(at: clock.now)
        #expect(!refused.allowed && refused.retryAfter == .seconds(1) && refused.remaining == 0)
        clock.advance(.milliseconds(999))
        #expect(!limiter.check(at: clock.now).allowed)
        clock.advance(.milliseconds(1))
        #expect(limiter.check(at: clock.now).allowed)
        // A minute idle refills the whole burst.
        clock.advance(.seconds(60))
        #expect(limiter.check(at: clock.now).remaining == 59)
    }

    @Test func overAnyWindowAtMostLimitPlusTheElapsedShare() {
        var clock = FakeClock()
        var limiter = GCRA(limit: 600, period: .seconds(60))
        var admitted = 0
        for _ in 0..<3_000 {
            if limiter.check(at: clock.now).allowed {
                limiter.take(at: clock.now)
                admitted += 1
            }
            clock.advance(.milliseconds(10))
        }
        // 30 s at 10 per second after a burst of 600.
        #expect(admitted <= 600 + 300 + 1 && admitted >= 600 + 299)
    }
}

struct TokenBucketTests {
    @Test func reservationsAreSettledToActualUse() {
        var clock = FakeClock()
        var bucket = TokenBucket(capacity: 1_000, period: .seconds(60))
        #expect(bucket.check(800, at: clock.now).allowed)
        bucket.take(800, at: clock.now)
        #expect(!bucket.check(300, at: clock.now).allowed)
        bucket.settle(reserved: 800, actual: 100, at: clock.now)
        #expect(bucket.check(800, at: clock.now).allowed)
        // An overrun is a debt that delays the next requests.
        bucket.take(800, at: clock.now)
        bucket.settle(reserved: 800, actual: 1_500, at: clock.now)
        let refused = bucket.check(100, at: clock.now)
        #expect(!refused.allowed && (refused.retryAfter ?? .zero) > .seconds(30))
        // The debt of 600 and a full refill: a minute brings it to 400, two to full.
        clock.advance(.seconds(60))
        #expect(bucket.check(400, at: clock.now).allowed && !bucket.check(401, at: clock.now).allowed)
        clock.advance(.seconds(60))
        #expect(bucket.check(1_000, at: clock.now).allowed)
        #expect(!bucket.check(1_001, at: clock.now).allowed)
    }
}

struct QuotaBookTests {
    static let tenant = QuotaSubject(.tenant, "acme")
    static let key = QuotaSubject(.key, "key_1")

    func request(tenant: LimitSettings = LimitSettings(), key: LimitSettings = LimitSettings(), tokens: Int = 100, cost: Double = 0.1) -> AdmissionRequest {
        AdmissionRequest(subjects: [(Self.tenant, tenant), (Self.key, key)], reservedTokens: tokens, reservedCost: cost)
    }

    @Test func theStricterOfTenantAndKeyWinsAndNothingIsHalfTaken() {
        var book = QuotaBook()
        let now = ContinuousClock.now
        let request = self.request(tenant: LimitSettings(requestsPerMinute: 100), key: LimitSettings(requestsPerMinute: 2))
        for _ in 0..<2 { #expect((try? book.admit(request, at: now, day: "d", month: "m").get()) != nil) }
        guard case .failure(let rejection) = book.admit(request, at: now, day: "d", month: "m") else {
            Issue.record("a third request got in")
            return
        }
        #expect(rejection.kind == .requests && rejection.message.contains("key 'key_1'"))
        // The tenant's limit was not charged for the refused request.
        #expect(book.usage(of: Self.tenant)?.requestsToday == 2)
        #expect(rejection.report.requests?.remaining == 0 && rejection.report.requests?.limit == 2)
    }

    @Test func budgetsReserveTheWorstCaseAndSettleToTheActual() {
        var book = QuotaBook()
        let now = ContinuousClock.now
        let request = self.request(tenant: LimitSettings(dailyBudgetUSD: 1), cost: 0.4)
        var tickets: [AdmissionTicket] = []
        for _ in 0..<2 { if case .success(let ticket) = book.admit(request, at: now, day: "d", month: "m") { tickets.append(ticket) } }
        #expect(tickets.count == 2)
        // 0.8 reserved: a third 0.4 would pass the budget.
        guard case .failure(let rejection) = book.admit(request, at: now, day: "d", month: "m") else {
            Issue.record("overspent")
            return
        }
        #expect(rejection.kind == .budget && rejection.message.contains("Daily budget of $1.0"))
        book.settle(tickets[0], tokens: 50, cost: 0.05, at: now, day: "d", month: "m")
        #expect(book.usage(of: Self.tenant)?.spentToday == 0.05)
        #expect((try? book.admit(request, at: now, day: "d", month: "m").get()) != nil)
        // The next day starts afresh; the month does not.
        book.settle(tickets[1], tokens: 50, cost: 0.3, at: now, day: "d", month: "m")
        #expect((try? book.admit(self.request(tenant: LimitSettings(dailyBudgetUSD: 1, monthlyBudgetUSD: 0.5), cost: 0.1), at: now, day: "d2", month: "m").get()) == nil)
        #expect(book.usage(of: Self.tenant)?.spentToday == 0)
    }

    @Test func concurrencyAndTokensPerMinute() {
        var book = QuotaBook()
        let now = ContinuousClock.now
        let request = self.request(key: LimitSettings(tokensPerMinute: 1_000, concurrency: 2), tokens: 300)
        let first = try? book.admit(request, at: now, day: "d", month: "m").get()
        let second = try? book.admit(request, at: now, day: "d", month: "m").get()
        guard case .failure(let busy) = book.admit(request, at: now, day: "d", month: "m") else {
            Issue.record("a third in flight")
            return
        }
        #expect(busy.kind == .concurrency)
        if let first { book.settle(first, tokens: 300, cost: 0, at: now, day: "d", month: "m") }
        if let second { book.settle(second, tokens: 300, cost: 0, at: now, day: "d", month: "m") }
        _ = try? book.admit(request, at: now, day: "d", month: "m").get()
        guard case .failure(let tokens) = book.admit(request, at: now, day: "d", month: "m") else {
            Issue.record("past the token limit")
            return
        }
        #expect(tokens.kind == .tokens && tokens.report.tokens?.limit == 1_000)
        let huge = self.request(key: LimitSettings(tokensPerMinute: 1_000), tokens: 5_000)
        var fresh = QuotaBook()
        guard case .failure(let never) = fresh.admit(huge, at: now, day: "d", month: "m") else {
            Issue.record("a request larger than the limit got in")
            return
        }
        #expect(never.message.contains("more than the whole limit"))
    }
}

struct PriceTests {
    @Test func costCountsCachedAndWrittenTokensAtTheirOwnRates() {
        let sonnet = PriceTable.builtIn.price(for: "claude-sonnet-4-5-20250929")
        #expect(sonnet?.input == 3)
        let usage = Usage(inputTokens: 1_000_000, cachedInputTokens: 500_000, cacheWriteInputTokens: 100_000, outputTokens: 100_000)
        // 400k fresh × 3 + 500k cached × 0.30 + 100k written × 3.75 + 100k out × 15
        #expect(abs((sonnet?.cost(usage) ?? 0) - (1.2 + 0.15 + 0.375 + 1.5)) < 1e-9)
    }

    @Test func lookupsStripDatesVendorsAndFallBackToPrefixes() {
        let table = PriceTable.builtIn
        #expect(table.price(for: "gpt-4o-2024-08-06") == table.price(for: "gpt-4o"))
        #expect(table.price(for: "openai/gpt-4o-mini") == table.price(for: "gpt-4o-mini"))
        #expect(table.price(for: "GPT-4o") == table.price(for: "gpt-4o"))
        #expect(table.price(for: "llama3.2") == nil)
        #expect(table.entries.values.allSatisfy { $0.checked == "2025-10-01" })
    }

    @Test func theLiteLLMFormatLoads() throws {
        let json = try JSONValue.parse("""
            {"sample_spec": {"input_cost_per_token": 0},
             "gpt-4o": {"input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05, "cache_read_input_token_cost": 1.25e-06, "mode": "chat"},
             "dall-e-3": {"mode": "image_generation"},
             "text-embedding-3-small": {"input_cost_per_token": 2e-08, "mode": "embedding"}}
            """)
        let (table, skipped) = PriceTable.liteLLM(json)
        #expect(skipped == 1)
        let price = try #require(table.price(for: "gpt-4o"))
        #expect(abs(price.input - 2.5) < 1e-9 && abs(price.output - 10) < 1e-9 && abs(price.cachedInput - 1.25) < 1e-9)
        #expect(table.price(for: "text-embedding-3-small")?.output == 0)
    }

    /// The public LiteLLM table in `../shared/data` (not part of this repository) when it is there.
    @Test func theSharedLiteLLMTableLoadsWhenPresent() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../../shared/data/litellm-model_prices_and_context_window.json").standardized.path
        guard let data = FileManager.default.contents(atPath: path) else { return }
        let json = try JSONValue.parse(String(decoding: data, as: UTF8.self))
        let (table, _) = PriceTable.liteLLM(json)
        let count = table.entries.count
        #expect(count > 500)
        let gpt = table.price(for: "gpt-4o-mini")
        #expect((gpt?.input ?? 0) > 0 && (gpt?.output ?? 0) > (gpt?.input ?? 0))
        let claude = table.price(for: "anthropic.claude-3-haiku-20240307-v1:0")
        #expect((claude?.cacheWrite ?? 0) > (claude?.input ?? 0) && (claude?.cachedInput ?? 1) < (claude?.input ?? 0))
    }
}

struct TenantConfigTests {
    @Test func tenantsKeysAndPricesLoad() throws {
        let yaml = """
            server: { anonymous: false, budget_status: 402 }
            providers: { sim: { kind: simulator } }
            routes: { r: { targets: [{ provider: sim, model: m }] } }
            tenants:
              acme:
                limits: { rpm: 600, tpm: 200000, concurrency: 20 }
                budget: { daily_usd: 50, monthly_usd: 1000 }
                models: [r, "claude-*"]
                keys:
                  ci: { key: "sk-sy-0123456789abcdef0123", limits: { rpm: 60 } }
            prices:
              m: { input: 1, output: 2 }
            """
        let config = try ConfigLoader.load(yaml: yaml, source: "t.yaml", environment: [:])
        #expect(!config.server.anonymous && config.server.budgetStatus == 402)
        let acme = try #require(config.tenant("acme"))
        #expect(acme.limits == LimitSettings(requestsPerMinute: 600, tokensPerMinute: 200_000, concurrency: 20, dailyBudgetUSD: 50, monthlyBudgetUSD: 1_000))
        #expect(acme.models == ["r", "claude-*"] && acme.keys.first?.limits.requestsPerMinute == 60)
        #expect(config.priceTable.price(for: "m")?.output == 2)
        #expect(config.price(of: RouteTarget(provider: "sim", model: "m"), in: config.priceTable)?.input == 1)
    }
}

/// A client connection's timeouts, tick by tick, without a network.
struct ClientPacingTests {
    private let start = ContinuousClock.now
    private var limits: ClientLimits {
        var limits = ClientLimits()
        limits.headerTimeout = .seconds(10)
        limits.bodyGrace = .seconds(10)
        limits.bodyMinRate = 1000
        limits.idleTimeout = .seconds(60)
        return limits
    }

    private func at(_ seconds: Double) -> ContinuousClock.Instant {
        self.start + .milliseconds(Int(seconds * 1000))
    }

    @Test func aConnectionThatSendsNothingRunsOutOfHeaderTime() {
        var pacing = ClientPacing(acceptedAt: self.start)
        #expect(pacing.check(.head, requests: 0, bodyReceived: 0, now: self.at(9.9), limits: self.limits) == nil)
        #expect(pacing.check(.head, requests: 0, bodyReceived: 0, now: self.at(9.95), limits: self.limits) == nil)
        #expect(pacing.check(.head, requests: 0, bodyReceived: 0, now: self.at(10), limits: self.limits) == .header)
    }

    @Test func aBodyMustKeepUpWithTheMinimumRateAfterTheGrace() {
        var pacing = ClientPacing(acceptedAt: self.start)
        #expect(pacing.check(.body, requests: 1, bodyReceived: 0, now: self.at(1), limits: self.limits) == nil)
        // Nothing within the grace, then 1000 bytes a second on average since the head.
        #expect(pacing.check(.body, requests: 1, bodyReceived: 0, now: self.at(10.5), limits: self.limits) == nil)
        #expect(pacing.check(.body, requests: 1, bodyReceived: 2000, now: self.at(13), limits: self.limits) == nil)
        #expect(pacing.check(.body, requests: 1, bodyReceived: 2000, now: self.at(13.5), limits: self.limits) == .body)
        // Bytes that came with the head count: a body sent whole is never too slow.
        var whole = ClientPacing(acceptedAt: self.start)
        _ = whole.check(.body, requests: 1, bodyReceived: 5000, now: self.at(1), limits: self.limits)
        #expect(whole.check(.body, requests: 1, bodyReceived: 5000, now: self.at(15.9), limits: self.limits) == nil)
    }

    @Test func anUpstreamAtWorkIsNeverTheClientsTimeout() {
        var pacing = ClientPacing(acceptedAt: self.start)
        _ = pacing.check(.answering, requests: 1, bodyReceived: 0, now: self.at(1), limits: self.limits)
        #expect(pacing.check(.answering, requests: 1, bodyReceived: 0, now: self.at(3600), limits: self.limits) == nil)
        // The idle time starts when the answer ended, not when the request came.
        #expect(pacing.check(.idle, requests: 1, bodyReceived: 0, now: self.at(3601), limits: self.limits) == nil)
        #expect(pacing.check(.idle, requests: 1, bodyReceived: 0, now: self.at(3660), limits: self.limits) == nil)
        #expect(pacing.check(.idle, requests: 1, bodyReceived: 0, now: self.at(3661), limits: self.limits) == .idle)
    }

    @Test func aNewRequestStartsItsStageAfresh() {
        var pacing = ClientPacing(acceptedAt: self.start)
        _ = pacing.check(.idle, requests: 1, bodyReceived: 0, now: self.at(1), limits: self.limits)
        // Requests came and went between two ticks: the keep-alive connection is busy, not idle.
        #expect(pacing.check(.idle, requests: 3, bodyReceived: 0, now: self.at(60), limits: self.limits) == nil)
        #expect(pacing.check(.idle, requests: 3, bodyReceived: 0, now: self.at(119), limits: self.limits) == nil)
        #expect(pacing.check(.idle, requests: 3, bodyReceived: 0, now: self.at(120), limits: self.limits) == .idle)
    }
}
