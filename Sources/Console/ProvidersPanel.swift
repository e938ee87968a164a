import Engine

/// The Providers screen: one row per target, and the selected target in depth under the table when
/// the terminal has the rows.
extension Renderer {
    /// Rows the detail panel needs to say something useful; below that the table takes the screen.
    static let targetDetailRows = 9

    func providers(_ state: ViewState, _ canvas: inout Canvas, top: Int, height: Int) {
        let targets = state.visibleTargets
        let withDetail = height >= 6 + Self.targetDetailRows && state.selectedTarget != nil
        let tableHeight = withDetail ? min(max(targets.count, 1) + 3, height - Self.targetDetailRows) : height
        self.targetTable(state, targets, &canvas, top: top, height: tableHeight)
        if withDetail, let target = state.selectedTarget {
            self.targetDetail(state, target, &canvas, top: top + tableHeight, height: height - tableHeight)
        }
    }

    private func targetTable(_ state: ViewState, _ targets: [AdminTarget], _ canvas: inout Canvas, top: Int, height: Int) {
        let wide = canvas.width >= 120
        let graphs = canvas.width >= 160
        var columns = canvas.width >= 100
            ? [("TARGET", 24), ("HEALTH", 15), ("BREAKER", 10), ("INFL", 5), ("REQ/1m", 7), ("ERR%", 7), ("P50 ms", 8), ("P99 ms", 8)]
            : [("TARGET", 20), ("HEALTH", 13), ("BREAKER", 10), ("INFL", 5), ("REQ/1m", 7), ("ERR%", 7), ("P50ms", 6), ("P99ms", 6)]
        if wide { columns += [("TTFT p50", 9), ("QUEUE", 6)] }
        if graphs { columns += [("LATENCY p50", 18), ("ERRORS", 14)] }
        // Room to spare goes to the target names first (up to 48 columns), the last error keeping 24.
        let longest = targets.map { "\($0.provider)/\($0.model)".count + 1 }.max() ?? 0
        let spare = canvas.width - 4 - columns.map(\.1).reduce(0, +) - 24
        if spare > 0 { columns[0].1 += min(spare, max(0, min(longest, 48) - columns[0].1)) }
        let lastErrorX = 2 + columns.map(\.1).reduce(0, +)
        canvas.box(0, top, canvas.width, height, title: "Providers (targets)" + (state.providerSortByErrors ? ", by error rate" : ""), focused: true, ascii: !self.unicode)
        self.row(columns.map(\.0) + (canvas.width - lastErrorX > 12 ? ["LAST ERROR"] : []), widths: columns.map(\.1) + [canvas.width - lastErrorX - 2], &canvas, x: 2, y: top + 1, role: .muted)
        if targets.isEmpty {
            canvas.put(2, top + 2, state.snapshot == nil ? "waiting for the gateway…" : "no targets match", .muted)
            return
        }
        let visible = height - 3
        let selected = state.selection[.providers] ?? 0
        let first = max(0, min(selected - visible + 1, targets.count - visible))
        for (offset, target) in targets.dropFirst(first).prefix(visible).enumerated() {
            let y = top + 2 + offset
            var cells = [
                ("\(target.provider)/\(target.model)", Role.text), (Self.health(target), Self.healthRole(target)), (target.breaker, Self.breakerRole(target.breaker)),
                ("\(target.inFlight)", .text), ("\(target.requests1m)", .text),
                (Self.percent(target.errorRate1m), target.errorRate1m > 0.05 ? .error : .text),
                (Self.ms(target.latencyMs.p50), .text), (Self.ms(target.latencyMs.p99), .text),
            ]
            if wide { cells += [(Self.ms(target.timeToFirstTokenMs.p50), .text), (target.reportedQueue.map(String.init) ?? "-", .text)] }
            var x = 2
            for (index, cell) in cells.enumerated() {
                canvas.put(x, y, cell.0, cell.1, limit: min(columns[index].1 - 1, canvas.width - 2 - x))
                x += columns[index].1
            }
            if graphs {
                let history = state.targetHistory["\(target.provider)/\(target.model)"]
                self.sparkline(history?.latencyP50 ?? [], &canvas, x: x, y: y, width: columns[cells.count].1 - 2, latencyColors: true)
                x += columns[cells.count].1
                self.sparkline(history?.errorRate ?? [], &canvas, x: x, y: y, width: columns[cells.count + 1].1 - 2, scaleFloor: 5, latencyColors: true)
            }
            if canvas.width - lastErrorX > 12 { canvas.put(lastErrorX, y, target.lastError ?? "", .muted, limit: canvas.width - lastErrorX - 2) }
            if first + offset == selected { canvas.highlight(y, from: 1, width: canvas.width - 2, role: .selected) }
        }
    }

    /// Breaker and its recent changes, rest, load, latency and error graphs, and its last failed
    /// attempts, each with its fault domain.
    private func targetDetail(_ state: ViewState, _ target: AdminTarget, _ canvas: inout Canvas, top: Int, height: Int) {
        let name = "\(target.provider)/\(target.model)"
        let history = state.targetHistory[name]
        canvas.box(0, top, canvas.width, height, title: name, ascii: !self.unicode)
        let inner = canvas.width - 4
        var y = top + 1
        var x = 2
        func say(_ text: String, _ role: Role, bold: Bool = false) {
            guard x < canvas.width - 2 else { return }
            canvas.put(x, y, text, role, bold: bold, limit: canvas.width - 2 - x)
            x += text.count
        }
        say("breaker ", .muted)
        say(target.breaker, Self.breakerRole(target.breaker), bold: true)
        let changes = history?.breakerChanges ?? []
        say(changes.isEmpty ? "  (no change seen since the console started)" : "  since: ", .muted)
        for (index, change) in changes.enumerated() {
            say((index == 0 ? "" : " → ") + Self.clock(change.time) + " ", .muted)
            say(change.state, Self.breakerRole(change.state))
        }
        (x, y) = (2, y + 1)
        say("health ", .muted)
        say(Self.health(target), Self.healthRole(target), bold: true)
        say("  ·  in flight \(target.inFlight)" + (target.reportedQueue.map { "  ·  queue \($0)" } ?? ""), .text)
        if let rest = target.restingSeconds {
            say("  ·  resting \(Self.duration(rest)) more after a rate limit", .warn)
        }
        say("  ·  \(target.requests1m) req/1m, \(Self.percent(target.errorRate1m)) errors", .text)
        y += 1
        let errors = target.recentErrors ?? []
        // The graphs take the rows the last failed attempts (up to five) leave, up to six each.
        let graphRows = max(1, min(6, (top + height - 1 - y - 1 - min(errors.count, 5)) / 2))
        let graphWidth = max(0, inner - 18)
        for (label, values, floor) in [("p50 ms", history?.latencyP50 ?? [], 0.0), ("errors %", history?.errorRate ?? [], 5)] where y + graphRows <= top + height - 1 {
            canvas.put(2, y, label, .muted)
            canvas.put(11, y, "top " + Self.scale(Self.scaleTop(values.suffix(graphWidth), floor: floor)), .text, limit: 8)
            self.sparkline(values, &canvas, x: 20, y: y, width: graphWidth, height: graphRows, scaleFloor: floor, latencyColors: true)
            y += graphRows
        }
        guard y < top + height - 1 else { return }
        canvas.put(2, y, errors.isEmpty ? "no failed attempts" : "last failed attempts: when, what, whose fault", .muted)
        y += 1
        let read = state.snapshotAt ?? self.now
        for error in errors.prefix(max(0, top + height - 1 - y)) {
            let line = "\(Self.clock(read - error.secondsAgo))  \(error.kind)  \(error.faultDomain)  \(error.message)"
            canvas.put(4, y, line, error.faultDomain == "provider" ? .error : .warn, limit: inner - 2)
            y += 1
        }
    }

    /// The health column: a resting target says for how long.
    static func health(_ target: AdminTarget) -> String {
        guard let rest = target.restingSeconds, target.health == "resting" else { return target.health }
        return "resting \(Self.duration(rest))"
    }

    static func healthRole(_ target: AdminTarget) -> Role {
        target.health == "healthy" ? .ok : (target.health == "drained" ? .warn : .error)
    }

    static func breakerRole(_ breaker: String) -> Role {
        breaker == "closed" ? .ok : (breaker == "half_open" ? .warn : .error)
    }
}
