/// The rolling numbers behind the admin snapshot: the whole gateway over 15 minutes, each route and
/// each target over one minute. A value the server keeps behind a lock; time comes in as whole
/// seconds of a monotonic clock.
public struct GatewayTelemetry: Sendable {
    public static let windows = [("10s", 10), ("1m", 60), ("15m", 900)]

    private var gateway = RollingWindow(span: 900)
    private var routes: [String: RollingWindow] = [:]
    private var targets: [TargetKey: RollingWindow] = [:]

    public init() {}

    /// - Parameters:
    ///   - route: the route that served it (nil when it never got that far: a bad body, an unknown model).
    ///   - target: the target that answered, when one did.
    public mutating func record(_ outcome: RequestOutcome, route: String?, target: TargetKey?, at second: Int64) {
        self.gateway.record(outcome, at: second)
        if let route { self.routes[route, default: RollingWindow(span: 60)].record(outcome, at: second) }
        if let target { self.targets[target, default: RollingWindow(span: 60)].record(outcome, at: second) }
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
    }
}
