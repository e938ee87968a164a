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
        self.announce(.drain(provider: provider), by: actor)
        return true
    }

    /// Puts `provider` back in rotation, on every replica of a fleet.
    @discardableResult
    public func undrain(_ provider: String, by actor: String = "admin") -> Bool {
        guard self.setDrained(provider, false) else { return false }
        self.announce(.undrain(provider: provider), by: actor)
        return true
    }

    /// Opens (as if it had tripped: it rests, then probes) or resets the breakers of `provider`'s targets,
    /// or of its one `model`. In a fleet, every replica does.
    public func setBreakers(_ provider: String, model: String?, open: Bool, by actor: String = "admin") throws(AdminProblem) -> AdminAck {
        let changed = self.setBreakersHere(provider, model: model, open: open, origin: nil)
        guard !changed.isEmpty else {
            let known = self.targets().filter { $0.target.provider == provider }.map(\.target.model)
            if known.isEmpty { throw AdminProblem(status: 404, code: "unknown_provider", message: "no routed target of provider '\(provider)'") }
            throw AdminProblem(status: 404, code: "unknown_target", message: "provider \(provider) serves no model '\(model ?? "")' (known: \(known.joined(separator: ", ")))")
        }
        self.announce(.breaker(provider: provider, model: model, open: open), by: actor)
        return AdminAck(message: Self.breakerMessage(changed, open: open, origin: nil))
    }

    /// This replica alone. - Returns: the targets changed.
    @discardableResult
    private func setBreakersHere(_ provider: String, model: String?, open: Bool, origin: String?) -> [TargetKey] {
        let now = ContinuousClock.now
        let changed = self.state.health.withLock { $0.setBreakers(of: provider, model: model, open: open, at: now) }
        if !changed.isEmpty {
            let message = Self.breakerMessage(changed, open: open, origin: origin)
            self.state.events.publish(AdminEvent(kind: open ? .breakerOpened : .breakerReset, message: message, provider: provider))
            self.state.logger.notice("breakers set by an operator", metadata: ["gw.provider": "\(provider)", "gw.open": "\(open)"])
        }
        return changed
    }

    private static func breakerMessage(_ targets: [TargetKey], open: Bool, origin: String?) -> String {
        let names = targets.map(\.description).joined(separator: ", ")
        let origin = origin.map { " " + $0 } ?? ""
        return open
            ? "breaker opened\(origin): \(names) (rests, then probes)"
            : "breaker reset\(origin): \(names) closed, failures forgotten"
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

    /// Makes the fleet's state this replica's: its drains, and its route edits since the last reload.
    func reconcile(with fleet: FleetState) {
        for provider in self.state.routing.config.providers.map(\.id) {
            self.setDrained(provider, fleet.drained.contains(provider))
        }
        // Edits the fleet no longer has were discarded by a reload this replica missed: the file wins.
        if !self.state.routing.editedRoutes.subtracting(fleet.routes.keys).isEmpty {
            _ = try? self.reloadHere(origin: "to match the fleet")
        }
        for (alias, edit) in fleet.routes.sorted(by: { $0.key < $1.key }) where self.wouldChange(alias, edit) {
            self.applyFleetChange { () throws(AdminProblem) in _ = try self.editRouteHere(alias, edit, origin: "to match the fleet") }
        }
    }

    /// A change announced to the fleet, made here. A replica hears its own announcements too: drains and
    /// route edits are applied again when they differ from what it has (a reconcile that read the fleet's
    /// state just before the change landed in Redis is repaired so), reloads and flushes are skipped.
    func apply(_ announcement: FleetAnnouncement) {
        let own = announcement.replica == self.state.replicaID
        let origin = "from \(announcement.replica), by \(announcement.actor)"
        switch announcement.change {
        case .drain(let provider): self.setDrained(provider, true)
        case .undrain(let provider): self.setDrained(provider, false)
        case .route(let alias, let edit):
            guard self.wouldChange(alias, edit) else { return }
            self.applyFleetChange { () throws(AdminProblem) in _ = try self.editRouteHere(alias, edit, origin: origin) }
        case .reload:
            // A rejected reload says why in its event and in this replica's heartbeat.
            if !own { _ = try? self.reloadHere(origin: origin) }
        case .cacheFlush(let tenant, let route):
            if !own { _ = self.flushCacheHere(tenant: tenant, route: route, origin: origin) }
        case .breaker(let provider, let model, let open):
            if !own { self.setBreakersHere(provider, model: model, open: open, origin: origin) }
        case .rest(let provider, let model, let seconds):
            // A number from the wire: at most a day, as our own longest rest.
            guard !own, seconds.isFinite, seconds > 0, seconds <= Self.longestRest else { return }
            let target = TargetKey(provider: provider, model: model)
            guard self.state.routing.config.provider(provider) != nil,
                self.state.health.withLock({ $0.rest(target, for: .milliseconds(Int64(seconds * 1000)), at: .now) })
            else { return }
            let message = "target \(target) resting \(Int(seconds.rounded(.up))) s: a rate limit heard by \(announcement.replica)"
            self.state.events.publish(AdminEvent(kind: .targetRested, message: message, provider: provider))
        }
    }

    /// The longest rest a fleet's announcement may ask for, in seconds.
    static let longestRest = 86_400.0

    /// Tells the fleet that `target` rests for `duration` (a vendor's 429 heard here).
    func restFleetWide(_ target: TargetKey, for duration: Duration) {
        let seconds = duration / .seconds(1)
        guard seconds > 0 else { return }
        self.announce(.rest(provider: target.provider, model: target.model, seconds: min(seconds, Self.longestRest)), by: "gateway")
    }

    /// Whether `edit` would change route `alias` here (an edit that cannot apply here would: it is reported).
    private func wouldChange(_ alias: String, _ edit: RouteEdit) -> Bool {
        let routing = self.state.routing
        guard let route = routing.config.routes.first(where: { $0.alias == alias }) else { return true }
        return (try? edit.applied(to: route, providers: routing.config.providers.map(\.id))) != route
    }

    /// A fleet's change that this replica cannot make (a route edit naming a provider its config lacks):
    /// said in the event stream and the log; the replica keeps what it had.
    private func applyFleetChange(_ change: () throws(AdminProblem) -> Void) {
        do {
            try change()
        } catch {
            self.state.events.publish(AdminEvent(kind: .reloadRejected, message: "a fleet change could not be applied here: \(error.message)"))
            self.state.logger.error("a fleet change could not be applied on this replica", metadata: ["gw.error": "\(error.message)"])
        }
    }

    /// Tells the fleet (when there is one); a replica that cannot reach Redis keeps the change to itself and says so.
    private func announce(_ change: FleetAnnouncement.Change, by actor: String) {
        guard let fleet = self.state.fleet else { return }
        let state = self.state
        let announcement = FleetAnnouncement(change: change, replica: state.replicaID, actor: actor)
        Task {
            do {
                try await fleet.announce(announcement)
            } catch {
                let message = "\(change.summary) on this replica only: the fleet's state could not be written (\(error))"
                state.events.publish(AdminEvent(kind: change.eventKind, message: message))
                state.logger.error("a change was not shared with the fleet", metadata: ["gw.change": "\(change.summary)", "gw.error": "\(error)"])
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
        snapshot.ledger = self.state.ledgerStatus
        if case .redis(let settings) = routing.config.state {
            let unavailable = (self.state.quotas as? RedisQuotaStore)?.unavailableAdmissions ?? (denied: 0, allowed: 0)
            let shared = self.state.cache.shared
            snapshot.sharedState = AdminSharedState(
                replica: self.state.replicaID, url: settings.redacted, onError: settings.onError.rawValue, reachable: snapshot.fleet != nil,
                unavailableDenied: unavailable.denied, unavailableAllowed: unavailable.allowed,
                sharedCacheHits: shared?.hits.load(ordering: .relaxed), sharedCacheFailures: shared?.failures.load(ordering: .relaxed)
            )
        }
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
                    errorRate: minute?.errorRate ?? 0, reloadProblem: self.state.reloadProblem.withLock { $0 }
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
        let fleetToday = await self.state.fleetSpendToday()
        let day = BudgetCalendar.shared.dayAndMonth().day
        let rejections = self.state.rejections.withLock { book in
            book.keep(only: Set(names))
            return book
        }
        var tenants: [AdminTenant] = []
        for name in names {
            var usage = await self.state.quotas.usage(of: QuotaSubject(.tenant, name))
            if let fleetToday {
                // Each replica's own counters know only its own spend: the shared ledger knows the fleet's.
                let today = fleetToday[name] ?? SpendLine(tenant: name, key: nil, day: 0, month: 0, requests: 0, tokens: 0)
                var fleet = usage ?? QuotaBook.Usage(spentToday: 0, spentThisMonth: 0, reserved: 0, inFlight: 0, rejections: 0, requestsToday: 0, tokensToday: 0)
                fleet.spentToday = max(fleet.spentToday, today.day)
                fleet.spentThisMonth = max(fleet.spentThisMonth, today.month)
                fleet.requestsToday = max(fleet.requestsToday, today.requests)
                fleet.tokensToday = max(fleet.tokensToday, today.tokens)
                usage = fleet
            }
            let limits = config.tenant(name)?.limits ?? LimitSettings()
            let shares = [
                limits.dailyBudgetUSD.map { budget in budget > 0 ? (usage?.spentToday ?? 0) / budget : 1 },
                limits.monthlyBudgetUSD.map { budget in budget > 0 ? (usage?.spentThisMonth ?? 0) / budget : 1 },
            ].compactMap { $0 }
            tenants.append(AdminTenant(
                name: name, requestsToday: usage?.requestsToday ?? 0, tokensToday: usage?.tokensToday ?? 0,
                costTodayUsd: usage?.spentToday ?? 0, budgetUsed: shares.max(), limitRejections: usage?.rejections ?? 0,
                dailyBudgetUsd: limits.dailyBudgetUSD, monthlyBudgetUsd: limits.monthlyBudgetUSD, costMonthUsd: usage?.spentThisMonth ?? 0,
                rejectionsByReason: rejections.byReason(name, day: day)
            ))
        }
        return tenants
    }

    /// The models line of a tenant's requests that reached none: cache hits, refusals, bad requests.
    static let noModel = "(no model: cached, refused)"

    /// One tenant's day: spend by model and by key from the ledger, and its last refusals.
    public func tenant(_ name: String) async throws(AdminProblem) -> AdminTenantDetail {
        let keys = self.state.keys.all.filter { $0.tenant == name }
        guard self.state.routing.config.tenant(name) != nil || !keys.isEmpty else {
            throw AdminProblem(status: 404, code: "unknown_tenant", message: "no tenant '\(name)' in the config or among the keys")
        }
        let last = self.state.rejections.withLock { $0.last(name) }
        let dayStart = BudgetCalendar.starts(of: Date()).day
        let usage: [UsageLine]
        let spend: [SpendLine]
        do {
            usage = try await self.state.database.usage(tenant: name, since: dayStart)
            spend = try await self.state.database.spend(since: dayStart, monthStart: dayStart).filter { $0.tenant == name }
        } catch {
            return AdminTenantDetail(name: name, models: [], keys: [], lastRejections: last, ledgerProblem: "the ledger could not be read: \(error)")
        }
        var models: [String: AdminSpend] = [:]
        // Requests answered from the cache or refused before a target was chosen have no model ("-").
        for line in usage {
            let model = line.provider == "-" ? Self.noModel : "\(line.provider)/\(line.model)"
            var total = models[model] ?? AdminSpend(name: model, requests: 0, tokens: 0, costUsd: 0)
            total.requests = UntrustedNumber.count(Double(total.requests) + Double(line.requests))
            total.tokens = UntrustedNumber.count(Double(total.tokens) + Double(line.inputTokens) + Double(line.outputTokens))
            total.costUsd += line.costUsd
            models[model] = total
        }
        let byKey = Dictionary(spend.compactMap { line in line.key.map { ($0, line) } }, uniquingKeysWith: { first, _ in first })
        let now = Date().timeIntervalSince1970
        let live = keys.filter { $0.revokedAt == nil && ($0.expiresAt ?? .infinity) > now }
        let keySpend = live.map { key in
            let line = byKey[key.id]
            return AdminSpend(name: key.name, keyId: key.id, keyPrefix: key.prefix, requests: line?.requests ?? 0, tokens: line?.tokens ?? 0, costUsd: line?.day ?? 0)
        }
        let mostFirst: (AdminSpend, AdminSpend) -> Bool = { ($0.costUsd, $0.requests, $1.name) > ($1.costUsd, $1.requests, $0.name) }
        return AdminTenantDetail(name: name, models: models.values.sorted(by: mostFirst), keys: keySpend.sorted(by: mostFirst), lastRejections: last)
    }

    /// Makes a key: stored (hash only) and usable at once; the key itself is in the answer only.
    public func createKey(_ request: KeyRequest) async throws -> CreatedKey {
        if let problems = request.problems { throw AdminProblem(status: 422, code: "invalid_key_request", message: problems) }
        let (key, record) = KeyRing.make(
            tenant: request.tenant, name: request.name ?? "key", limits: request.limits, models: request.models ?? [],
            expires: request.expiresInSeconds.map { .seconds($0) }, now: Date().timeIntervalSince1970
        )
        try await self.state.database.insertKey(record)
        self.state.keys.upsert(record)
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
        guard let record = try await self.state.database.revokeKey(idOrPrefix, at: now) else {
            throw AdminProblem(status: 404, code: "unknown_key", message: "no key with id or prefix '\(idOrPrefix)'")
        }
        self.state.keys.upsert(record)
        return AdminAck(message: "key \(record.name) (\(record.prefix)…) of tenant \(record.tenant) revoked")
    }

    /// Requests, tokens and cost by model and provider since `since` (seconds since 1970).
    public func usage(tenant: String?, since: Double) async throws -> [UsageLine] {
        try await self.state.database.usage(tenant: tenant, since: since)
    }

    /// Replaces a route's strategy and targets, validated first; in-flight requests keep the old route.
    /// In a fleet, every replica does.
    public func editRoute(_ alias: String, _ edit: RouteEdit, by actor: String = "admin") throws(AdminProblem) -> AdminAck {
        let ack = try self.editRouteHere(alias, edit, origin: nil)
        self.announce(.route(alias: alias, edit: edit), by: actor)
        return ack
    }

    private func editRouteHere(_ alias: String, _ edit: RouteEdit, origin: String?) throws(AdminProblem) -> AdminAck {
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
        let message = "route \(alias) updated\(origin.map { " " + $0 } ?? ""): "
            + ConfigDiff.changedParts(routing.config.routes[index], config.routes[index]).joined(separator: ", ")
        self.state.events.publish(AdminEvent(kind: .routeUpdated, message: message, route: alias))
        self.state.logger.notice("route edited", metadata: ["gw.route": "\(alias)", "gw.config_version": "\(snapshot.version)"])
        return AdminAck(message: message)
    }

    /// Re-reads the config file, validates all of it, and swaps it in; a file with any problem
    /// changes nothing. Runtime route edits are discarded: the file is the source of truth. In a
    /// fleet, every replica re-reads its own copy of the file.
    public func reload(by actor: String = "admin") throws(AdminProblem) -> ReloadReport {
        let report = try self.reloadHere(origin: nil)
        self.announce(.reload, by: actor)
        return report
    }

    /// The reload on this replica alone; `origin` says in its event what asked for it.
    func reloadHere(origin: String?) throws(AdminProblem) -> ReloadReport {
        guard let source = self.state.configSource else {
            throw AdminProblem(status: 409, code: "no_config_file", message: "this gateway runs on its environment defaults; there is no file to reload (start it with --config)")
        }
        let config: GatewayConfig
        let before = self.state.routing
        let snapshot: RoutingSnapshot
        let asked = origin.map { " (\($0))" } ?? ""
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
            self.state.reloadProblem.withLock { $0 = detail }
            self.state.events.publish(AdminEvent(kind: .reloadRejected, message: "reload\(asked) rejected, nothing changed: \(detail)"))
            self.state.logger.error("config reload rejected; the running config is unchanged", metadata: ["gw.detail": "\(detail)"])
            throw AdminProblem(status: 422, code: "invalid_config", message: detail)
        }
        self.state.reloadProblem.withLock { $0 = nil }
        let (changes, needsRestart) = ConfigDiff.between(before.config, config)
        let report = ReloadReport(
            configVersion: snapshot.version, changes: changes, needsRestart: needsRestart, discardedEdits: before.editedRoutes.sorted()
        )
        let summary = changes.isEmpty ? "no changes" : changes.joined(separator: "; ")
        self.state.events.publish(AdminEvent(kind: .configReloaded, message: "config v\(snapshot.version)\(asked): \(summary)"))
        self.state.logger.notice("config reloaded", metadata: ["gw.config_version": "\(snapshot.version)", "gw.changes": "\(summary)"])
        return report
    }

    /// Drops cached answers (all, or a tenant's, or a route's); in a fleet, on every replica, and from
    /// the shared tier in Redis first (so no replica copies a flushed answer back from it).
    public func flushCache(tenant: String?, route: String?, by actor: String = "admin") async -> AdminAck {
        var sharedPart = ""
        if let shared = self.state.cache.shared {
            do {
                sharedPart = "; \(try await shared.flush(tenant: tenant, route: route)) shared entries removed from Redis"
            } catch {
                sharedPart = "; the shared entries in Redis could not all be removed (\(error)): flush again once it answers"
                self.state.logger.error("a cache flush did not reach Redis", metadata: ["gw.error": "\(error)"])
            }
        }
        let ack = self.flushCacheHere(tenant: tenant, route: route, origin: nil)
        self.announce(.cacheFlush(tenant: tenant, route: route), by: actor)
        return AdminAck(message: ack.message + sharedPart)
    }

    /// "all", or "tenant acme, route gpt-4o": what a flush covers, in its message and its audit row.
    static func cacheScope(tenant: String?, route: String?) -> String {
        let scope = [tenant.map { "tenant \($0)" }, route.map { "route \($0)" }].compactMap { $0 }.joined(separator: ", ")
        return scope.isEmpty ? "all" : scope
    }

    private func flushCacheHere(tenant: String?, route: String?, origin: String?) -> AdminAck {
        let removed = self.state.cache.flush(tenant: tenant, route: route)
        let message = "cache flushed (\(Self.cacheScope(tenant: tenant, route: route)))\(origin.map { " " + $0 } ?? ""): \(removed) entries removed"
        self.state.events.publish(AdminEvent(kind: .cacheFlushed, message: message, route: route))
        return AdminAck(message: message)
    }
}

extension FleetAnnouncement.Change {
    /// What was changed, for the event that says it stayed on one replica.
    var summary: String {
        switch self {
        case .drain(let provider): "provider \(provider) drained"
        case .undrain(let provider): "provider \(provider) back in rotation"
        case .route(let alias, _): "route \(alias) edited"
        case .reload: "config reloaded"
        case .cacheFlush: "cache flushed"
        case .rest(let provider, let model, _): "target \(provider)/\(model) rested"
        case .breaker(let provider, let model, let open): "breaker of \(provider)\(model.map { "/" + $0 } ?? "") \(open ? "opened" : "reset")"
        }
    }

    var eventKind: AdminEvent.Kind {
        switch self {
        case .drain: .drained
        case .undrain: .undrained
        case .route: .routeUpdated
        case .reload: .configReloaded
        case .cacheFlush: .cacheFlushed
        case .rest: .targetRested
        case .breaker(_, _, let open): open ? .breakerOpened : .breakerReset
        }
    }
}

extension AdminEvent {
    init(kind: Kind, message: String, route: String? = nil, provider: String? = nil) {
        self.init(kind: kind, message: message)
        self.route = route
        self.provider = provider
    }
}
