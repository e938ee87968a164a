import Engine
import Synchronization

/// Everything a request handler reads, fixed for the life of one configuration.
final class GatewayState: Sendable {
    let config: GatewayConfig
    let routes: RouteTable
    /// Breakers, rests, drains and load of every target: read to plan, written by every attempt.
    let health: Mutex<RoutingHealth>
    let upstreams: UpstreamPool
    let identity = RequestIdentity()
    /// Present when `server.fetch_image_urls` is on.
    let images: ImageFetcher?
    let disconnects = ClientDisconnectWatch()
    /// False until the listener is up and again once shutdown begins, so load balancers drain us first.
    let isReady = Atomic<Bool>(false)

    init(config: GatewayConfig, upstreams: UpstreamPool, images: ImageFetcher?) {
        self.config = config
        self.routes = RouteTable(config.routes, rules: config.rules)
        self.health = Mutex(RoutingHealth(config: config))
        self.upstreams = upstreams
        self.images = images
    }
}

/// The operations an operator (the admin socket, `ctl`, tests) performs on a running gateway.
public struct GatewayControl: Sendable {
    let state: GatewayState

    /// Stops new requests to `provider`'s targets; in-flight ones finish.
    /// - Returns: false when no such provider exists.
    @discardableResult
    public func drain(_ provider: String) -> Bool {
        guard self.state.config.provider(provider) != nil else { return false }
        self.state.health.withLock { _ = $0.drain(provider) }
        return true
    }

    @discardableResult
    public func undrain(_ provider: String) -> Bool {
        guard self.state.config.provider(provider) != nil else { return false }
        self.state.health.withLock { _ = $0.undrain(provider) }
        return true
    }

    /// Every target's breaker, rest, drain, load and latency.
    public func targets() -> [TargetStatus] {
        let now = ContinuousClock.now
        return self.state.health.withLock { $0.statuses(at: now) }
    }
}
