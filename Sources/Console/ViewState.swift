import Engine
import Foundation

/// A request to the outside world that a key or a message produced; the run loop carries it out.
enum Command: Equatable, Sendable {
    case post(path: String, summary: String)
    case put(path: String, body: Data, summary: String)
    case delete(path: String, summary: String)
    case quit

    /// Whether it changes the gateway (and so, in a fleet, every replica).
    var changesTheGateway: Bool { self != .quit }
}

/// Everything the console shows, as one value. Updated only by the pure functions below, from admin
/// messages and keys; panels render it, so every screen is testable without a terminal.
struct ViewState: Sendable {
    enum Connection: Equatable, Sendable {
        case connecting
        case connected
        /// Since when (seconds since 1970), and why.
        case disconnected(since: Double, reason: String)
    }

    enum Mode: Equatable, Sendable {
        case normal
        case help
        case filter
        case confirm(Command, question: String)
        case editRoute(RouteForm)
        /// Choosing which of the selected tenant's keys to revoke.
        case pickKey(KeyPicker)
    }

    enum TenantSort: String, CaseIterable, Sendable {
        case cost, requests, tokens, budget, name
    }

    /// Series kept for the sparklines, newest last.
    enum Series: String, CaseIterable, Sendable {
        case requestsPerSecond, errorRate, latencyP50, latencyP99, firstTokenP50, costPerMinute, cacheHitRate
    }

    static let historyLength = 240
    static let eventLimit = 500
    /// Breaker changes kept per target.
    static let breakerChangesKept = 6
    /// Replicas kept on the Fleet screen after they left the roll call.
    static let goneReplicasKept = 8

    /// One target's own history, newest last: what its sparklines and breaker history draw.
    struct TargetHistory: Sendable {
        var latencyP50: [Double] = []
        var errorRate: [Double] = []
        /// When its breaker went to which state (seconds since 1970), oldest first.
        var breakerChanges: [(time: Double, state: String)] = []
        var breaker: String?
    }

    /// One tenant's spend today as sampled, for its spend rate and projection.
    struct SpendSample: Sendable, Equatable {
        var time: Double
        var costUsd: Double
    }

    let readOnly: Bool
    let socketPath: String
    var screen: Screen = .overview
    var connection: Connection = .connecting
    var snapshot: AdminSnapshot?
    var history: [Series: [Double]] = [:]
    /// By `provider/model`.
    var targetHistory: [String: TargetHistory] = [:]
    /// By tenant name.
    var spendHistory: [String: [SpendSample]] = [:]
    /// The selected tenant's day in detail, as last fetched.
    var tenantDetail: AdminTenantDetail?
    /// Replicas seen in the roll call that have left it, and when they were last seen (seconds since 1970).
    var goneReplicas: [String: (replica: AdminReplica, lastSeen: Double)] = [:]
    /// When the last snapshot was read (seconds since 1970).
    var snapshotAt: Double?
    var events: [AdminEvent] = []
    /// The last `seq` seen, to report events the gateway dropped for us.
    var lastSequence = 0
    var missedEvents = 0
    var selection: [Screen: Int] = [:]
    var tenantSort: TenantSort = .cost
    var providerSortByErrors = false
    var filter = ""
    var mode: Mode = .normal
    /// The last action's answer, or a warning; shown in the footer until the next one.
    var message: (text: String, isError: Bool)?

    init(readOnly: Bool, socketPath: String) {
        self.readOnly = readOnly
        self.socketPath = socketPath
    }

    // MARK: Messages from the gateway

    /// A new snapshot, read at `now` (seconds since 1970).
    mutating func apply(snapshot: AdminSnapshot, at now: Double) {
        self.connection = .connected
        let before = self.snapshot
        self.snapshot = snapshot
        self.recordTargets(snapshot.targets, at: now)
        self.recordSpend(snapshot.tenants, at: now)
        self.noticeGoneReplicas(before: before?.fleet, now: snapshot.fleet, read: self.snapshotAt ?? now)
        self.snapshotAt = now
        let window = snapshot.windows["10s"]
        self.record(.requestsPerSecond, window?.requestsPerSecond ?? 0)
        self.record(.errorRate, (window?.errorRate ?? 0) * 100)
        self.record(.latencyP50, window?.latencyMs.p50 ?? 0)
        self.record(.latencyP99, window?.latencyMs.p99 ?? 0)
        self.record(.firstTokenP50, window?.timeToFirstTokenMs.p50 ?? 0)
        self.record(.costPerMinute, window?.costPerMinuteUsd ?? 0)
        self.record(.cacheHitRate, (snapshot.cache?.hitRate ?? 0) * 100)
        self.clampSelections()
    }

    /// The selected tenant's detail as fetched; one for another tenant (the selection moved) is kept
    /// until the next fetch, but never shown under the wrong name.
    mutating func apply(tenantDetail: AdminTenantDetail?) {
        self.tenantDetail = tenantDetail
    }

    /// The tenant whose detail the Tenants screen wants, when it is showing.
    var tenantDetailWanted: String? {
        self.screen == .tenants ? self.selectedTenant?.name : nil
    }

    private mutating func recordTargets(_ targets: [AdminTarget], at now: Double) {
        var seen = Set<String>()
        for target in targets {
            let name = "\(target.provider)/\(target.model)"
            seen.insert(name)
            var history = self.targetHistory[name] ?? TargetHistory()
            Self.append(target.latencyMs.p50 ?? 0, to: &history.latencyP50)
            Self.append(target.errorRate1m * 100, to: &history.errorRate)
            if history.breaker != target.breaker {
                // The first sight of a target is not a change: its breaker was in that state already.
                if history.breaker != nil { history.breakerChanges.append((now, target.breaker)) }
                if history.breakerChanges.count > Self.breakerChangesKept { history.breakerChanges.removeFirst(history.breakerChanges.count - Self.breakerChangesKept) }
                history.breaker = target.breaker
            }
            self.targetHistory[name] = history
        }
        // Targets gone from the config are forgotten, so the history stays as large as the config.
        self.targetHistory = self.targetHistory.filter { seen.contains($0.key) }
    }

    private mutating func recordSpend(_ tenants: [AdminTenant], at now: Double) {
        var seen = Set<String>()
        for tenant in tenants {
            seen.insert(tenant.name)
            var samples = self.spendHistory[tenant.name] ?? []
            // Less than before: a new budget day began (or the gateway restarted); the rate starts afresh.
            if let last = samples.last, tenant.costTodayUsd < last.costUsd || now < last.time { samples = [] }
            samples.append(SpendSample(time: now, costUsd: tenant.costTodayUsd.isFinite ? tenant.costTodayUsd : 0))
            if samples.count > Self.historyLength { samples.removeFirst(samples.count - Self.historyLength) }
            self.spendHistory[tenant.name] = samples
        }
        self.spendHistory = self.spendHistory.filter { seen.contains($0.key) }
    }

    /// `read`: when the previous roll call, the last one a gone replica was in, was read.
    private mutating func noticeGoneReplicas(before: [AdminReplica]?, now current: [AdminReplica]?, read: Double) {
        guard let current else { return }
        let present = Set(current.map(\.id))
        for replica in before ?? [] where !present.contains(replica.id) {
            self.goneReplicas[replica.id] = (replica, read - replica.lastSeenSecondsAgo)
        }
        for id in present { self.goneReplicas[id] = nil }
        // A fleet that rolls its pods makes a new replica id each time: the latest few gone ones stay.
        if self.goneReplicas.count > Self.goneReplicasKept {
            let kept = self.goneReplicas.sorted { $0.value.lastSeen > $1.value.lastSeen }.prefix(Self.goneReplicasKept)
            self.goneReplicas = Dictionary(uniqueKeysWithValues: kept.map { ($0.key, $0.value) })
        }
    }

    private static func append(_ value: Double, to values: inout [Double]) {
        values.append(value.isFinite ? value : 0)
        if values.count > Self.historyLength { values.removeFirst(values.count - Self.historyLength) }
    }

    /// Dollars an hour over the last five minutes sampled (less when the console has seen less); nil
    /// until two samples a few seconds apart exist.
    func spendRatePerHour(_ tenant: String) -> Double? {
        guard let samples = self.spendHistory[tenant], let last = samples.last else { return nil }
        guard let first = samples.first(where: { last.time - $0.time <= 300 }), last.time - first.time >= 5 else { return nil }
        return max(0, last.costUsd - first.costUsd) / (last.time - first.time) * 3600
    }

    /// Today's spend plus the recent rate until the budget day ends (midnight UTC), or nil without a rate.
    func projectedSpendToday(_ tenant: AdminTenant, at now: Double) -> Double? {
        guard let rate = self.spendRatePerHour(tenant.name), now.isFinite else { return nil }
        let secondsLeft = 86_400 - now.truncatingRemainder(dividingBy: 86_400)
        return tenant.costTodayUsd + rate * secondsLeft / 3600
    }

    mutating func apply(disconnected reason: String, at now: Double) {
        if case .disconnected = self.connection { return }
        self.connection = .disconnected(since: now, reason: reason)
    }

    mutating func apply(events: [AdminEvent]) {
        for event in events {
            if self.lastSequence > 0 && event.seq > self.lastSequence + 1 { self.missedEvents += event.seq - self.lastSequence - 1 }
            self.lastSequence = event.seq
            self.events.append(event)
        }
        if self.events.count > Self.eventLimit { self.events.removeFirst(self.events.count - Self.eventLimit) }
    }

    /// The gateway's answer to an action: shown, never swallowed. In a fleet, the console says that
    /// every replica applies it.
    mutating func apply(result text: String, ok: Bool, of command: Command? = nil) {
        let replicas = self.snapshot?.fleet?.count ?? 0
        let fleetWide = ok && replicas > 1 && command?.changesTheGateway == true
        self.message = (text + (fleetWide ? "  (fleet-wide: all \(replicas) replicas)" : ""), !ok)
    }

    private mutating func record(_ series: Series, _ value: Double) {
        var values = self.history[series, default: []]
        values.append(value.isFinite ? value : 0)
        if values.count > Self.historyLength { values.removeFirst(values.count - Self.historyLength) }
        self.history[series] = values
    }

    // MARK: Keys

    mutating func handle(_ key: Key) -> [Command] {
        switch self.mode {
        case .help:
            self.mode = .normal
            return []
        case .filter:
            return self.editFilter(key)
        case .confirm(let command, _):
            self.mode = .normal
            guard key == .char("y") || key == .char("Y") else {
                self.message = ("cancelled", false)
                return []
            }
            return [command]
        case .pickKey(var picker):
            switch picker.handle(key) {
            case .picking: self.mode = .pickKey(picker)
            case .cancelled:
                self.mode = .normal
                self.message = ("revoke cancelled", false)
            case .chosen(let key):
                let label = "key \(key.name) (\(key.keyPrefix ?? "")…) of tenant \(picker.tenant)"
                self.mode = .confirm(
                    .delete(path: "/v1/keys/\(AdminPath.segment(key.keyId ?? ""))", summary: "revoke \(label)"),
                    question: "Revoke \(label)? It stops working at once, on every replica. [y/N]"
                )
            }
            return []
        case .editRoute(var form):
            switch form.handle(key) {
            case .editing: self.mode = .editRoute(form)
            case .cancelled:
                self.mode = .normal
                self.message = ("edit cancelled", false)
            case .submit(let edit):
                let body = (try? AdminJSON.encoder().encode(edit)) ?? Data()
                let summary = "route \(form.alias): " + edit.targets.map { "\($0.provider)/\($0.model) w\($0.weight ?? 1)" }.joined(separator: ", ")
                self.mode = .confirm(.put(path: "/v1/routes/\(AdminPath.segment(form.alias))", body: body, summary: summary), question: "Apply to \(summary) (\(edit.strategy ?? ""))?")
            }
            return []
        case .normal:
            break
        }
        guard let action = KeyBindings.action(for: key, on: self.screen, readOnly: self.readOnly) else {
            if key == .escape { self.filter = "" }
            return []
        }
        return self.perform(action)
    }

    private mutating func perform(_ action: Action) -> [Command] {
        switch action {
        case .quit: return [.quit]
        case .help: self.mode = .help
        case .nextScreen: self.screen = Screen(rawValue: self.screen.rawValue % Screen.allCases.count + 1) ?? .overview
        case .previousScreen: self.screen = Screen(rawValue: (self.screen.rawValue + Screen.allCases.count - 2) % Screen.allCases.count + 1) ?? .overview
        case .show(let screen): self.screen = screen
        case .up: self.move(by: -1)
        case .down: self.move(by: 1)
        case .pageUp: self.move(by: -10)
        case .pageDown: self.move(by: 10)
        case .filter: self.mode = .filter
        case .sort:
            if self.screen == .tenants {
                let all = TenantSort.allCases
                self.tenantSort = all[((all.firstIndex(of: self.tenantSort) ?? 0) + 1) % all.count]
            } else {
                self.providerSortByErrors.toggle()
            }
        case .openBreaker, .resetBreaker:
            guard let target = self.selectedTarget else { return [] }
            let open = action == .openBreaker
            let name = "\(target.provider)/\(target.model)"
            let path = "/v1/providers/\(AdminPath.segment(target.provider))/breaker/\(open ? "open" : "reset")?model=\(AdminPath.query(target.model))"
            let question = open
                ? "Open the breaker of \(name)? It takes no requests until its rest ends, then probes. [y/N]"
                : "Reset the breaker of \(name)? It closes and forgets its failures. [y/N]"
            self.mode = .confirm(.post(path: path, summary: "\(open ? "open" : "reset") breaker of \(name)"), question: question)
        case .revokeKey:
            guard let tenant = self.selectedTenant else { return [] }
            guard let detail = self.tenantDetail, detail.name == tenant.name else {
                self.message = ("the keys of \(tenant.name) are still being read; try again in a moment", true)
                return []
            }
            let keys = detail.keys.filter { $0.keyId != nil }
            guard !keys.isEmpty else {
                self.message = ("tenant \(tenant.name) has no live keys", true)
                return []
            }
            self.mode = .pickKey(KeyPicker(tenant: tenant.name, keys: keys))
        case .drain, .undrain:
            guard let target = self.selectedTarget else { return [] }
            let verb = action == .drain ? "drain" : "undrain"
            let question = action == .drain
                ? "Drain \(target.provider)? New requests go elsewhere, in-flight ones finish. [y/N]"
                : "Undrain \(target.provider)? It takes new requests again. [y/N]"
            self.mode = .confirm(.post(path: "/v1/providers/\(AdminPath.segment(target.provider))/\(verb)", summary: "\(verb) \(target.provider)"), question: question)
        case .editRoute:
            guard let route = self.selectedRoute else { return [] }
            self.mode = .editRoute(RouteForm(route))
        case .flushCache:
            // On Routes, the selected route's; on Tenants, the selected tenant's; else all of it.
            let scope: (parameter: String, name: String)? = switch self.screen {
            case .routes: self.selectedRoute.map { ("route", $0.alias) }
            case .tenants: self.selectedTenant.map { ("tenant", $0.name) }
            default: nil
            }
            let path = "/v1/cache/flush" + (scope.map { "?\($0.parameter)=\(AdminPath.query($0.name))" } ?? "")
            let words = scope.map { " of \($0.parameter) \($0.name)" } ?? ""
            self.mode = .confirm(.post(path: path, summary: "flush cache" + words), question: "Flush the cache\(words)? [y/N]")
        case .reload:
            self.mode = .confirm(.post(path: "/v1/config/reload", summary: "reload config"), question: "Reload the config file? It applies only if all of it is valid. [y/N]")
        }
        return []
    }

    private mutating func editFilter(_ key: Key) -> [Command] {
        switch key {
        case .enter: self.mode = .normal
        case .escape:
            self.filter = ""
            self.mode = .normal
        case .backspace: if !self.filter.isEmpty { self.filter.removeLast() }
        case .char(let character): self.filter.append(character)
        default: break
        }
        self.clampSelections()
        return []
    }

    private mutating func move(by delta: Int) {
        let count = self.rowCount(self.screen)
        guard count > 0 else { return }
        self.selection[self.screen] = max(0, min(count - 1, (self.selection[self.screen] ?? 0) + delta))
    }

    private mutating func clampSelections() {
        for screen in Screen.allCases {
            let count = self.rowCount(screen)
            if let selected = self.selection[screen], selected >= count { self.selection[screen] = max(0, count - 1) }
        }
    }

    // MARK: What the panels list

    var visibleTargets: [AdminTarget] {
        var targets = self.snapshot?.targets ?? []
        if !self.filter.isEmpty { targets = targets.filter { "\($0.provider)/\($0.model) \($0.health)".localizedCaseInsensitiveContains(self.filter) } }
        if self.providerSortByErrors { targets.sort { $0.errorRate1m > $1.errorRate1m } }
        return targets
    }

    var visibleTenants: [AdminTenant] {
        (self.snapshot?.tenants ?? []).sorted { lhs, rhs in
            switch self.tenantSort {
            case .cost: return lhs.costTodayUsd > rhs.costTodayUsd
            case .requests: return lhs.requestsToday > rhs.requestsToday
            case .tokens: return lhs.tokensToday > rhs.tokensToday
            case .budget: return (lhs.budgetUsed ?? -1) > (rhs.budgetUsed ?? -1)
            case .name: return lhs.name < rhs.name
            }
        }
    }

    var visibleEvents: [AdminEvent] {
        guard !self.filter.isEmpty else { return self.events }
        return self.events.filter { event in
            [event.kind.rawValue, event.message, event.route ?? "", event.provider ?? "", event.status.map(String.init) ?? ""]
                .contains { $0.localizedCaseInsensitiveContains(self.filter) }
        }
    }

    var selectedTarget: AdminTarget? {
        let targets = self.visibleTargets
        let index = self.selection[.providers] ?? 0
        return targets.indices.contains(index) ? targets[index] : nil
    }

    var selectedTenant: AdminTenant? {
        let tenants = self.visibleTenants
        let index = self.selection[.tenants] ?? 0
        return tenants.indices.contains(index) ? tenants[index] : nil
    }

    var selectedRoute: AdminRoute? {
        let routes = self.snapshot?.routes ?? []
        let index = self.selection[.routes] ?? 0
        return routes.indices.contains(index) ? routes[index] : nil
    }

    func rowCount(_ screen: Screen) -> Int {
        switch screen {
        case .providers: return self.visibleTargets.count
        case .tenants: return self.visibleTenants.count
        case .routes: return self.snapshot?.routes.count ?? 0
        case .log: return self.visibleEvents.count
        case .fleet: return (self.snapshot?.fleet?.count ?? 0) + self.goneReplicas.count
        case .overview, .cache: return 0
        }
    }
}

/// The small form that edits a route: weights, order, which targets are on, the strategy.
struct RouteForm: Equatable, Sendable {
    struct Row: Equatable, Sendable {
        var provider: String
        var model: String
        var weight: Int
        var priority: Int
        var enabled = true
    }

    enum Outcome: Equatable {
        case editing
        case cancelled
        case submit(RouteEdit)
    }

    static let strategies = ["weighted", "least-busy", "latency", "cost", "priority"]

    let alias: String
    var strategy: String
    var rows: [Row]
    var cursor = 0
    /// Why the last Enter was refused.
    var problem: String?

    init(_ route: AdminRoute) {
        self.alias = route.alias
        self.strategy = route.strategy
        self.rows = route.targets.map { Row(provider: $0.provider, model: $0.model, weight: $0.weight, priority: $0.priority) }
    }

    mutating func handle(_ key: Key) -> Outcome {
        self.problem = nil
        switch key {
        case .escape: return .cancelled
        case .up, .char("k"): self.cursor = max(0, self.cursor - 1)
        case .down, .char("j"): self.cursor = min(self.rows.count - 1, self.cursor + 1)
        case .char("+"), .right: self.rows[self.cursor].weight = min(self.rows[self.cursor].weight, RouteTarget.heaviest - 1) + 1
        case .char("-"), .left: self.rows[self.cursor].weight = max(0, self.rows[self.cursor].weight - 1)
        case .char(" "): self.rows[self.cursor].enabled.toggle()
        case .char("K") where self.cursor > 0:
            self.rows.swapAt(self.cursor, self.cursor - 1)
            self.cursor -= 1
        case .char("J") where self.cursor < self.rows.count - 1:
            self.rows.swapAt(self.cursor, self.cursor + 1)
            self.cursor += 1
        case .char("s"):
            let index = Self.strategies.firstIndex(of: self.strategy) ?? 0
            self.strategy = Self.strategies[(index + 1) % Self.strategies.count]
        case .enter:
            let enabled = self.rows.filter(\.enabled)
            guard !enabled.isEmpty else {
                self.problem = "at least one target must stay enabled"
                return .editing
            }
            return .submit(RouteEdit(strategy: self.strategy, targets: enabled.map { .init(provider: $0.provider, model: $0.model, weight: $0.weight, priority: $0.priority) }))
        default: break
        }
        return .editing
    }
}

/// The list a revoke starts from: the selected tenant's live keys, one chosen with the arrows.
struct KeyPicker: Equatable, Sendable {
    enum Outcome: Equatable {
        case picking
        case cancelled
        case chosen(AdminSpend)
    }

    let tenant: String
    let keys: [AdminSpend]
    var cursor = 0

    mutating func handle(_ key: Key) -> Outcome {
        switch key {
        case .escape, .char("q"): return .cancelled
        case .up, .char("k"): self.cursor = max(0, self.cursor - 1)
        case .down, .char("j"): self.cursor = min(self.keys.count - 1, self.cursor + 1)
        case .enter: return .chosen(self.keys[self.cursor])
        default: break
        }
        return .picking
    }
}
