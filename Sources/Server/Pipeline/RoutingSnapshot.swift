#if canImport(Glibc)
#endif
import Engine
import Foundation
import Synchronization

/// The configuration in force and what is built from it. Swapped whole by a reload or a route edit,
/// so a request that took it sees one consistent version from start to end.
final class RoutingSnapshot: Sendable {
    let config: GatewayConfig
    let routes: RouteTable
    let upstreams: UpstreamPool
    let version: Int
    /// Routes changed through the admin API since the file was last loaded.
    let editedRoutes: Set<String>
    /// Built-in prices under the price file's under the config's.
    let prices: PriceTable
    /// Each route target's price, looked up once per configuration.
    private let targetPrices: [RouteTarget: ModelPrice]

    init(config: GatewayConfig, upstreams: UpstreamPool, version: Int, editedRoutes: Set<String> = []) {
        self.config = config
        self.routes = RouteTable(config.routes, rules: config.rules)
        let prices = config.priceTable
        self.prices = prices
        var targetPrices: [RouteTarget: ModelPrice] = [:]
        for target in config.routes.flatMap(\.targets) {
            targetPrices[target] = config.price(of: target, in: prices)
        }
        self.targetPrices = targetPrices
        self.upstreams = upstreams
        self.version = version
        self.editedRoutes = editedRoutes
    }
}

extension RoutingSnapshot {
    /// The target's price, nil when unknown.
    func price(of target: RouteTarget) -> ModelPrice? {
        self.targetPrices[target] ?? self.config.price(of: target, in: self.prices)
    }
}
