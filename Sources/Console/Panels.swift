import Engine
import Foundation

/// Draws the view state into a canvas: header, the current screen, overlays, footer.
/// Pure: the same state and size give the same canvas.
struct Renderer {
    /// Block sparklines and box lines when the locale is UTF-8, ASCII otherwise.
    var unicode = true
    /// Seconds since 1970, for "disconnected for …".
    var now: Double = 0

    static let sparkBlocks: [Character] = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"]
    static let sparkASCII: [Character] = ["_", ".", "-", "~", "=", "+", "*", "#"]

    func render(_ state: ViewState, width: Int, height: Int) -> Canvas {
        var canvas = Canvas(width: width, height: height)
        guard width >= 20, height >= 6 else {
            canvas.put(0, 0, "terminal too small", .warn)
            return canvas
        }
        self.header(state, &canvas)
        let body = (y: 2, height: height - 3)
        switch state.screen {
        case .overview: self.overview(state, &canvas, top: body.y, height: body.height)
        case .providers: self.providers(state, &canvas, top: body.y, height: body.height)
        case .tenants: self.tenants(state, &canvas, top: body.y, height: body.height)
        case .routes: self.routes(state, &canvas, top: body.y, height: body.height)
        case .cache: self.cache(state, &canvas, top: body.y, height: body.height)
        case .log: self.log(state, &canvas, top: body.y, height: body.height)
        case .fleet: self.fleet(state, &canvas, top: body.y, height: body.height)
        }
        switch state.mode {
        case .help: self.help(state, &canvas)
        case .editRoute(let form): self.routeForm(form, &canvas)
        case .pickKey(let picker): self.keyPicker(picker, &canvas)
        default: break
        }
        self.footer(state, &canvas)
        return canvas
    }

    // MARK: Frame

    private func header(_ state: ViewState, _ canvas: inout Canvas) {
        var x = 0
        if canvas.width >= 96 {
            canvas.put(0, 0, " Switchyard ", .accent, bold: true)
            x = 12
        }
        for screen in Screen.allCases {
            let label = " \(screen.rawValue) \(screen.tab) "
            let active = screen == state.screen
            canvas.put(x, 0, label, active ? .selected : .muted, bold: active)
            x += label.count + (canvas.width >= 96 ? 1 : 0)
        }
        let status: (String, Role) = switch state.connection {
        case .connecting: ("…", .warn)
        case .connected: ((self.unicode ? "● " : "* ") + "live", .ok)
        case .disconnected: ((self.unicode ? "○ " : "o ") + "down", .error)
        }
        canvas.put(max(x, canvas.width - status.0.count - 1), 0, status.0, status.1, bold: true)
        if case .disconnected(let since, let reason) = state.connection {
            let text = "disconnected for \(Self.duration(self.now - since)), retrying: \(reason)"
            canvas.put(1, 1, text, .error, bold: true, limit: canvas.width - 2)
            return
        }
        var info = "socket \(state.socketPath)"
        if let snapshot = state.snapshot {
            info += "  ·  up \(Self.duration(snapshot.uptimeSeconds))  ·  config v\(snapshot.configVersion) (\(snapshot.configSource))"
        }
        canvas.put(1, 1, info, .muted, limit: canvas.width - 2)
    }

    private func footer(_ state: ViewState, _ canvas: inout Canvas) {
        let y = canvas.height - 1
        switch state.mode {
        case .confirm(_, let question):
            canvas.put(0, y, " " + question, .warn, bold: true)
            return
        case .filter:
            canvas.put(0, y, " filter: \(state.filter)█", .accent)
            return
        case .editRoute:
            canvas.put(0, y, " ↑↓ select  +/- weight  space on/off  K/J move  s strategy  Enter apply  Esc cancel", .muted)
            return
        case .pickKey:
            canvas.put(0, y, " ↑↓ select  Enter revoke…  Esc cancel", .muted)
            return
        default:
            break
        }
        if let message = state.message {
            canvas.put(0, y, " " + message.text, message.isError ? .error : .ok, bold: true)
            return
        }
        var x = 0
        for (key, hint) in KeyBindings.footer(on: state.screen, readOnly: state.readOnly) {
            guard x + key.count + hint.count + 2 <= canvas.width else { break }
            canvas.put(x, y, key, .accent, bold: true)
            canvas.put(x + key.count, y, " " + hint + "  ", .muted)
            x += key.count + hint.count + 3
        }
        if state.readOnly { canvas.put(canvas.width - 10, y, "read-only", .warn) }
        if !state.filter.isEmpty, state.screen == .providers || state.screen == .log {
            let text = "filter: \(state.filter)"
            canvas.put(max(x, canvas.width - text.count - 12), y, text, .accent)
        }
    }

    // MARK: Screens

    private func overview(_ state: ViewState, _ canvas: inout Canvas, top: Int, height: Int) {
        let window = state.snapshot?.windows["10s"]
        // Percentages are drawn against a floor (errors 5%, hits 100%), so a small steady share looks small.
        let rows: [(String, String, ViewState.Series, Bool, Double)] = [
            ("requests/s", window.map { Self.number($0.requestsPerSecond) } ?? "-", .requestsPerSecond, false, 0),
            ("errors", window.map { Self.percent($0.errorRate) } ?? "-", .errorRate, true, 5),
            ("latency p50", Self.ms(window?.latencyMs.p50) + " ms", .latencyP50, true, 0),
            ("latency p99", Self.ms(window?.latencyMs.p99) + " ms", .latencyP99, true, 0),
            ("TTFT p50", Self.ms(window?.timeToFirstTokenMs.p50) + " ms", .firstTokenP50, true, 0),
            ("cost/min", window.map { Self.money($0.costPerMinuteUsd) } ?? "-", .costPerMinute, false, 0),
            ("cache hits", state.snapshot?.cache.map { Self.percent($0.hitRate) } ?? "n/a", .cacheHitRate, false, 100),
        ]
        // A taller terminal gives each graph more rows (up to 6), keeping the windows table under them.
        let rowsEach = max(1, min(6, (height - 9) / rows.count))
        let boxHeight = min(rows.count * rowsEach + 2, height)
        canvas.box(0, top, canvas.width, boxHeight, title: "Last 10 s, history \(ViewState.historyLength) samples", ascii: !self.unicode)
        let sparkX = 28
        let sparkWidth = max(0, canvas.width - sparkX - 2)
        for (index, row) in rows.enumerated() where (index + 1) * rowsEach <= boxHeight - 2 {
            let y = top + 1 + index * rowsEach
            canvas.put(2, y, row.0, .muted)
            canvas.put(15, y, row.1, .text, bold: true, limit: 12)
            let values = state.history[row.2] ?? []
            // The graph's scale: what its top row stands for.
            if rowsEach >= 2 { canvas.put(15, y + 1, "top " + Self.scale(Self.scaleTop(values.suffix(sparkWidth), floor: row.4)), .muted, limit: 12) }
            self.sparkline(values, &canvas, x: sparkX, y: y, width: sparkWidth, height: rowsEach, scaleFloor: row.4, latencyColors: row.3)
        }
        let tableTop = top + boxHeight
        guard height - boxHeight >= 4 else { return }
        let windows = ["10s", "1m", "15m"]
        let tableHeight = min(windows.count + 3, height - boxHeight)
        canvas.box(0, tableTop, canvas.width, tableHeight, title: "Windows", ascii: !self.unicode)
        let columns = [("window", 8), ("req/s", 8), ("errors", 8), ("p50 ms", 8), ("p95 ms", 8), ("p99 ms", 8), ("ttft p50", 9), ("ttft p99", 9), ("cost/min", 9)]
        self.row(columns.map(\.0), widths: columns.map(\.1), &canvas, x: 2, y: tableTop + 1, role: .muted)
        for (index, name) in windows.enumerated() where index < tableHeight - 3 {
            guard let summary = state.snapshot?.windows[name] else { continue }
            let cells = [
                name, Self.number(summary.requestsPerSecond), Self.percent(summary.errorRate), Self.ms(summary.latencyMs.p50),
                Self.ms(summary.latencyMs.p95), Self.ms(summary.latencyMs.p99), Self.ms(summary.timeToFirstTokenMs.p50),
                Self.ms(summary.timeToFirstTokenMs.p99), Self.money(summary.costPerMinuteUsd),
            ]
            self.row(cells, widths: columns.map(\.1), &canvas, x: 2, y: tableTop + 2 + index, role: summary.errorRate > 0.05 ? .warn : .text)
        }
        let errorsY = tableTop + tableHeight
        if errorsY < top + height, let minute = state.snapshot?.windows["1m"] {
            let parts = FaultDomain.allCases.map { "\($0.rawValue) \(minute.errors[$0.rawValue] ?? 0)" }.joined(separator: " · ")
            canvas.put(1, errorsY, "errors by fault domain, last minute: \(parts)", .muted)
        }
    }

    private func routes(_ state: ViewState, _ canvas: inout Canvas, top: Int, height: Int) {
        canvas.box(0, top, canvas.width, height, title: "Routes", focused: true, ascii: !self.unicode)
        guard let routes = state.snapshot?.routes, !routes.isEmpty else {
            canvas.put(2, top + 1, state.snapshot == nil ? "waiting for the gateway…" : "no routes", .muted)
            return
        }
        var y = top + 1
        let selected = state.selection[.routes] ?? 0
        // Wider terminals: whole target names (up to 48 columns) and longer share bars.
        let longest = routes.flatMap(\.targets).map { "\($0.provider)/\($0.model)".count + 2 }.max() ?? 0
        let nameWidth = canvas.width >= 120 ? min(48, max(27, longest)) : 27
        let barWidth = canvas.width >= 160 ? 40 : 20
        for (index, route) in routes.enumerated() {
            guard y < top + height - 1 else { break }
            var title = "\(route.alias)\(route.editedAtRuntime ? " *" : "")  \(route.strategy)  \(route.requests1m) req/1m"
            if !route.fallbacks.isEmpty { title += "  → \(route.fallbacks.joined(separator: ", "))" }
            if route.hedged { title += "  hedged" }
            canvas.put(2, y, title, index == selected ? .selected : .accent, bold: true, limit: canvas.width - 4)
            if index == selected { canvas.highlight(y, from: 1, width: canvas.width - 2, role: .selected) }
            y += 1
            for target in route.targets {
                guard y < top + height - 1 else { break }
                canvas.put(4, y, "\(target.provider)/\(target.model)", .text, limit: nameWidth - 1)
                canvas.put(4 + nameWidth, y, "w\(target.weight) p\(target.priority)", .muted)
                canvas.put(14 + nameWidth, y, Self.bar(target.share1m, width: barWidth, unicode: self.unicode), .volumeMid)
                canvas.put(15 + nameWidth + barWidth, y, Self.percent(target.share1m), .text)
                y += 1
            }
        }
        if routes.contains(where: \.editedAtRuntime), top + height - 2 > y {
            canvas.put(2, top + height - 2, "* edited at runtime; a reload of the config file replaces the edit", .muted, limit: canvas.width - 4)
        }
    }

    private func cache(_ state: ViewState, _ canvas: inout Canvas, top: Int, height: Int) {
        canvas.box(0, top, canvas.width, height, title: "Cache", focused: true, ascii: !self.unicode)
        guard let cache = state.snapshot?.cache else {
            canvas.put(2, top + 2, "Response caching is not enabled in this gateway: nothing to show.", .muted, limit: canvas.width - 4)
            return
        }
        let rows = [
            ("entries", "\(cache.entries)"), ("size", ByteSize.format(cache.bytes)), ("hit rate", Self.percent(cache.hitRate)),
            ("semantic hits", Self.percent(cache.semanticHitRate)), ("miss rate", Self.percent(cache.missRate)),
            ("vectors", "\(cache.vectors) in \(cache.partitions) partitions"), ("embed failures", "\(cache.embeddingFailures)"),
        ]
        for (index, row) in rows.enumerated() where index < height - 3 {
            canvas.put(2, top + 2 + index, row.0, .muted)
            canvas.put(18, top + 2 + index, row.1, .text, bold: true)
        }
        let graphHeight = max(1, min(8, height - 6))
        canvas.put(30, top + 2, "hit rate history, 0–100%", .muted, limit: max(0, canvas.width - 32))
        self.sparkline(state.history[.cacheHitRate] ?? [], &canvas, x: 30, y: top + 3, width: max(0, canvas.width - 32), height: graphHeight, scaleFloor: 100, latencyColors: false)
    }

    private func log(_ state: ViewState, _ canvas: inout Canvas, top: Int, height: Int) {
        var title = "Live log (\(state.events.count) events"
        if state.missedEvents > 0 { title += ", \(state.missedEvents) missed" }
        canvas.box(0, top, canvas.width, height, title: title + ")", focused: true, ascii: !self.unicode)
        let events = state.visibleEvents
        let visible = height - 2
        let selected = state.selection[.log] ?? max(0, events.count - 1)
        // Newest at the bottom; the view follows the end unless a row further up is selected.
        let end = state.selection[.log] == nil ? events.count : min(events.count, max(selected + 1, visible))
        let start = max(0, end - visible)
        for (offset, event) in events[start..<end].enumerated() {
            let y = top + 1 + offset
            let role: Role = switch event.status {
            case .some(let status) where status >= 500: .error
            case .some(let status) where status >= 400: .warn
            case .some: .text
            case .none: event.kind == .breakerOpened || event.kind == .reloadRejected ? .error : .accent
            }
            canvas.put(2, y, Self.clock(event.time), .muted)
            var text = event.kind == .request ? "\(event.status.map(String.init) ?? "-") \(event.route ?? "-")" : event.kind.rawValue
            if let provider = event.provider { text += " → \(provider)" + (event.model.map { "/\($0)" } ?? "") }
            if let latency = event.latencyMs { text += "  \(Self.number(latency)) ms" }
            if event.kind != .request || event.failure != nil { text += "  \(event.message)" }
            canvas.put(11, y, text, role, limit: canvas.width - 13)
            if state.selection[.log] != nil && start + offset == selected { canvas.highlight(y, from: 1, width: canvas.width - 2, role: .selected) }
        }
        if events.isEmpty { canvas.put(2, top + 1, state.filter.isEmpty ? "no events yet" : "no events match '\(state.filter)'", .muted) }
    }

    // MARK: Overlays

    /// Where the ledger goes and how far behind it is: a fleet's shared database may be away.
    static func ledgerLine(_ ledger: AdminLedger) -> (String, Role) {
        let waiting = ledger.rowsQueued + ledger.rowsJournalled
        var text = "Ledger \(ledger.database)  ·  \(ledger.rowsWritten) rows written"
        if ledger.databaseDown { text += "  ·  DATABASE NOT ANSWERING" }
        guard waiting > 0 else { return (text + "  ·  up to date", ledger.databaseDown ? .error : .muted) }
        text += "  ·  \(waiting) waiting (\(ledger.rowsJournalled) journalled on disk), \(Self.duration(ledger.secondsBehind)) behind"
        return (text, ledger.databaseDown ? .error : ledger.secondsBehind > 5 ? .warn : .muted)
    }

    private func fleet(_ state: ViewState, _ canvas: inout Canvas, top: Int, height: Int) {
        let replicas = state.snapshot?.fleet ?? []
        canvas.box(0, top, canvas.width, height, title: replicas.isEmpty ? "Fleet" : "Fleet, \(replicas.count) replicas up" + (state.goneReplicas.isEmpty ? "" : ", \(state.goneReplicas.count) gone"), focused: true, ascii: !self.unicode)
        if let ledger = state.snapshot?.ledger {
            let (text, role) = Self.ledgerLine(ledger)
            // Too long for one line: cut after the database, the rest on the line below.
            if text.count > canvas.width - 4, let cut = text.range(of: "  ·  ") {
                canvas.put(2, top + height - 3, String(text[..<cut.lowerBound]), role, limit: canvas.width - 4)
                canvas.put(2, top + height - 2, String(text[cut.upperBound...]), role, limit: canvas.width - 4)
            } else {
                canvas.put(2, top + height - 2, text, role, limit: canvas.width - 4)
            }
        }
        guard let shared = state.snapshot?.sharedState else {
            canvas.put(2, top + 2, state.snapshot == nil ? "waiting for the gateway…" : "One replica: its limits, budgets and drains live in this process (state: local).", .muted, limit: canvas.width - 4)
            if state.snapshot != nil {
                canvas.put(2, top + 3, "Replicas share them through Redis with state: redis://… (docs/fleet.md).", .muted, limit: canvas.width - 4)
            }
            return
        }
        var x = 2
        var line = top + 1
        func say(_ text: String, _ role: Role, bold: Bool = false) {
            guard x < canvas.width - 2 else { return }
            canvas.put(x, line, text, role, bold: bold, limit: canvas.width - 2 - x)
            x += text.count
        }
        say("Redis \(shared.url)  ", .text)
        say(shared.reachable ? "reachable" : "NOT ANSWERING", shared.reachable ? .ok : .error, bold: true)
        say("  ·  on error: \(shared.onError)", .muted)
        (x, line) = (2, top + 2)
        let away = shared.unavailableDenied + shared.unavailableAllowed
        say("Redis away: \(shared.unavailableDenied) refused, \(shared.unavailableAllowed) let through", away > 0 ? .warn : .muted)
        if let hits = shared.sharedCacheHits {
            say("  ·  shared cache: \(hits) hits, \(shared.sharedCacheFailures ?? 0) failed", (shared.sharedCacheFailures ?? 0) > 0 ? .warn : .muted)
        }
        guard !replicas.isEmpty else {
            canvas.put(2, top + 4, "The roll call cannot be read: Redis does not answer.", .error, limit: canvas.width - 4)
            return
        }
        // The address from 120 columns; the notes beside the rows from 170, under the table before.
        let withAddress = canvas.width >= 120
        let wide = canvas.width >= 170
        let columns = withAddress
            ? [("REPLICA", 24), ("ADDRESS", 18), ("VERSION", 10), ("CONFIG", 14), ("UP", 8), ("REQ/1m", 8), ("ERR%", 7), ("SEEN", 6)]
            : [("REPLICA", 20), ("VERSION", 10), ("CONFIG", 14), ("UP", 7), ("REQ/1m", 7), ("ERR%", 6), ("SEEN", 5)]
        let noteX = 2 + columns.map(\.1).reduce(0, +)
        self.row(columns.map(\.0) + (wide ? ["NOTE"] : []), widths: columns.map(\.1) + [canvas.width - noteX - 2], &canvas, x: 2, y: top + 3, role: .muted)
        // The config most replicas run: a replica on another one is stale (or its reload was rejected).
        let digests = Dictionary(grouping: replicas, by: \.configDigest)
        let common = digests.max { $0.value.count < $1.value.count || ($0.value.count == $1.value.count && $0.key > $1.key) }?.key
        let selected = state.selection[.fleet] ?? 0
        // A replica that left the roll call stays on screen, marked, until it comes back.
        let gone = state.goneReplicas.values.sorted { $0.replica.id < $1.replica.id }
        let entries = replicas.map { ($0, nil as Double?) } + gone.map { ($0.replica, $0.lastSeen as Double?) }
        let shown = entries.prefix(max(0, height - 6))
        var notes: [(String, Role)] = []
        for (index, (replica, lastSeen)) in shown.enumerated() {
            let y = top + 4 + index
            if let lastSeen {
                let note = "gone: no heartbeat since \(Self.clock(lastSeen))"
                var cells: [(String, Role)] = [(replica.id, .error)]
                if withAddress { cells.append((replica.address, .muted)) }
                cells += [(replica.version, .muted), ("v\(replica.configVersion) \(replica.configDigest)", .muted), ("-", .muted), ("-", .muted), ("-", .muted), ("gone", .error)]
                var cellX = 2
                for (column, cell) in cells.enumerated() {
                    canvas.put(cellX, y, cell.0, cell.1, limit: min(columns[column].1 - 1, canvas.width - 2 - cellX))
                    cellX += columns[column].1
                }
                if wide { canvas.put(noteX, y, note, .error, limit: canvas.width - noteX - 2) } else { notes.append(("\(replica.id): \(note)", .error)) }
                if index == selected { canvas.highlight(y, from: 1, width: canvas.width - 2, role: .selected) }
                continue
            }
            let stale = replica.configDigest != common
            let late = replica.lastSeenSecondsAgo > 5
            var cells: [(String, Role)] = [(replica.id, replica.id == shared.replica ? .accent : .text)]
            if withAddress { cells.append((replica.address, .text)) }
            cells += [
                (replica.version, .text), ("v\(replica.configVersion) \(replica.configDigest)", stale ? .warn : .text),
                (Self.duration(max(0, self.now - replica.upSince)), .text), ("\(replica.requestsLastMinute)", .text),
                (Self.percent(replica.errorRate), replica.errorRate > 0.05 ? .error : .text),
                (String(format: "%.0fs", replica.lastSeenSecondsAgo), late ? .warn : .muted),
            ]
            var cellX = 2
            for (column, cell) in cells.enumerated() {
                canvas.put(cellX, y, cell.0, cell.1, limit: min(columns[column].1 - 1, canvas.width - 2 - cellX))
                cellX += columns[column].1
            }
            let note: (String, Role)? =
                if let problem = replica.reloadProblem { ("reload rejected: \(problem)", .error) }
                else if stale { ("runs another config than the others", .warn) }
                else if late { ("no heartbeat for \(Int(replica.lastSeenSecondsAgo)) s", .warn) }
                else if replica.id == shared.replica { ("this console's replica", .muted) }
                else { nil }
            if let note {
                if wide { canvas.put(noteX, y, note.0, note.1, limit: canvas.width - noteX - 2) } else { notes.append(("\(replica.id): \(note.0)", note.1)) }
            }
            if index == selected { canvas.highlight(y, from: 1, width: canvas.width - 2, role: .selected) }
        }
        // Narrow: what the NOTE column would say, under the table.
        for (offset, note) in notes.enumerated() where top + 5 + shown.count + offset < top + height - 2 {
            canvas.put(2, top + 5 + shown.count + offset, note.0, note.1, limit: canvas.width - 4)
        }
    }

    private func help(_ state: ViewState, _ canvas: inout Canvas) {
        // The six screen keys share one line, so the whole table fits 80×24.
        var bindings = KeyBindings.table.filter { !(state.readOnly && $0.mutates) }
        // The screen keys share one line, and so do the moves, so the whole table fits 80×24.
        let groups: [(Binding, (Action) -> Bool)] = [
            (Binding([], "1…\(Screen.allCases.count)", .show(.overview), hint: "", help: Screen.allCases.map(\.tab).joined(separator: ", ")),
             { if case .show = $0 { true } else { false } }),
            (Binding([], "Tab", .nextScreen, hint: "", help: "next screen (Shift-Tab: previous)"), { $0 == .nextScreen || $0 == .previousScreen }),
            (Binding([], "↑↓ jk", .up, hint: "", help: "select a row (PgUp/PgDn: a page)"), { [.up, .down, .pageUp, .pageDown].contains($0) }),
        ]
        for (line, member) in groups {
            guard let first = bindings.firstIndex(where: { member($0.action) }) else { continue }
            bindings.removeAll { member($0.action) }
            bindings.insert(line, at: first)
        }
        let width = min(canvas.width - 4, 76)
        let height = min(canvas.height - 4, bindings.count + 4)
        let x = (canvas.width - width) / 2
        let y = 2
        self.clear(&canvas, x: x, y: y, width: width, height: height)
        canvas.box(x, y, width, height, title: "Keys (any key closes)", focused: true, ascii: !self.unicode)
        for (index, binding) in bindings.prefix(height - 4).enumerated() {
            canvas.put(x + 2, y + 1 + index, binding.keyLabel, .accent, bold: true)
            // Where it applies, by screen number: "[2 6]".
            let scope = binding.screens.map { " [" + $0.map(\.rawValue).sorted().map(String.init).joined(separator: " ") + "]" } ?? ""
            canvas.put(x + 10, y + 1 + index, binding.help + scope, binding.mutates ? .warn : .text, limit: width - 12)
        }
        canvas.put(x + 2, y + height - 2, state.readOnly ? "read-only: actions are hidden" : "actions ask for confirmation; the gateway's answer shows below", .muted, limit: width - 4)
    }

    /// A dialog box centred over the screen, its inside cleared.
    private func dialog(_ title: String, rows: Int, _ canvas: inout Canvas) -> (x: Int, y: Int, width: Int, height: Int) {
        let width = min(canvas.width - 4, 70)
        let height = min(canvas.height - 4, rows)
        let x = (canvas.width - width) / 2
        self.clear(&canvas, x: x, y: 3, width: width, height: height)
        canvas.box(x, 3, width, height, title: title, focused: true, ascii: !self.unicode)
        return (x, 3, width, height)
    }

    private func keyPicker(_ picker: KeyPicker, _ canvas: inout Canvas) {
        let (x, y, width, height) = self.dialog("Revoke a key of \(picker.tenant)", rows: picker.keys.count + 4, &canvas)
        let first = max(0, picker.cursor - (height - 5))
        for (offset, key) in picker.keys.dropFirst(first).prefix(height - 4).enumerated() {
            let row = y + 1 + offset
            canvas.put(x + 2, row, "\(key.name)  \(key.keyPrefix ?? "")…", .text, limit: width - 26)
            canvas.put(x + width - 24, row, "\(key.requests) req  \(Self.dollars(key.costUsd))", .muted, limit: 22)
            if first + offset == picker.cursor { canvas.highlight(row, from: x + 1, width: width - 2, role: .selected) }
        }
        canvas.put(x + 2, y + height - 2, "a key declared in the config file is removed there, not here", .muted, limit: width - 4)
    }

    private func routeForm(_ form: RouteForm, _ canvas: inout Canvas) {
        let (x, y, width, height) = self.dialog("Edit route \(form.alias)", rows: form.rows.count + 6, &canvas)
        canvas.put(x + 2, y + 1, "strategy: \(form.strategy)", .accent, bold: true)
        for (index, row) in form.rows.enumerated() where index < height - 5 {
            let line = "\(row.enabled ? "[x]" : "[ ]") \(row.provider)/\(row.model)"
            canvas.put(x + 2, y + 2 + index, line, row.enabled ? .text : .muted, limit: 40)
            canvas.put(x + 44, y + 2 + index, "weight \(row.weight)  p\(row.priority)", .text)
            if index == form.cursor { canvas.highlight(y + 2 + index, from: x + 1, width: width - 2, role: .selected) }
        }
        if let problem = form.problem { canvas.put(x + 2, y + height - 2, problem, .error) }
    }

    func clear(_ canvas: inout Canvas, x: Int, y: Int, width: Int, height: Int) {
        for row in y..<min(canvas.height, y + height) { canvas.put(x, row, String(repeating: " ", count: width)) }
    }

    // MARK: Pieces

    /// Cells in columns, clipped inside the panel's right border.
    func row(_ cells: [String], widths: [Int], _ canvas: inout Canvas, x: Int, y: Int, role: Role) {
        var column = x
        for (index, cell) in cells.enumerated() where index < widths.count {
            canvas.put(column, y, cell, role, limit: max(0, min(widths[index] - 1, canvas.width - 2 - column)))
            column += widths[index]
        }
    }

    /// The last `width` values, scaled to their maximum, coloured along the gradient by height: one
    /// row of eighth blocks, or `height` rows of them (eight steps a row) on a taller panel.
    /// `scaleFloor` keeps a flat small series low: a constant 0.2% error rate is not drawn as a full bar.
    func sparkline(_ values: [Double], _ canvas: inout Canvas, x: Int, y: Int, width: Int, height: Int = 1, scaleFloor: Double = 0, latencyColors: Bool) {
        guard width > 0, height > 0 else { return }
        let recent = Array(values.suffix(width))
        let top = Self.scaleTop(recent, floor: scaleFloor)
        let blocks = self.unicode ? Self.sparkBlocks : Self.sparkASCII
        let steps = blocks.count * height
        for (index, value) in recent.enumerated() {
            // Never empty: a zero is the lowest block, so the line stays visible.
            let level = top > 0 ? max(1, min(steps, Int((value / top) * Double(steps - 1) + 0.5) + 1)) : 1
            let column = x + width - recent.count + index
            for row in 0..<height {
                let filled = min(blocks.count, level - row * blocks.count)
                guard filled > 0 else { break }
                let share = Double(row * blocks.count + filled) / Double(steps)
                let role: Role = switch (latencyColors, min(2, Int(share * 3))) {
                case (true, 0): .latencyStart
                case (true, 1): .latencyMid
                case (true, _): .latencyEnd
                case (false, 0): .volumeStart
                case (false, 1): .volumeMid
                case (false, _): .volumeEnd
                }
                canvas.put(column, y + height - 1 - row, String(blocks[filled - 1]), role)
            }
        }
    }

    /// What a graph's top row stands for: the highest value shown, or the floor when that is higher.
    static func scaleTop(_ values: some Sequence<Double>, floor: Double) -> Double {
        max(values.max() ?? 0, floor)
    }

    static func bar(_ fraction: Double, width: Int, unicode: Bool) -> String {
        let filled = max(0, min(width, Int((fraction * Double(width)).rounded())))
        return String(repeating: unicode ? "█" : "#", count: filled) + String(repeating: unicode ? "░" : ".", count: width - filled)
    }

    static func number(_ value: Double) -> String { value >= 100 ? String(format: "%.0f", value) : String(format: "%.1f", value) }
    /// A graph's top: 3 significant digits for small numbers (a cost of $0.0373 a minute), as `number` else.
    static func scale(_ value: Double) -> String { value > 0 && value < 1 ? String(format: "%.3g", value) : Self.number(value) }
    static func percent(_ value: Double) -> String { String(format: "%.1f%%", value * 100) }
    static func money(_ value: Double) -> String { String(format: "$%.4f", value) }
    /// Dollars in as few characters as keep them readable: $1234, $41.50, $0.0123.
    static func dollars(_ value: Double) -> String {
        guard value.isFinite else { return "-" }
        guard value != 0 else { return "$0" }
        return value >= 1_000 ? String(format: "$%.0f", value) : value >= 1 ? String(format: "$%.2f", value) : String(format: "$%.4f", value)
    }
    static func ms(_ value: Double?) -> String { value.map { $0 >= 100 ? String(format: "%.0f", $0) : String(format: "%.1f", $0) } ?? "-" }

    static func duration(_ seconds: Double) -> String {
        // A number from the gateway (or another replica's heartbeat): bounded before it becomes an Int.
        let total = seconds.isFinite ? Int(min(max(0, seconds), 3_153_600_000)) : 0
        if total < 60 { return "\(total)s" }
        if total < 3600 { return "\(total / 60)m\(String(format: "%02d", total % 60))s" }
        return "\(total / 3600)h\(String(format: "%02d", total % 3600 / 60))m"
    }

    static func clock(_ time: Double) -> String {
        let seconds = Int(time) % 86_400
        return String(format: "%02d:%02d:%02d", seconds / 3600, seconds % 3600 / 60, seconds % 60)
    }
}
