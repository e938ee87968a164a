import Engine
import Foundation

/// The Tenants screen: cost per tenant against its budget, the rate it burns at and where the day
/// ends at that rate; the selected tenant's models, keys and refusals under the table.
extension Renderer {
    static let tenantDetailRows = 9

    func tenants(_ state: ViewState, _ canvas: inout Canvas, top: Int, height: Int) {
        let tenants = state.visibleTenants
        guard !tenants.isEmpty else {
            canvas.box(0, top, canvas.width, height, title: "Tenants", focused: true, ascii: !self.unicode)
            canvas.put(2, top + 2, "No tenants: this gateway serves anonymous requests (tenants come with virtual keys).", .muted, limit: canvas.width - 4)
            return
        }
        let withDetail = height >= 6 + Self.tenantDetailRows && state.selectedTenant != nil
        let tableHeight = withDetail ? min(tenants.count + 3, height - Self.tenantDetailRows) : height
        self.tenantTable(state, tenants, &canvas, top: top, height: tableHeight)
        if withDetail, let tenant = state.selectedTenant {
            self.tenantDetail(state, tenant, &canvas, top: top + tableHeight, height: height - tableHeight)
        }
    }

    private func tenantTable(_ state: ViewState, _ tenants: [AdminTenant], _ canvas: inout Canvas, top: Int, height: Int) {
        canvas.box(0, top, canvas.width, height, title: "Tenants, cost today by \(state.tenantSort.rawValue)", focused: true, ascii: !self.unicode)
        let wide = canvas.width >= 100
        // At 80 columns every column is as narrow as its numbers allow, so the refusals still fit.
        var columns = [("TENANT", wide ? 16 : 12), ("REQ", wide ? 8 : 7)]
        if wide { columns.append(("TOKENS", 11)) }
        columns += [("COST", wide ? 10 : 9), ("RATE/h", 9), ("BY 24:00", wide ? 10 : 9)]
        let barWidth = canvas.width >= 160 ? 24 : wide ? 14 : 8
        // The bar, then "104% of $0.0100".
        columns.append(("BUDGET TODAY", barWidth + 18))
        let reasonsX = 2 + columns.map(\.1).reduce(0, +)
        let reasonsWidth = canvas.width - 2 - reasonsX
        self.row(columns.map(\.0) + [reasonsWidth >= 20 ? "REFUSED, BY REASON" : "REF"], widths: columns.map(\.1) + [max(0, reasonsWidth)], &canvas, x: 2, y: top + 1, role: .muted)
        let selected = state.selection[.tenants] ?? 0
        let visible = height - 3
        let first = max(0, min(selected - visible + 1, tenants.count - visible))
        for (offset, tenant) in tenants.dropFirst(first).prefix(visible).enumerated() {
            let y = top + 2 + offset
            let projected = state.projectedSpendToday(tenant, at: self.now)
            let daily = tenant.dailyBudgetUsd
            var cells: [(String, Role)] = [(tenant.name, .text), ("\(tenant.requestsToday)", .text)]
            if wide { cells.append((Self.count(tenant.tokensToday), .text)) }
            cells += [
                (Self.dollars(tenant.costTodayUsd), .text),
                (state.spendRatePerHour(tenant.name).map(Self.dollars) ?? "-", .text),
                (projected.map(Self.dollars) ?? "-", projected.map { spend in daily.map { spend > $0 } == true ? Role.error : .text } ?? .muted),
            ]
            var x = 2
            for (index, cell) in cells.enumerated() {
                canvas.put(x, y, cell.0, cell.1, limit: min(columns[index].1 - 1, canvas.width - 2 - x))
                x += columns[index].1
            }
            if let used = tenant.budgetUsed {
                let role: Role = used >= 1 ? .error : (used >= 0.8 ? .warn : .ok)
                let of = daily.map { " of \(Self.dollars($0))" } ?? " (month)"
                canvas.put(x, y, Self.bar(used, width: barWidth, unicode: self.unicode) + " " + Self.wholePercent(used) + of, role, limit: min(barWidth + 17, canvas.width - 2 - x))
            } else {
                canvas.put(x, y, "no budget", .muted)
            }
            let refused = Self.refusals(tenant, width: reasonsWidth)
            canvas.put(reasonsX, y, refused, tenant.limitRejections > 0 ? .warn : .muted, limit: max(0, reasonsWidth))
            if first + offset == selected { canvas.highlight(y, from: 1, width: canvas.width - 2, role: .selected) }
        }
    }

    /// The spend rate's graph, then the models and keys spending today side by side, and the last
    /// refusals (beside them on a wide terminal, under them on a narrow one).
    private func tenantDetail(_ state: ViewState, _ tenant: AdminTenant, _ canvas: inout Canvas, top: Int, height: Int) {
        canvas.box(0, top, canvas.width, height, title: "\(tenant.name) today", ascii: !self.unicode)
        let bottom = top + height - 1
        let detail = state.tenantDetail.flatMap { $0.name == tenant.name ? $0 : nil }
        // Models, keys and refusals side by side from 160 columns; before, the refusals under both lists.
        let threeColumns = canvas.width >= 160
        // The lists need their longest one's rows (keys and refusals share a column when narrow);
        // the spend graph grows into what is left, up to six rows.
        let models = detail?.models.count ?? 1
        let keys = detail?.keys.count ?? 1
        let refusals = detail?.lastRejections.count ?? 1
        let listRows = min(8, threeColumns ? 1 + max(models, keys, refusals) : 3 + max(models, keys) + refusals)
        let graphRows = max(1, min(6, height - 3 - listRows))
        var y = top + 1
        let rates = Self.rates(state.spendHistory[tenant.name] ?? [])
        let graphWidth = max(0, canvas.width - 24)
        canvas.put(2, y, "spend/h", .muted)
        canvas.put(10, y, "top " + Self.dollars(Self.scaleTop(rates.suffix(graphWidth), floor: 0)), .text, limit: 11)
        self.sparkline(rates, &canvas, x: 22, y: y, width: graphWidth, height: graphRows, latencyColors: false)
        y += graphRows
        let month = tenant.monthlyBudgetUsd.map { "  ·  month \(Self.dollars(tenant.costMonthUsd ?? 0)) of \(Self.dollars($0))" } ?? ""
        canvas.put(2, y, "\(tenant.requestsToday) requests, \(Self.count(tenant.tokensToday)) tokens, \(Self.dollars(tenant.costTodayUsd))\(month)", .text, limit: canvas.width - 4)
        y += 1
        guard let detail else {
            canvas.put(2, y, "reading its models, keys and refusals…", .muted)
            return
        }
        if let problem = detail.ledgerProblem {
            canvas.put(2, y, problem, .error, limit: canvas.width - 4)
            y += 1
        }
        let rows = max(0, bottom - y)
        let modelLines = detail.models.map { ($0.name, "\($0.requests)", Self.dollars($0.costUsd)) }
        let keyLines = detail.keys.map { ("\($0.name) \($0.keyPrefix.map { $0 + "…" } ?? "")", "\($0.requests)", Self.dollars($0.costUsd)) }
        let refusalLines = detail.lastRejections.map { "\(Self.clock($0.time)) \($0.status) \($0.reason): \($0.message)" }
        // Models and keys need about 48 columns each; the refusals' messages take the rest.
        let listWidth = threeColumns ? min(48, (canvas.width - 4) / 3) : (canvas.width - 4) / 2
        let spendRows = threeColumns ? rows : min(max(modelLines.count, keyLines.count) + 1, max(2, rows / 2))
        self.spendList("MODELS", modelLines, &canvas, x: 2, y: y, width: listWidth - 1, rows: spendRows)
        self.spendList("KEYS", keyLines, &canvas, x: 2 + listWidth, y: y, width: listWidth - 1, rows: spendRows)
        let (refusalsX, refusalsY, refusalRows) = threeColumns ? (2 + 2 * listWidth, y, rows) : (2, y + spendRows + 1, rows - spendRows - 1)
        guard refusalRows > 0 else { return }
        canvas.put(refusalsX, refusalsY, "LAST REFUSALS", .muted)
        if refusalLines.isEmpty { canvas.put(refusalsX, refusalsY + 1, "none", .muted) }
        for (index, line) in refusalLines.prefix(refusalRows - 1).enumerated() {
            canvas.put(refusalsX, refusalsY + 1 + index, line, .warn, limit: canvas.width - 2 - refusalsX)
        }
    }

    private func spendList(_ title: String, _ lines: [(String, String, String)], _ canvas: inout Canvas, x: Int, y: Int, width: Int, rows: Int) {
        guard rows > 0 else { return }
        let nameWidth = max(4, width - 17)
        canvas.put(x, y, title, .muted)
        canvas.put(x + nameWidth, y, "REQ", .muted)
        canvas.put(x + nameWidth + 7, y, "COST", .muted)
        if lines.isEmpty { canvas.put(x, y + 1, "none today", .muted) }
        for (index, line) in lines.prefix(rows - 1).enumerated() {
            canvas.put(x, y + 1 + index, line.0, .text, limit: nameWidth - 1)
            canvas.put(x + nameWidth, y + 1 + index, line.1, .muted, limit: 6)
            canvas.put(x + nameWidth + 7, y + 1 + index, line.2, .text, limit: 10)
        }
    }

    /// "rate_limited 9, concurrency_limited 3"; where that does not fit, the main reason and the rest's sum.
    static func refusals(_ tenant: AdminTenant, width: Int) -> String {
        let reasons = (tenant.rejectionsByReason ?? [:]).sorted { ($0.value, $1.key) > ($1.value, $0.key) }
        guard let top = reasons.first, width >= 12 else { return "\(tenant.limitRejections)" }
        let all = reasons.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        if all.count <= width { return all }
        // "rate_limited 9 +3": the main reason, and how many the others refused.
        return "\(top.key) \(top.value) +\(reasons.dropFirst().map(\.value).reduce(0, +))"
    }

    /// Seconds the spend rate's graph averages over: requests cost in steps, so a rate between two
    /// refreshes is a row of spikes.
    static let rateSpan = 15.0

    /// Dollars an hour at each sample, over the `rateSpan` before it: the spend rate's history.
    static func rates(_ samples: [ViewState.SpendSample]) -> [Double] {
        var rates: [Double] = []
        var start = 0
        for index in samples.indices.dropFirst() {
            while start < index - 1 && samples[index].time - samples[start + 1].time >= Self.rateSpan { start += 1 }
            let (earlier, later) = (samples[start], samples[index])
            rates.append(later.time > earlier.time ? max(0, later.costUsd - earlier.costUsd) / (later.time - earlier.time) * 3600 : 0)
        }
        return rates
    }

    /// 4.5M, 90.0k, 812.
    static func count(_ value: Int) -> String {
        value >= 1_000_000 ? String(format: "%.1fM", Double(value) / 1_000_000) : value >= 10_000 ? String(format: "%.1fk", Double(value) / 1_000) : "\(value)"
    }

    static func wholePercent(_ value: Double) -> String {
        value.isFinite ? String(format: "%.0f%%", min(value, 99.99) * 100) : "-"
    }
}
