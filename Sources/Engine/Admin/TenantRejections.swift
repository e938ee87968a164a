/// Per tenant, today's refusals by reason and the last few of them: what the console's tenant view
/// shows beside spend. Kept in memory per replica, so its size is bounded by the tenants (declared in
/// the config or by keys) times a handful, whatever the traffic.
public struct TenantRejections: Sendable {
    /// The last refusals kept per tenant.
    public static let kept = 8
    /// A refusal's message is cut here: it came from a request.
    static let longestMessage = 200

    private var day = ""
    private var counts: [String: [String: Int]] = [:]
    private var recent: [String: [AdminRejection]] = [:]

    public init() {}

    /// Records one refusal on `day` (the UTC day budgets count in); a new day starts the counts afresh.
    public mutating func record(tenant: String, _ rejection: AdminRejection, day: String) {
        if day != self.day {
            self.day = day
            self.counts = [:]
        }
        var rejection = rejection
        if rejection.message.count > Self.longestMessage { rejection.message = String(rejection.message.prefix(Self.longestMessage)) + "…" }
        self.counts[tenant, default: [:]][rejection.reason, default: 0] += 1
        var last = self.recent[tenant, default: []]
        last.insert(rejection, at: 0)
        if last.count > Self.kept { last.removeLast(last.count - Self.kept) }
        self.recent[tenant] = last
    }

    /// Today's counts by reason; empty on a day with none.
    public func byReason(_ tenant: String, day: String) -> [String: Int] {
        day == self.day ? self.counts[tenant] ?? [:] : [:]
    }

    /// The last refusals, newest first (yesterday's too: they are still the last ones).
    public func last(_ tenant: String) -> [AdminRejection] {
        self.recent[tenant] ?? []
    }

    /// Forgets tenants no longer known, so a reload that removes tenants frees their entries.
    public mutating func keep(only tenants: Set<String>) {
        self.counts = self.counts.filter { tenants.contains($0.key) }
        self.recent = self.recent.filter { tenants.contains($0.key) }
    }
}
