#if canImport(Glibc)
import Glibc
#endif
import Engine
import Foundation
import Logging
import NIOCore
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
    let events = EventHub()
    let metrics = GatewayMetrics()
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
    let store: Store
    let ledger: LedgerWriter

    /// The health checks and load polls of the providers in force.
    private let monitor = Mutex<Task<Void, Never>?>(nil)

    init(config: GatewayConfig, configSource: ConfigSource?, upstreams: UpstreamPool, images: ImageFetcher?, store: Store, quotas: any QuotaStore, logger: Logger) {
        self.server = config.server
        self.maxClientConnections = config.server.client.maxConnections ?? ClientLimits.automaticMaxConnections(openFileLimit: Self.openFileLimit)
        self.store = store
        self.quotas = quotas
        self.ledger = LedgerWriter(store: store, logger: logger)
        self.cache = AnswerCache(capacity: config.cacheMemory, persistentIn: config.cachePersistent ? store : nil)
        self.configSource = configSource
        self.current = Mutex(RoutingSnapshot(config: config, upstreams: upstreams, version: 1))
        self.health = Mutex(RoutingHealth(config: config))
        self.loopUpstreams = LoopUpstreams(group: upstreams.eventLoopGroup)
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

/// The operations an operator (the admin socket, `ctl`, tests) performs on a running gateway.
public struct GatewayControl: Sendable {
    let state: GatewayState

    /// Stops new requests to `provider`'s targets; in-flight ones finish.
    /// - Returns: false when no such provider exists.
    @discardableResult
    public func drain(_ provider: String) -> Bool {
        guard self.state.routing.config.provider(provider) != nil else { return false }
        let changed = self.state.health.withLock { $0.drain(provider) }
        if changed { self.state.events.publish(AdminEvent(kind: .drained, message: "provider \(provider) drained: no new requests", provider: provider)) }
        return true
    }

    @discardableResult
    public func undrain(_ provider: String) -> Bool {
        guard self.state.routing.config.provider(provider) != nil else { return false }
        let changed = self.state.health.withLock { $0.undrain(provider) }
        if changed { self.state.events.publish(AdminEvent(kind: .undrained, message: "provider \(provider) back in rotation", provider: provider)) }
        return true
    }

    /// Every target's breaker, rest, drain, load and latency.
    public func targets() -> [TargetStatus] {
        let now = ContinuousClock.now
        return self.state.health.withLock { $0.statuses(at: now) }
    }

    /// The admin snapshot.
    public func snapshot() async -> AdminSnapshot {
        let routing = self.state.routing
        let second = self.state.telemetrySecond
        let telemetry = self.state.telemetry.withLock { $0 }
        var snapshot = AdminSnapshot.build(
            config: routing.config,
            configVersion: routing.version,
            configSource: self.state.configSource?.path ?? "environment",
            uptime: ContinuousClock.now - self.state.started,
            targets: self.targets(),
            telemetry: telemetry,
            now: second,
            editedRoutes: routing.editedRoutes
        )
        snapshot.tenants = await self.tenants(routing.config)
        if routing.config.routes.contains(where: { $0.cache != nil }) { snapshot.cache = self.state.cache.stats }
        return snapshot
    }

    /// Every tenant of the config or of a key, with today's use and its budget's share.
    func tenants(_ config: GatewayConfig) async -> [AdminTenant] {
        let names = Set(config.tenants.map(\.name) + self.state.keys.all.map(\.tenant)).sorted()
        var tenants: [AdminTenant] = []
        for name in names {
            let usage = await self.state.quotas.usage(of: QuotaSubject(.tenant, name))
            let limits = config.tenant(name)?.limits ?? LimitSettings()
            let shares = [
                limits.dailyBudgetUSD.map { budget in budget > 0 ? (usage?.spentToday ?? 0) / budget : 1 },
                limits.monthlyBudgetUSD.map { budget in budget > 0 ? (usage?.spentThisMonth ?? 0) / budget : 1 },
            ].compactMap { $0 }
            tenants.append(AdminTenant(
                name: name, requestsToday: usage?.requestsToday ?? 0, tokensToday: usage?.tokensToday ?? 0,
                costTodayUsd: usage?.spentToday ?? 0, budgetUsed: shares.max(), limitRejections: usage?.rejections ?? 0
            ))
        }
        return tenants
    }

    /// Makes a key: stored (hash only) and usable at once; the key itself is in the answer only.
    public func createKey(_ request: KeyRequest) async throws -> CreatedKey {
        if let problems = request.problems { throw AdminProblem(status: 422, code: "invalid_key_request", message: problems) }
        let (key, record) = KeyRing.make(
            tenant: request.tenant, name: request.name ?? "key", limits: request.limits, models: request.models ?? [],
            expires: request.expiresInSeconds.map { .seconds($0) }, now: Date().timeIntervalSince1970
        )
        try await self.state.store.insertKey(record)
        self.state.keys.add(record)
        return CreatedKey(key: key, view: record.view)
    }

    public func keys() -> [KeyView] {
        self.state.keys.all.map(\.view)
    }

    /// Revokes by id or prefix; the key stops working at once. Keys declared in the config file are
    /// removed from the file instead.
    public func revokeKey(_ idOrPrefix: String) async throws -> AdminAck {
        if let declared = self.state.keys.all.first(where: { ($0.id == idOrPrefix || $0.prefix == idOrPrefix) && $0.id.hasPrefix("cfg_") }) {
            throw AdminProblem(status: 409, code: "declared_key", message: "key \(declared.name) of tenant \(declared.tenant) is declared in the config file; remove it there and reload")
        }
        let now = Date().timeIntervalSince1970
        guard let record = try await self.state.store.revokeKey(idOrPrefix, at: now) else {
            throw AdminProblem(status: 404, code: "unknown_key", message: "no key with id or prefix '\(idOrPrefix)'")
        }
        self.state.keys.revoke(record.id, at: now)
        return AdminAck(message: "key \(record.name) (\(record.prefix)…) of tenant \(record.tenant) revoked")
    }

    /// Requests, tokens and cost by model and provider since `since` (seconds since 1970).
    public func usage(tenant: String?, since: Double) async throws -> [UsageLine] {
        try await self.state.store.usage(tenant: tenant, since: since)
    }

    /// Replaces a route's strategy and targets, validated first; in-flight requests keep the old route.
    public func editRoute(_ alias: String, _ edit: RouteEdit) throws(AdminProblem) -> AdminAck {
        let routing = self.state.routing
        guard let index = routing.config.routes.firstIndex(where: { $0.alias == alias }) else {
            throw AdminProblem(status: 404, code: "unknown_route", message: "no route '\(alias)' (known: \(routing.config.routes.map(\.alias).joined(separator: ", ")))")
        }
        var config = routing.config
        config.routes[index] = try edit.applied(to: config.routes[index], providers: config.providers.map(\.id))
        let snapshot: RoutingSnapshot
        do {
            snapshot = try self.state.install(config, editedRoutes: routing.editedRoutes.union([alias]))
        } catch {
            throw AdminProblem(status: 422, code: "invalid_config", message: error.description)
        }
        let message = "route \(alias) updated: \(ConfigDiff.changedParts(routing.config.routes[index], config.routes[index]).joined(separator: ", "))"
        self.state.events.publish(AdminEvent(kind: .routeUpdated, message: message, route: alias))
        self.state.logger.notice("route edited", metadata: ["gw.route": "\(alias)", "gw.config_version": "\(snapshot.version)"])
        return AdminAck(message: message)
    }

    /// Re-reads the config file, validates all of it, and swaps it in; a file with any problem
    /// changes nothing. Runtime route edits are discarded: the file is the source of truth.
    public func reload() throws(AdminProblem) -> ReloadReport {
        guard let source = self.state.configSource else {
            throw AdminProblem(status: 409, code: "no_config_file", message: "this gateway runs on its environment defaults; there is no file to reload (start it with --config)")
        }
        let config: GatewayConfig
        let before = self.state.routing
        let snapshot: RoutingSnapshot
        do {
            config = try source.load()
            var applied = config
            applied.server = self.state.server
            snapshot = try self.state.install(applied, editedRoutes: [])
        } catch {
            let detail = (error as? ConfigError)?.description ?? "\(error)"
            self.state.events.publish(AdminEvent(kind: .reloadRejected, message: "reload rejected, nothing changed: \(detail)"))
            self.state.logger.error("config reload rejected; the running config is unchanged", metadata: ["gw.detail": "\(detail)"])
            throw AdminProblem(status: 422, code: "invalid_config", message: detail)
        }
        let (changes, needsRestart) = ConfigDiff.between(before.config, config)
        let report = ReloadReport(
            configVersion: snapshot.version, changes: changes, needsRestart: needsRestart, discardedEdits: before.editedRoutes.sorted()
        )
        let summary = changes.isEmpty ? "no changes" : changes.joined(separator: "; ")
        self.state.events.publish(AdminEvent(kind: .configReloaded, message: "config v\(snapshot.version): \(summary)"))
        self.state.logger.notice("config reloaded", metadata: ["gw.config_version": "\(snapshot.version)", "gw.changes": "\(summary)"])
        return report
    }
}

extension AdminEvent {
    init(kind: Kind, message: String, route: String? = nil, provider: String? = nil) {
        self.init(kind: kind, message: message)
        self.route = route
        self.provider = provider
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
