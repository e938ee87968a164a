/// The rolling numbers behind the admin snapshot: the whole gateway over 15 minutes, each route and
/// each target over one minute. A value the server keeps behind a lock; time comes in as whole
/// seconds of a monotonic clock.
public struct GatewayTelemetry: Sendable {
    public static let windows = [("10s", 10), ("1m", 60), ("15m", 900)]

    private var gateway = RollingWindow(span: 900)
    private var routes: [String: RollingWindow] = [:]
    private var targets: [TargetKey: RollingWindow] = [:]
    /// Every attempt at each target, the ones another target then answered for included: a target
    /// failing behind a failover shows its errors here, not in the requests it did not serve.
    private var attempts: [TargetKey: AttemptCounts] = [:]

    public init() {}

    /// - Parameters:
    ///   - route: the route that served it (nil when it never got that far: a bad body, an unknown model).
    ///   - target: the target that answered, when one did.
    public mutating func record(_ outcome: RequestOutcome, route: String?, target: TargetKey?, at second: Int64) {
        self.gateway.record(outcome, at: second)
        if let route { self.routes[route, default: RollingWindow(span: 60)].record(outcome, at: second) }
        if let target { self.targets[target, default: RollingWindow(span: 60)].record(outcome, at: second) }
    }

    public mutating func recordAttempt(at target: TargetKey, failed: Bool, second: Int64) {
        self.attempts[target, default: AttemptCounts()].record(failed: failed, at: second)
    }

    /// Attempts at `target` over the last minute, and how many failed.
    public func attempts(_ key: TargetKey, now: Int64) -> (total: Int, failed: Int) {
        self.attempts[key]?.counts(now: now) ?? (0, 0)
    }

    /// The gateway's windows, keyed "10s", "1m", "15m".
    public func gatewayWindows(now: Int64) -> [String: WindowSummary] {
        Dictionary(uniqueKeysWithValues: Self.windows.map { ($0.0, self.gateway.summary(last: $0.1, now: now)) })
    }

    public func route(_ alias: String, now: Int64) -> WindowSummary? {
        self.routes[alias]?.summary(last: 60, now: now)
    }

    public func target(_ key: TargetKey, now: Int64) -> WindowSummary? {
        self.targets[key]?.summary(last: 60, now: now)
    }

    /// Forgets routes and targets that no longer exist (after a reload), so memory stays bounded.
    public mutating func keep(routes aliases: Set<String>, targets keys: Set<TargetKey>) {
        self.routes = self.routes.filter { aliases.contains($0.key) }
        self.targets = self.targets.filter { keys.contains($0.key) }
        self.attempts = self.attempts.filter { keys.contains($0.key) }
    }

    /// Attempts and failed ones per second over the last minute, in a ring of 60 buckets.
    private struct AttemptCounts: Sendable {
        private var seconds = [Int64](repeating: -1, count: 60)
        private var totals = [Int](repeating: 0, count: 60)
        private var failures = [Int](repeating: 0, count: 60)

        mutating func record(failed: Bool, at second: Int64) {
            let slot = Int(second.magnitude % 60)
            if self.seconds[slot] != second {
                self.seconds[slot] = second
                self.totals[slot] = 0
                self.failures[slot] = 0
            }
            self.totals[slot] += 1
            if failed { self.failures[slot] += 1 }
        }

        func counts(now: Int64) -> (total: Int, failed: Int) {
            var total = 0
            var failed = 0
            for slot in 0..<60 where self.seconds[slot] > now - 60 && self.seconds[slot] <= now {
                total += self.totals[slot]
                failed += self.failures[slot]
            }
            return (total, failed)
        }
    }
}
