/// The immutable routing snapshot: client-visible model names to ordered upstream targets.
/// Built once per config and swapped whole, so a request never sees half of an update.
public final class RouteTable: Sendable {
    public struct Resolved: Sendable, Equatable {
        public let alias: String
        public let provider: String
        public let upstreamModel: String
    }

    private let routes: [String: RouteSettings]
    /// Aliases in config order, for `/v1/models` and error messages.
    public let aliases: [String]

    public init(_ routes: [RouteSettings]) {
        self.routes = Dictionary(routes.map { ($0.alias, $0) }, uniquingKeysWith: { first, _ in first })
        self.aliases = routes.map(\.alias)
    }

    /// Picks the target for `model`.
    /// - Parameter random: yields a number in 0..<1, asked only when a weighted choice has to be made
    ///   (so single-target routes cost no random draw); injected so tests are deterministic.
    /// - Throws: `unknownModel` (404) listing the known aliases.
    public func resolve(_ model: String, random: () -> Double = { Double.random(in: 0..<1) }) throws(GatewayError) -> Resolved {
        guard let route = self.routes[model] else {
            throw .unknownModel(model, known: self.aliases)
        }
        guard let target = Self.choose(route, random: random) else {
            throw .noHealthyTarget(route: model)
        }
        return Resolved(alias: model, provider: target.provider, upstreamModel: target.model)
    }

    /// `priority`: the first target of the lowest priority number.
    /// `weighted`: among the lowest priority number, by weight.
    static func choose(_ route: RouteSettings, random: () -> Double) -> RouteTarget? {
        if route.targets.count == 1 { return route.targets[0].weight > 0 || route.strategy == .priority ? route.targets[0] : nil }
        guard let best = route.targets.map(\.priority).min() else { return nil }
        let tier = route.targets.filter { $0.priority == best }
        switch route.strategy {
        case .priority:
            return tier.first
        case .weighted:
            let total = tier.reduce(0) { $0 + $1.weight }
            guard total > 0 else { return nil }
            var point = random() * Double(total)
            for target in tier where target.weight > 0 {
                point -= Double(target.weight)
                if point < 0 { return target }
            }
            return tier.last { $0.weight > 0 }
        }
    }
}
