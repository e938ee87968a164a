import Engine
import Synchronization

/// Everything a request handler reads, fixed for the life of one configuration.
final class GatewayState: Sendable {
    let config: GatewayConfig
    let routes: RouteTable
    let upstreams: UpstreamPool
    let identity = RequestIdentity()
    /// Present when `server.fetch_image_urls` is on.
    let images: ImageFetcher?
    let disconnects = ClientDisconnectWatch()
    /// False until the listener is up and again once shutdown begins, so load balancers drain us first.
    let isReady = Atomic<Bool>(false)

    init(config: GatewayConfig, upstreams: UpstreamPool, images: ImageFetcher?) {
        self.config = config
        self.routes = RouteTable(config.routes)
        self.upstreams = upstreams
        self.images = images
    }
}
