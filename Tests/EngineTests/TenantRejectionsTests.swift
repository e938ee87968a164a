import Engine
import Testing

struct TenantRejectionsTests {
    static func refusal(_ reason: String, at time: Double, message: String = "limit reached") -> AdminRejection {
        AdminRejection(time: time, reason: reason, status: 429, message: message)
    }

    @Test func countsByReasonPerTenantAndStartsAfreshEachDay() {
        var book = TenantRejections()
        book.record(tenant: "acme", Self.refusal("rate_limited", at: 1), day: "2026-12-06")
        book.record(tenant: "acme", Self.refusal("rate_limited", at: 2), day: "2026-12-06")
        book.record(tenant: "acme", Self.refusal("budget_exceeded", at: 3), day: "2026-12-06")
        book.record(tenant: "globex", Self.refusal("rate_limited", at: 4), day: "2026-12-06")
        #expect(book.byReason("acme", day: "2026-12-06") == ["rate_limited": 2, "budget_exceeded": 1])
        #expect(book.byReason("globex", day: "2026-12-06") == ["rate_limited": 1])
        #expect(book.byReason("acme", day: "2026-12-07").isEmpty, "read on a new day: nothing yet")

        book.record(tenant: "acme", Self.refusal("rate_limited", at: 90_000), day: "2026-12-07")
        #expect(book.byReason("acme", day: "2026-12-07") == ["rate_limited": 1])
        #expect(book.byReason("globex", day: "2026-12-07").isEmpty)
        #expect(book.last("acme").map(\.time) == [90_000, 3, 2, 1], "the last ones stay, newest first, across the day")
    }

    @Test func keepsAFewOfTheLastAndCutsLongMessages() {
        var book = TenantRejections()
        for index in 0..<100 {
            book.record(tenant: "acme", Self.refusal("rate_limited", at: Double(index), message: String(repeating: "x", count: 10_000)), day: "d")
        }
        let last = book.last("acme")
        #expect(last.count == TenantRejections.kept && last.first?.time == 99)
        #expect(last.allSatisfy { $0.message.count <= 201 })
        #expect(book.byReason("acme", day: "d") == ["rate_limited": 100])
    }

    @Test func forgetsTenantsNoLongerKnown() {
        var book = TenantRejections()
        book.record(tenant: "gone", Self.refusal("rate_limited", at: 1), day: "d")
        book.record(tenant: "kept", Self.refusal("rate_limited", at: 1), day: "d")
        book.keep(only: ["kept"])
        #expect(book.last("gone").isEmpty && book.byReason("gone", day: "d").isEmpty)
        #expect(book.last("kept").count == 1)
    }
}
