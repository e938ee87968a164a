import Foundation

/// Orders the healthy targets of one priority tier by the route's strategy: the first is the pick,
/// the rest are the order failover tries them in.
public enum Balancer {
    /// Output tokens assumed for the `cost` strategy when the request sets no `max_tokens`.
    public static let assumedOutputTokens = 256

    public static func order(
        _ targets: [RouteTarget],
        strategy: RouteStrategy,
        health: RoutingHealth,
        request: RequestFeatures,
        using random: inout some RandomNumberGenerator
    ) -> [RouteTarget] {
        guard targets.count > 1 else { return targets }
        switch strategy {
        case .priority:
            return targets
        case .weighted:
            return self.weightedOrder(targets, using: &random)
        case .leastBusy:
            return self.twoChoicesFirst(targets, using: &random) { Double(health[$0.key]?.load ?? 0) }
        case .latency:
            return self.twoChoicesFirst(targets, using: &random) { target in
                let state = health[target.key]
                let estimate = request.streaming ? state?.timeToFirstToken.value : state?.totalLatency.value
                // An unmeasured target scores 0, so it gets tried (and measured) soon.
                return (estimate ?? 0) * Double((state?.load ?? 0) + 1)
            }
        case .cost:
            let output = request.maxTokens ?? self.assumedOutputTokens
            let shuffled = self.weightedOrder(targets, using: &random)
            // Stable sort over a weighted shuffle: equal prices share traffic by weight.
            return shuffled.enumerated().sorted { lhs, rhs in
                let left = lhs.element.price?.cost(inputTokens: request.promptTokens, outputTokens: output) ?? .infinity
                let right = rhs.element.price?.cost(inputTokens: request.promptTokens, outputTokens: output) ?? .infinity
                return left == right ? lhs.offset < rhs.offset : left < right
            }.map(\.element)
        }
    }

    /// Weighted random order without replacement (Efraimidis–Spirakis keys `u^(1/w)`): the first
    /// element is a weighted pick, and the rest keep the proportions among themselves. Weight-0
    /// targets come last, in config order: they only take traffic when the others cannot.
    static func weightedOrder(_ targets: [RouteTarget], using random: inout some RandomNumberGenerator) -> [RouteTarget] {
        var keyed: [(key: Double, target: RouteTarget)] = []
        var idle: [RouteTarget] = []
        for target in targets {
            guard target.weight > 0 else {
                idle.append(target)
                continue
            }
            let draw = Double.random(in: Double.leastNonzeroMagnitude..<1, using: &random)
            keyed.append((pow(draw, 1 / Double(target.weight)), target))
        }
        return keyed.sorted { $0.key > $1.key }.map(\.target) + idle
    }

    /// Power of two choices: of two targets drawn at random, the lower score goes first; the rest
    /// follow by score. Two random draws avoid the herd that "always the least" causes when many
    /// requests arrive before the scores move.
    static func twoChoicesFirst(_ targets: [RouteTarget], using random: inout some RandomNumberGenerator, score: (RouteTarget) -> Double) -> [RouteTarget] {
        let first = Int.random(in: 0..<targets.count, using: &random)
        var second = Int.random(in: 0..<(targets.count - 1), using: &random)
        if second >= first { second += 1 }
        let pick = score(targets[second]) < score(targets[first]) ? second : first
        var rest = targets
        let chosen = rest.remove(at: pick)
        let tieBreak = rest.map { _ in UInt64.random(in: 0...UInt64.max, using: &random) }
        let ordered = zip(rest, tieBreak).sorted { lhs, rhs in
            let left = score(lhs.0)
            let right = score(rhs.0)
            return left == right ? lhs.1 < rhs.1 : left < right
        }.map(\.0)
        return [chosen] + ordered
    }
}
