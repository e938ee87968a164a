/// The immutable routing snapshot: rules, and client-visible model names to their routes.
/// Built once per config and swapped whole, so a request never sees half of an update.
public final class RouteTable: Sendable {
    public let routes: [String: RouteSettings]
    /// Aliases in config order, for `/v1/models` and error messages.
    public let aliases: [String]
    public let rules: [RouteRule]
    /// Whether routing needs the body's content features (prompt size, tools, images): only when a
    /// rule or a `cost` route asks, so the fast path does not pay for them otherwise.
    public let needsContentFeatures: Bool

    public init(_ routes: [RouteSettings], rules: [RouteRule] = []) {
        self.routes = Dictionary(routes.map { ($0.alias, $0) }, uniquingKeysWith: { first, _ in first })
        self.aliases = routes.map(\.alias)
        self.rules = rules
        self.needsContentFeatures = rules.contains { $0.conditions.needsContent } || routes.contains { $0.strategy == .cost }
    }

    /// The route for a request: the first matching rule's, else the one named by the model.
    /// - Throws: `unknownModel` (404) listing the known aliases.
    public func route(for request: RequestFeatures) throws(GatewayError) -> RouteSettings {
        for rule in self.rules where rule.conditions.matches(request) {
            if let route = self.routes[rule.route] { return route }
        }
        guard let route = self.routes[request.model] else {
            throw .unknownModel(request.model, known: self.aliases)
        }
        return route
    }

    /// Plans a request: the route's healthy targets in the order to try them (best priority tier
    /// first, each tier ordered by the strategy), then its fallback routes', and apart, the
    /// context-window fallback's.
    /// - Throws: `unknownModel`, or `noHealthyTarget` (503) when nothing can take it now.
    public func plan(
        _ request: RequestFeatures,
        health: RoutingHealth,
        at now: ContinuousClock.Instant,
        using random: inout some RandomNumberGenerator
    ) throws(GatewayError) -> FailoverPlan {
        let route = try self.route(for: request)
        // The common case, one target and nowhere else to go, without the chain's bookkeeping.
        if route.targets.count == 1, route.fallbacks.isEmpty, route.contextFallback == nil {
            let target = route.targets[0]
            guard health.unavailability(of: target.key, at: now) == nil else {
                throw .noHealthyTarget(route: route.alias, retryAfterSeconds: self.soonestReturn(route, health: health, now: now))
            }
            return FailoverPlan(route: route, candidates: [PlannedTarget(route: route.alias, target: target)], contextCandidates: [], startedAt: now)
        }
        var seen = Set<TargetKey>()
        var visited = Set<String>()
        let candidates = self.chain(route, request: request, health: health, now: now, seen: &seen, visited: &visited, using: &random)
        guard !candidates.isEmpty else {
            throw .noHealthyTarget(route: route.alias, retryAfterSeconds: self.soonestReturn(route, health: health, now: now))
        }
        var contextCandidates: [PlannedTarget] = []
        if let alias = route.contextFallback, let larger = self.routes[alias] {
            var contextSeen = Set<TargetKey>()
            var contextVisited = Set<String>()
            contextCandidates = self.chain(larger, request: request, health: health, now: now, seen: &contextSeen, visited: &contextVisited, using: &random)
        }
        return FailoverPlan(route: route, candidates: candidates, contextCandidates: contextCandidates, startedAt: now)
    }

    /// Plans a request that continues a conversation one provider keeps (a Responses API follow-up):
    /// only that provider can continue it, so only the route's targets on it are tried, the model
    /// that created it first, and nothing else is failed over to.
    /// - Throws: `previousResponseElsewhere` when the route reaches that provider nowhere (its
    ///   fallbacks included), `noHealthyTarget` when it does but none of those targets can take it now.
    public func plan(
        _ request: RequestFeatures,
        heldBy provider: String,
        model: String,
        responseID: String,
        health: RoutingHealth,
        at now: ContinuousClock.Instant,
        using random: inout some RandomNumberGenerator
    ) throws(GatewayError) -> FailoverPlan {
        let route = try self.route(for: request)
        var visited = Set<String>()
        guard self.reaches(provider, from: route, visited: &visited) else {
            throw .previousResponseElsewhere(responseID, provider: provider, route: route.alias)
        }
        var seen = Set<TargetKey>()
        visited = []
        let candidates = self.chain(route, request: request, health: health, now: now, seen: &seen, visited: &visited, using: &random)
            .filter { $0.provider == provider }
        guard !candidates.isEmpty else {
            throw .noHealthyTarget(route: route.alias, retryAfterSeconds: self.soonestReturn(route, health: health, now: now))
        }
        let ordered = candidates.filter { $0.upstreamModel == model } + candidates.filter { $0.upstreamModel != model }
        return FailoverPlan(route: route, candidates: ordered, contextCandidates: [], startedAt: now)
    }

    /// Whether `route` or one of its fallbacks has a target on `provider`.
    private func reaches(_ provider: String, from route: RouteSettings, visited: inout Set<String>) -> Bool {
        guard visited.insert(route.alias).inserted else { return false }
        if route.targets.contains(where: { $0.provider == provider }) { return true }
        return route.fallbacks.contains { alias in self.routes[alias].map { self.reaches(provider, from: $0, visited: &visited) } ?? false }
    }

    private func chain(
        _ route: RouteSettings,
        request: RequestFeatures,
        health: RoutingHealth,
        now: ContinuousClock.Instant,
        seen: inout Set<TargetKey>,
        visited: inout Set<String>,
        using random: inout some RandomNumberGenerator
    ) -> [PlannedTarget] {
        guard visited.insert(route.alias).inserted else { return [] }
        // The common case, one target and nowhere else to go, without the sorting machinery.
        if route.targets.count == 1 && route.fallbacks.isEmpty {
            let target = route.targets[0]
            guard health.unavailability(of: target.key, at: now) == nil, seen.insert(target.key).inserted else { return [] }
            return [PlannedTarget(route: route.alias, target: target)]
        }
        var planned: [PlannedTarget] = []
        let available = route.targets.filter { health.unavailability(of: $0.key, at: now) == nil }
        for tier in Set(available.map(\.priority)).sorted() {
            let members = available.filter { $0.priority == tier }
            for target in Balancer.order(members, strategy: route.strategy, health: health, request: request, using: &random)
            where seen.insert(target.key).inserted {
                planned.append(PlannedTarget(route: route.alias, target: target))
            }
        }
        for alias in route.fallbacks {
            guard let fallback = self.routes[alias] else { continue }
            planned += self.chain(fallback, request: request, health: health, now: now, seen: &seen, visited: &visited, using: &random)
        }
        return planned
    }

    /// Seconds until the first of the route's targets is back, when a rest or breaker says.
    private func soonestReturn(_ route: RouteSettings, health: RoutingHealth, now: ContinuousClock.Instant) -> Int? {
        let returns = route.targets.compactMap { health.unavailability(of: $0.key, at: now)?.until }
        guard let soonest = returns.min() else { return nil }
        return max(1, Int((soonest - now).seconds.rounded(.up)))
    }
}

/// One target as planned for a request, with the route it came from (its own or a fallback).
public struct PlannedTarget: Sendable, Equatable {
    public let route: String
    public let target: RouteTarget

    public var key: TargetKey { self.target.key }
    public var provider: String { self.target.provider }
    /// The model name sent upstream.
    public var upstreamModel: String { self.target.model }
}
