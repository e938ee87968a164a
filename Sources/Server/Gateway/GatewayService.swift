#if canImport(Glibc)
import Glibc
#endif
import Crypto
import Engine
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import Redis
import ServiceLifecycle
import Synchronization
import UnixSignals

/// Where a running gateway's configuration came from, so a reload can read it again the same way.
public struct ConfigSource: Sendable {
    public let path: String
    /// The flag and environment overrides applied after reading the file.
    public let overrides: @Sendable (inout GatewayConfig) throws -> Void

    public init(path: String, overrides: @escaping @Sendable (inout GatewayConfig) throws -> Void = { _ in }) {
        self.path = path
        self.overrides = overrides
    }

    func load() throws -> GatewayConfig {
        var config = try ConfigFile.load(path: self.path, environment: ProcessInfo.processInfo.environment)
        try self.overrides(&config)
        return config
    }

    /// The file's SHA-256, shortened: what a fleet compares to find a replica on another config.
    func digest() -> String {
        guard let bytes = FileManager.default.contents(atPath: self.path) else { return "unreadable" }
        return SHA256.hash(data: bytes).prefix(6).map { String(format: "%02x", $0) }.joined()
    }
}

/// The gateway process as one service: the in-process simulator (when a provider needs it), the upstream
/// pools, the public listener and the admin socket, started in that order and stopped gracefully together.
public struct GatewayService: Service {
    public struct Started: Sendable {
        /// The port the public API listens on (useful with port 0).
        public let port: Int
        /// Where the in-process simulator listens, when it runs.
        public let simulatorURL: String?
        /// The admin API's Unix socket.
        public let adminSocket: String
        /// Drain, undrain, inspect, edit routes, reload: what the admin API does.
        public let control: GatewayControl
    }

    let config: GatewayConfig
    let source: ConfigSource?
    let logger: Logger
    let onStarted: @Sendable (Started) async -> Void
    /// The tracing in force: the config's block under the `OTEL_*` variables (`Serve` resolves them;
    /// tests set it directly).
    public var tracing: TracingSettings?
    /// Where image URLs may lead: public addresses only. Not a config key: only tests widen it (to loopback).
    var imageAddressPolicy = AddressPolicy.publicOnly
    /// The egress proxy upstreams are reached through; nil: the one the environment names
    /// (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`).
    var egressProxy: EgressProxy?

    public init(config: GatewayConfig, source: ConfigSource? = nil, logger: Logger, onStarted: @escaping @Sendable (Started) async -> Void = { _ in }) {
        self.config = config
        self.tracing = config.tracing
        self.source = source
        self.logger = logger
        self.onStarted = onStarted
    }

    public func run() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        try FileManager.default.createDirectory(atPath: self.config.server.stateDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let adminSocket = self.config.server.adminSocketPath
        try AdminSocket.claim(adminSocket)
        let store = try Store(path: (self.config.server.stateDir as NSString).appendingPathComponent("switchyard.sqlite"))
        let database: any GatewayDatabase
        switch self.config.database.location {
        case .sqlite: database = store
        case .postgres(let settings):
            do {
                database = try await PostgresDatabase(settings: settings, logger: self.logger)
            } catch {
                throw DatabaseUnavailable(database: settings.redacted, error: error)
            }
            self.logger.notice("keys, the ledger and the audit log are shared through PostgreSQL", metadata: ["gw.database": "\(settings.redacted)"])
        }

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

            let proxy = try self.egressProxy ?? EgressProxy(environment: ProcessInfo.processInfo.environment)
            if let https = proxy.https { self.logger.info("upstreams over https go through an egress proxy", metadata: ["gw.proxy": "\(https)"]) }
            if let http = proxy.http { self.logger.info("plain-http upstreams go through an egress proxy", metadata: ["gw.proxy": "\(http)"]) }
            let upstreams = try UpstreamPool(providers: self.config.providers, simulatorURL: simulatorURL, proxy: proxy, eventLoopGroup: group)
            let images = self.config.server.fetchImageURLs
                ? ImageFetcher(limits: self.config.server.imageLimits, policy: self.imageAddressPolicy, eventLoopGroup: group) : nil
            let quotas: any QuotaStore
            var fleet: FleetSync?
            var sharedCache: SharedAnswerCache?
            var renewals: Task<Void, Never>?
            switch self.config.state {
            case .local:
                let memory = InMemoryQuotaStore()
                try await Self.preloadSpend(from: database, into: memory)
                quotas = memory
            case .redis(let settings):
                let redis = RedisClient(RedisConfiguration(settings, replica: ProcessInfo.processInfo.hostName), group: group)
                let shared = RedisQuotaStore(redis: redis, onError: settings.onError, leaseTTL: settings.leaseTTL, logger: self.logger)
                renewals = Task { await shared.renewLeases() }
                quotas = shared
                fleet = FleetSync(redis: redis, eventLoop: group.next(), logger: self.logger)
                if self.config.cacheShared { sharedCache = SharedAnswerCache(redis: redis, logger: self.logger) }
                self.logger.notice(
                    "limits and budgets are shared through Redis", metadata: ["gw.state": "\(settings.redacted)", "gw.on_state_error": "\(settings.onError.rawValue)"]
                )
            }
            defer { renewals?.cancel() }
            let metrics = GatewayMetrics()
            let tracer = try self.tracing.map { try GatewayTracer($0, metrics: metrics, logger: self.logger) }
            if let settings = tracer?.settings {
                self.logger.notice("requests are traced over OTLP/HTTP", metadata: [
                    "gw.endpoint": "\(settings.tracesURL)", "gw.sampler": "\(settings.sampler.rawValue)", "gw.sample_ratio": "\(settings.sampleRatio)",
                    "gw.capture_content": "\(settings.captureContent)",
                ])
            }
            let exporting = tracer.map { tracer in Task.detached { await tracer.run() } }
            let state = GatewayState(
                config: self.config, configSource: self.source, upstreams: upstreams, images: images,
                store: store, database: database, quotas: quotas, fleet: fleet, sharedCache: sharedCache, metrics: metrics, tracer: tracer,
                logger: self.logger
            )
            state.keys.load(try await database.keys(), config: self.config)
            await state.ledger.start()
            let keyChanges = (database as? PostgresDatabase).map { shared in
                Task {
                    await shared.listenForKeys(
                        changed: { state.keys.upsert($0) },
                        resubscribed: {
                            if let stored = try? await shared.keys() { state.keys.replaceStored(stored) }
                        }
                    )
                }
            }
            let retention = self.config.database.retentionDays.map { days in
                Task { await Retention.run(database, keepingDays: days, logger: self.logger) }
            }
            let responseRetention = Task { [days = self.config.responsesKeepDays, logger = self.logger] in
                await Retention.forgetResponses(database, keepingDays: days, logger: logger)
            }
            defer {
                keyChanges?.cancel()
                retention?.cancel()
                responseRetention.cancel()
            }
            let warmed = try await state.cache.warm()
            if warmed > 0 { self.logger.info("cache warmed from its persistent tier", metadata: ["gw.entries": "\(warmed)"]) }
            let control = GatewayControl(state: state)
            state.configDigest.withLock { $0 = self.source?.digest() ?? "environment" }
            // This replica's ledger in Redis once per Redis lifetime, so budgets count what was spent before.
            // A shared database holds the fleet's ledger: one replica adds it, once (a name they all share).
            let seedingName = database.isShared ? "shared-database" : self.seedingName
            let seed: @Sendable () async -> Void = { [logger = self.logger, name = seedingName] in
                guard let shared = quotas as? RedisQuotaStore else { return }
                do {
                    let subjects = try await shared.seedSpend(from: database, replica: name)
                    if subjects > 0 { logger.notice("this replica's spend from its ledger added to Redis", metadata: ["gw.subjects": "\(subjects)"]) }
                } catch {
                    logger.warning("this replica's spend could not be added to Redis; it is tried again when Redis answers", metadata: ["gw.error": "\(error)"])
                }
            }
            if let fleet {
                // A replica started after a drain or a route edit starts with it: read the fleet's state before serving.
                await seed()
                do {
                    control.reconcile(with: try await fleet.state())
                } catch {
                    self.logger.warning("the fleet's drains and route edits could not be read before serving; they apply once Redis answers", metadata: ["gw.error": "\(error)"])
                }
            }
            let fleetSync = fleet.map { fleet in
                Task { await fleet.run(subscribed: seed, reconcile: { control.reconcile(with: $0) }, apply: { control.apply($0) }) }
            }
            let heartbeats = fleet.map { fleet in Task { await control.beat(to: fleet) } }
            defer {
                fleetSync?.cancel()
                heartbeats?.cancel()
            }
            state.restartMonitor()
            let ledger = Task { await state.ledger.run() }

            let listen = self.config.server.listen
            let onStarted = self.onStarted
            let (adminReady, adminReadyContinuation) = AsyncStream<Void>.makeStream()
            var adminLogger = self.logger
            adminLogger[metadataKey: "gw.component"] = "admin"
            let admin = Application(
                router: AdminRouter.build(control, database: database, token: nil),
                configuration: .init(address: .unixDomainSocket(path: adminSocket), serverName: nil),
                onServerRunning: { _ in
                    // Owner only: the admin API can drain providers and rewrite routes.
                    chmod(adminSocket, 0o600)
                    adminReadyContinuation.finish()
                },
                eventLoopGroupProvider: .shared(group),
                logger: adminLogger
            )
            tasks.addTask {
                defer { unlink(adminSocket) }
                try await admin.run()
            }
            if let address = self.config.server.adminListen, let token = self.config.server.adminToken {
                let tcpAdmin = Application(
                    router: AdminRouter.build(control, database: database, token: token),
                    configuration: .init(address: .hostname(address.host, port: address.port), serverName: nil),
                    eventLoopGroupProvider: .shared(group),
                    logger: adminLogger
                )
                tasks.addTask { try await tcpAdmin.run() }
            }
            for await _ in adminReady {}

            let api = Application(
                router: GatewayRouter.build(state),
                server: GatewayChannel.server(state),
                configuration: .init(address: .hostname(listen.host, port: listen.port), serverName: nil),
                onServerRunning: { [simulatorURL] channel in
                    let port = channel.localAddress?.port ?? listen.port
                    state.listeningPort.store(port, ordering: .relaxed)
                    database.setReplica(state.replicaID)
                    state.isReady.store(true, ordering: .relaxed)
                    await onStarted(Started(port: port, simulatorURL: simulatorURL, adminSocket: adminSocket, control: control))
                },
                eventLoopGroupProvider: .shared(group),
                logger: self.logger
            )
            // The listener shuts down on its own signal, `shutdown_delay` after the service's: in between
            // it still accepts, and `/readyz` says 503, so load balancers stop sending before it closes.
            let listener = ServiceGroup(configuration: .init(services: [api], logger: self.logger))
            let shutdownDelay = self.config.server.shutdownDelay
            tasks.addTask {
                // Apart from the service's graceful shutdown (a task-local it would follow at once).
                let running = Task.detached { try await listener.run() }
                try await withTaskCancellationHandler {
                    try await running.value
                } onCancel: {
                    running.cancel()
                }
            }
            tasks.addTask {
                try? await gracefulShutdown()
                state.isReady.store(false, ordering: .relaxed)
                state.events.finishAll()
                if shutdownDelay > .zero { try? await Task.sleep(for: shutdownDelay) }
                await listener.triggerGracefulShutdown()
            }
            let reloads = Task {
                // SIGHUP re-reads the config file, as `POST /v1/config/reload` does, on this replica alone: a
                // signal is sent to each process (a fleet's rollout signals every one).
                for await _ in await UnixSignalsSequence(trapping: .sighup) {
                    let outcome: (detail: String, ok: Bool)
                    do throws(AdminProblem) {
                        let report = try control.reloadHere(origin: "on SIGHUP")
                        outcome = (report.changes.joined(separator: "; "), true)
                    } catch {
                        outcome = (error.message, false)
                    }
                    try? await database.audit(actor: "signal:SIGHUP", action: "reload", target: nil, detail: outcome.detail, ok: outcome.ok)
                }
            }
            defer { reloads.cancel() }
            do {
                try await tasks.waitForAll()
            } catch {
                await Self.stop(state, ledger: ledger, exporting: exporting)
                throw error
            }
            await Self.stop(state, ledger: ledger, exporting: exporting)
        }
    }
}

extension GatewayService {
    /// After the listeners closed (in-flight requests done): every ledger row is written before exit.
    /// The spans of the last requests are exported (within the export timeout) before exit.
    static func stop(_ state: GatewayState, ledger: Task<Void, Never>, exporting: Task<Void, Never>? = nil) async {
        state.stopMonitor()
        ledger.cancel()
        await ledger.value
        await state.ledger.flush()
        let counts = state.ledger.counts
        state.logger.info("ledger flushed", metadata: ["gw.rows_written": "\(counts.written)", "gw.rows_overflowed": "\(counts.overflowed)"])
        await state.routing.upstreams.shutdown()
        if let shared = state.quotas as? RedisQuotaStore { await shared.redis.shutdown() }
        if let tracer = state.tracer, let exporting {
            await tracer.shutDown()
            await exporting.value
        }
    }

    /// Who this replica is when it adds its ledger to Redis: the same across its restarts (host name
    /// and configured port), so a restart within one Redis lifetime does not add it twice.
    var seedingName: String {
        let host = ProcessInfo.processInfo.hostName
        let port = self.config.server.listen.port
        return port == 0 ? "\(host):0:\(getpid())" : "\(host):\(port)"
    }

    /// Today's and this month's spend from the ledger, so budgets hold across restarts.
    static func preloadSpend(from store: any GatewayDatabase, into quotas: InMemoryQuotaStore) async throws {
        let (day, month) = BudgetCalendar.shared.dayAndMonth()
        let (dayStart, monthStart) = BudgetCalendar.starts(of: Date())
        for row in try await store.spend(since: dayStart, monthStart: monthStart) {
            if let tenant = row.tenant {
                // Several keys of a tenant add up.
                let current = await quotas.usage(of: QuotaSubject(.tenant, tenant))
                quotas.preload(
                    QuotaSubject(.tenant, tenant), spentToday: (current?.spentToday ?? 0) + row.day, spentThisMonth: (current?.spentThisMonth ?? 0) + row.month,
                    requestsToday: (current?.requestsToday ?? 0) + row.requests, tokensToday: (current?.tokensToday ?? 0) + row.tokens, day: day, month: month
                )
            }
            if let key = row.key {
                quotas.preload(QuotaSubject(.key, key), spentToday: row.day, spentThisMonth: row.month, requestsToday: row.requests, tokensToday: row.tokens, day: day, month: month)
            }
        }
    }
}

/// The admin socket's file: taken over only when nobody answers on it (a crash left it), never
/// from a gateway that is still running.
enum AdminSocket {
    struct InUse: Error, CustomStringConvertible {
        let path: String
        var description: String { "another gateway answers on the admin socket \(self.path); stop it or give this one its own state_dir/admin_socket" }
    }

    static func claim(_ path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else { return }
        if self.answers(path) { throw InUse(path: path) }
        unlink(path)
    }

    /// Whether a process accepts connections on the socket at `path`.
    static func answers(_ path: String) -> Bool {
        #if canImport(Glibc)
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            buffer.copyBytes(from: bytes)
        }
        let result = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        return result == 0
        #else
        return false
        #endif
    }
}
