#if canImport(Glibc)
import Glibc
#endif
import Engine
import Foundation
import Logging
import NIOCore
import Synchronization

/// The operations an operator (the admin socket, `ctl`, tests) performs on a running gateway.
public struct GatewayControl: Sendable {
    let state: GatewayState

    /// Stops new requests to `provider`'s targets; in-flight ones finish. In a fleet, every replica does.
    /// - Returns: false when no such provider exists.
    @discardableResult
    public func drain(_ provider: String, by actor: String = "admin") -> Bool {
        guard self.setDrained(provider, true) else { return false }
        self.announce(provider, drained: true, by: actor)
        return true
    }

    /// Puts `provider` back in rotation, on every replica of a fleet.
    @discardableResult
    public func undrain(_ provider: String, by actor: String = "admin") -> Bool {
        guard self.setDrained(provider, false) else { return false }
        self.announce(provider, drained: false, by: actor)
        return true
    }

    /// This replica alone: what a drain announced by another replica does here.
    /// - Returns: false when no such provider exists.
    @discardableResult
    func setDrained(_ provider: String, _ drained: Bool) -> Bool {
        guard self.state.routing.config.provider(provider) != nil else { return false }
        let changed = self.state.health.withLock { drained ? $0.drain(provider) : $0.undrain(provider) }
        if changed {
            self.state.events.publish(
                drained
                    ? AdminEvent(kind: .drained, message: "provider \(provider) drained: no new requests", provider: provider)
                    : AdminEvent(kind: .undrained, message: "provider \(provider) back in rotation", provider: provider)
            )
        }
        return true
    }

    /// Makes this replica's drains the fleet's: every provider in `drained` is drained, every other back.
    func reconcileDrains(_ drained: Set<String>) {
        for provider in self.state.routing.config.providers.map(\.id) {
            self.setDrained(provider, drained.contains(provider))
        }
    }

    /// Tells the fleet (when there is one); a replica that cannot reach Redis keeps the change to itself and says so.
    private func announce(_ provider: String, drained: Bool, by actor: String) {
        guard let fleet = self.state.fleet else { return }
        let state = self.state
        Task {
            do {
                try await fleet.announce(provider, drained: drained, by: actor)
            } catch {
                let message = "provider \(provider) \(drained ? "drained" : "undrained") on this replica only: the fleet's state could not be written (\(error))"
                state.events.publish(AdminEvent(kind: drained ? .drained : .undrained, message: message, provider: provider))
                state.logger.error("a drain was not shared with the fleet", metadata: ["gw.provider": "\(provider)", "gw.error": "\(error)"])
            }
        }
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
        snapshot.fleet = try? await self.state.fleet?.replicas()
        return snapshot
    }

    /// Beats every 2 s into the fleet's roll call until cancelled, once the listener is up.
    func beat(to fleet: FleetSync) async {
        while !Task.isCancelled {
            let port = self.state.listeningPort.load(ordering: .relaxed)
            if port != 0 {
                let routing = self.state.routing
                let second = self.state.telemetrySecond
                let minute = self.state.telemetry.withLock { $0.gatewayWindows(now: second)["1m"] }
                let digest = self.state.configDigest.withLock { $0 } + (routing.editedRoutes.isEmpty ? "" : "+edits")
                let replica = AdminReplica(
                    id: self.state.replicaID, address: "\(self.state.server.listen.host):\(port)", version: GatewayVersion.current,
                    configDigest: digest, configVersion: routing.version, upSince: self.state.startedAt, requestsLastMinute: minute?.requests ?? 0,
                    errorRate: minute?.errorRate ?? 0
                )
                do {
                    try await fleet.beat(replica)
                } catch {
                    self.state.logger.debug("a heartbeat did not reach Redis", metadata: ["gw.error": "\(error)"])
                }
            }
            try? await Task.sleep(for: port == 0 ? .milliseconds(100) : .seconds(2))
        }
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
            let digest = source.digest()
            var applied = config
            applied.server = self.state.server
            applied.state = before.config.state
            snapshot = try self.state.install(applied, editedRoutes: [])
            self.state.configDigest.withLock { $0 = digest }
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
