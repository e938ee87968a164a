import Engine
import Foundation

/// A request to the outside world that a key or a message produced; the run loop carries it out.
enum Command: Equatable, Sendable {
    case post(path: String, summary: String)
    case put(path: String, body: Data, summary: String)
    case quit
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

    let readOnly: Bool
    let socketPath: String
    var screen: Screen = .overview
    var connection: Connection = .connecting
    var snapshot: AdminSnapshot?
    var history: [Series: [Double]] = [:]
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

    mutating func apply(snapshot: AdminSnapshot) {
        self.connection = .connected
        self.snapshot = snapshot
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

    /// The gateway's answer to an action: shown, never swallowed.
    mutating func apply(result text: String, ok: Bool) {
        self.message = (text, !ok)
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
        case .editRoute(var form):
            switch form.handle(key) {
            case .editing: self.mode = .editRoute(form)
            case .cancelled:
                self.mode = .normal
                self.message = ("edit cancelled", false)
            case .submit(let edit):
                let body = (try? AdminJSON.encoder().encode(edit)) ?? Data()
                let summary = "route \(form.alias): " + edit.targets.map { "\($0.provider)/\($0.model) w\($0.weight ?? 1)" }.joined(separator: ", ")
                self.mode = .confirm(.put(path: "/v1/routes/\(Self.escape(form.alias))", body: body, summary: summary), question: "Apply to \(summary) (\(edit.strategy ?? ""))?")
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
        case .drain, .undrain:
            guard let target = self.selectedTarget else { return [] }
            let verb = action == .drain ? "drain" : "undrain"
            let question = action == .drain
                ? "Drain \(target.provider)? New requests go elsewhere, in-flight ones finish. [y/N]"
                : "Undrain \(target.provider)? It takes new requests again. [y/N]"
            self.mode = .confirm(.post(path: "/v1/providers/\(Self.escape(target.provider))/\(verb)", summary: "\(verb) \(target.provider)"), question: question)
        case .editRoute:
            guard let route = self.selectedRoute else { return [] }
            self.mode = .editRoute(RouteForm(route))
        case .flushCache:
            let route = self.screen == .routes ? self.selectedRoute?.alias : nil
            let path = "/v1/cache/flush" + (route.map { "?route=\(Self.escape($0))" } ?? "")
            self.mode = .confirm(.post(path: path, summary: "flush cache" + (route.map { " of \($0)" } ?? "")), question: "Flush the cache\(route.map { " of route \($0)" } ?? "")? [y/N]")
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
        case .fleet: return self.snapshot?.fleet?.count ?? 0
        case .overview, .cache: return 0
        }
    }

    static func escape(_ segment: String) -> String {
        segment.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(["/", "?"])) ?? segment
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
