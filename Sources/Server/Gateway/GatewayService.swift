import AsyncHTTPClient
import Engine
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// The gateway process as one service: the in-process simulator (when a provider needs it), the upstream
/// pools and the public listener, started in that order and stopped gracefully together.
public struct GatewayService: Service {
    public struct Started: Sendable {
        /// The port the public API listens on (useful with port 0).
        public let port: Int
        /// Where the in-process simulator listens, when it runs.
        public let simulatorURL: String?
        /// Drain, undrain and inspect targets of the running gateway.
        public let control: GatewayControl
    }

    let config: GatewayConfig
    let logger: Logger
    let onStarted: @Sendable (Started) async -> Void

    public init(config: GatewayConfig, logger: Logger, onStarted: @escaping @Sendable (Started) async -> Void = { _ in }) {
        self.config = config
        self.logger = logger
        self.onStarted = onStarted
    }

    public func run() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            var simulatorURL: String?
            if self.config.needsInProcessSimulator {
                let (ports, continuation) = AsyncStream<Int>.makeStream()
                var simulatorLogger = self.logger
                simulatorLogger[metadataKey: "gw.component"] = "simulator"
                let simulator = Application(
                    router: SimulatorRouter(settings: self.config.simulator).build(),
                    configuration: .init(address: .hostname("127.0.0.1", port: 0), serverName: nil),
                    onServerRunning: { channel in
                        continuation.yield(channel.localAddress?.port ?? 0)
                        continuation.finish()
                    },
                    eventLoopGroupProvider: .shared(group),
                    logger: simulatorLogger
                )
                tasks.addTask { try await simulator.run() }
                var iterator = ports.makeAsyncIterator()
                guard let port = await iterator.next() else { return }
                simulatorURL = "http://127.0.0.1:\(port)"
            }

            let upstreams = UpstreamPool(providers: self.config.providers, simulatorURL: simulatorURL, eventLoopGroup: group)
            let imageClient = self.config.server.fetchImageURLs ? HTTPClient(eventLoopGroupProvider: .shared(group)) : nil
            let state = GatewayState(config: self.config, upstreams: upstreams, images: imageClient.map(ImageFetcher.init))
            let listen = self.config.server.listen
            let onStarted = self.onStarted
            let api = Application(
                router: GatewayRouter.build(state),
                server: .http1(configuration: .init(additionalChannelHandlers: [state.disconnects.makeHandler()])),
                configuration: .init(address: .hostname(listen.host, port: listen.port), serverName: nil),
                onServerRunning: { [simulatorURL] channel in
                    state.isReady.store(true, ordering: .relaxed)
                    await onStarted(Started(port: channel.localAddress?.port ?? listen.port, simulatorURL: simulatorURL, control: GatewayControl(state: state)))
                },
                eventLoopGroupProvider: .shared(group),
                logger: self.logger
            )
            tasks.addTask { try await api.run() }
            let monitor = BackendMonitor(state: state, logger: self.logger)
            let monitoring = Task { await monitor.run() }
            tasks.addTask {
                // Report not-ready as soon as shutdown starts, while in-flight requests finish.
                try? await gracefulShutdown()
                state.isReady.store(false, ordering: .relaxed)
            }
            do {
                try await tasks.waitForAll()
            } catch {
                monitoring.cancel()
                await upstreams.shutdown()
                try? await imageClient?.shutdown()
                throw error
            }
            monitoring.cancel()
            await monitoring.value
            await upstreams.shutdown()
            try? await imageClient?.shutdown()
        }
    }
}
