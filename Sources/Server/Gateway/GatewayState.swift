#if canImport(Glibc)
import Glibc
#endif
import Engine
import Foundation
import Logging
import NIOCore
import Synchronization

/// Everything a request handler reads. The routing part can change while the gateway runs (reload,
/// route edits); the server settings cannot (a reload says which need a restart).
final class GatewayState: Sendable {
    let server: ServerSettings
    /// Where the config came from: the file a reload re-reads, or nil for the environment.
    let configSource: ConfigSource?
    private let current: Mutex<RoutingSnapshot>
    /// Breakers, rests, drains and load of every target: read to plan, written by every attempt.
    /// Kept across reloads, so a reload does not forget that a provider is down or drained.
    let health: Mutex<RoutingHealth>
    let telemetry = Mutex(GatewayTelemetry())
    /// Each tenant's refusals today, by reason, and the last few: for the console's tenant view.
    let rejections = Mutex(TenantRejections())
    let events = EventHub()
    let metrics: GatewayMetrics
    /// Spans of sampled requests, when `tracing:` or `OTEL_*` turn them on.
    let tracer: GatewayTracer?
    let identity = RequestIdentity()
    /// Present when `server.fetch_image_urls` is on.
    let images: ImageFetcher?
    let disconnects = ClientDisconnectWatch()
    /// The fast lane's upstream connections, per event loop.
    let loopUpstreams: LoopUpstreams
    /// False until the listener is up and again once shutdown begins, so load balancers drain us first.
    let isReady = Atomic<Bool>(false)
    /// Client connections open on the public listener, and how many it takes (`server.max_connections`).
    let clientConnections = Atomic<Int>(0)
    let maxClientConnections: Int
    let started = ContinuousClock.now
    let logger: Logger
    /// The valid virtual keys, in memory.
    let keys = KeyRing()
    let quotas: any QuotaStore
    let cache: AnswerCache
    /// This replica's own SQLite file: the persistent cache tier and the ledger's journal, and the
    /// database too when `database` is this file.
    let store: Store
    /// Keys, the ledger and the audit log: `store`, or the PostgreSQL a fleet shares.
    let database: any GatewayDatabase
    let ledger: LedgerWriter
    /// Keys other replicas made a moment ago, looked up when a request presents one.
    let keyLookup: KeyLookup
    /// Today's spend per tenant from the shared ledger, and when it was read.
    private let fleetToday = Mutex<(read: ContinuousClock.Instant, tenants: [String: SpendLine])?>(nil)

    /// The health checks and load polls of the providers in force.
    private let monitor = Mutex<Task<Void, Never>?>(nil)

    /// The fleet this replica belongs to (`state: redis://…`), whose drains it shares.
    let fleet: FleetSync?
    /// The public listener's port, once it listens.
    let listeningPort = Atomic<Int>(0)
    /// The config file's digest as last applied (at start, by a reload), for the fleet's roll call.
    let configDigest = Mutex("environment")
    /// Why the last reload was rejected, until one succeeds: a fleet's roll call shows it.
    let reloadProblem = Mutex<String?>(nil)
    /// How this replica is named to its fleet and in audit rows: host name and port.
    var replicaID: String { "\(ProcessInfo.processInfo.hostName):\(self.listeningPort.load(ordering: .relaxed))" }
    /// Seconds since 1970 when it started, for the fleet's roll call.
    let startedAt = Date().timeIntervalSince1970

    init(
        config: GatewayConfig, configSource: ConfigSource?, upstreams: UpstreamPool, images: ImageFetcher?, store: Store, database: (any GatewayDatabase)? = nil,
        quotas: any QuotaStore, fleet: FleetSync? = nil, sharedCache: SharedAnswerCache? = nil, metrics: GatewayMetrics = GatewayMetrics(),
        tracer: GatewayTracer? = nil, logger: Logger
    ) {
        self.metrics = metrics
        self.tracer = tracer
        self.fleet = fleet
        self.server = config.server
        self.maxClientConnections = config.server.client.maxConnections ?? ClientLimits.automaticMaxConnections(openFileLimit: Self.openFileLimit)
        self.store = store
        self.database = database ?? store
        self.keyLookup = KeyLookup(database: self.database)
        self.quotas = quotas
        self.ledger = LedgerWriter(database: self.database, journal: store, logger: logger)
        self.cache = AnswerCache(capacity: config.cacheMemory, persistentIn: config.cachePersistent ? store : nil, shared: sharedCache)
        self.configSource = configSource
        self.current = Mutex(RoutingSnapshot(config: config, upstreams: upstreams, version: 1))
        self.health = Mutex(RoutingHealth(config: config))
        self.loopUpstreams = upstreams.loops
        self.images = images
        self.logger = logger
    }

    /// The routing configuration in force now.
    var routing: RoutingSnapshot { self.current.withLock { $0 } }

    /// Whole seconds since start, the clock of the rolling windows.
    var telemetrySecond: Int64 { (ContinuousClock.now - self.started).components.seconds }

    /// Installs `config` as the routing configuration: upstream clients of unchanged providers are
    /// kept, changed or removed ones retire once their requests can have finished.
    /// - Returns: the new snapshot.
    /// - Throws: a provider's TLS material that cannot be read: nothing changes.
    @discardableResult
    func install(_ config: GatewayConfig, editedRoutes: Set<String>) throws(ConfigError) -> RoutingSnapshot {
        let (snapshot, retired) = try self.current.withLock { current throws(ConfigError) in
            let (upstreams, retired) = try current.upstreams.rebuilt(for: config.providers)
            let next = RoutingSnapshot(config: config, upstreams: upstreams, version: current.version + 1, editedRoutes: editedRoutes)
            current = next
            return (next, retired)
        }
        self.health.withLock { $0.adopt(config) }
        self.keys.reloadDeclared(config)
        let keys = Set(config.routes.flatMap { $0.targets.map(\.key) })
        self.telemetry.withLock { $0.keep(routes: Set(config.routes.map(\.alias)), targets: keys) }
        UpstreamPool.retire(retired)
        self.restartMonitor()
        return snapshot
    }

    /// (Re)starts the health checks and load polls for the providers in force.
    func restartMonitor() {
        let monitor = BackendMonitor(state: self, routing: self.routing, logger: self.logger)
        let task = Task { await monitor.run() }
        self.monitor.withLock { running in
            running?.cancel()
            running = task
        }
    }

    func stopMonitor() {
        self.monitor.withLock { running in
            running?.cancel()
            running = nil
        }
    }

    /// One request's image fetching, shared by its attempts; nil when image URLs are not fetched.
    func imageInlining(for request: ChatRequest?, logger: Logger) -> ImageInlining? {
        guard let images = self.images, let request else { return nil }
        return ImageInlining(fetcher: images, request: request, logger: logger)
    }
}

extension GatewayState {
    /// The process's soft limit on open files (`ulimit -n`).
    static var openFileLimit: Int {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        // Unlimited (`RLIM_INFINITY`, all ones) clamps to `Int.max`.
        return Int(clamping: limit.rlim_cur)
    }
}

extension GatewayState {
    /// How long the fleet's spend read from the shared ledger is reused: consoles ask every second.
    static let fleetSpendReuse = Duration.seconds(5)

    /// Today's spend, requests and tokens per tenant across the fleet, from the shared ledger: nil when
    /// the database is this replica's own, or when limits are shared through Redis (which counts the
    /// fleet's already), or when the ledger cannot be read.
    func fleetSpendToday() async -> [String: SpendLine]? {
        guard self.database.isShared, !(self.quotas is RedisQuotaStore) else { return nil }
        if let cached = self.fleetToday.withLock({ $0 }), ContinuousClock.now - cached.read < Self.fleetSpendReuse { return cached.tenants }
        let dayStart = BudgetCalendar.starts(of: Date()).day
        guard let lines = try? await self.database.spend(since: dayStart, monthStart: dayStart) else { return nil }
        var tenants: [String: SpendLine] = [:]
        for line in lines {
            guard let tenant = line.tenant else { continue }
            var total = tenants[tenant] ?? SpendLine(tenant: tenant, key: nil, day: 0, month: 0, requests: 0, tokens: 0)
            total.day += line.day
            total.month += line.month
            total.requests = UntrustedNumber.count(Double(total.requests) + Double(line.requests))
            total.tokens = UntrustedNumber.count(Double(total.tokens) + Double(line.tokens))
            tenants[tenant] = total
        }
        self.fleetToday.withLock { $0 = (.now, tenants) }
        return tenants
    }
}

extension GatewayState {
    /// The ledger's database and backlog, for the console and `/metrics`.
    var ledgerStatus: AdminLedger {
        let backlog = self.ledger.backlog
        return AdminLedger(
            database: self.database.label, rowsWritten: backlog.written, rowsQueued: backlog.queued, rowsJournalled: backlog.journalled,
            secondsBehind: backlog.oldestWaiting.map { max(0, Date().timeIntervalSince1970 - $0) } ?? 0, databaseDown: backlog.databaseDown
        )
    }
}
