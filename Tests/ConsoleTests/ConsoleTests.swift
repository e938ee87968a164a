import Engine
import Foundation
import Testing
@testable import Console

/// A fixed gateway state: every panel is rendered from it and compared with `Golden/*.txt`
/// (`UPDATE_GOLDEN=1 swift test --filter ConsoleTests` rewrites them after a deliberate change).
enum Sample {
    static func window(_ seconds: Int, requests: Int, errors: Int) -> WindowSummary {
        WindowSummary(
            seconds: seconds, requests: requests, requestsPerSecond: Double(requests) / Double(seconds),
            errorRate: requests == 0 ? 0 : Double(errors) / Double(requests),
            errors: ["caller": errors / 2, "policy": 0, "provider": errors - errors / 2, "gateway": 0],
            latencyMs: Percentiles(p50: 84.2, p95: 131.5, p99: 190.3), timeToFirstTokenMs: Percentiles(p50: 21.7, p95: 40.1, p99: 55.0),
            inputTokens: requests * 12, outputTokens: requests * 28, costPerMinuteUsd: 0.0125
        )
    }

    static let snapshot = Self.inAFleet(AdminSnapshot(
        uptimeSeconds: 3_725,
        configVersion: 4,
        configSource: "/etc/switchyard/gateway.yaml",
        windows: ["10s": window(10, requests: 124, errors: 3), "1m": window(60, requests: 702, errors: 9), "15m": window(900, requests: 9_914, errors: 80)],
        targets: [
            AdminTarget(
                provider: "openai-east", model: "gpt-4o", health: "healthy", breaker: "closed", drained: false, restingSeconds: nil, inFlight: 4,
                reportedQueue: nil, requests1m: 410, errorRate1m: 0.002, latencyMs: Percentiles(p50: 80.1, p95: 120, p99: 170.2),
                timeToFirstTokenMs: Percentiles(p50: 20.5), lastError: nil
            ),
            AdminTarget(
                provider: "openai-west", model: "gpt-4o", health: "breaker_open", breaker: "open", drained: false, restingSeconds: nil, inFlight: 0,
                reportedQueue: nil, requests1m: 37, errorRate1m: 0.41, latencyMs: Percentiles(p50: 310, p95: 900, p99: 2_400.5),
                timeToFirstTokenMs: Percentiles(p50: 150), lastError: "Provider 'openai-west' answered with HTTP 503.",
                recentErrors: [
                    AdminTargetError(secondsAgo: 2, kind: "server_error", faultDomain: "provider", message: "Provider 'openai-west' answered with HTTP 503."),
                    AdminTargetError(secondsAgo: 9, kind: "timeout", faultDomain: "provider", message: "Provider 'openai-west' sent no first byte within 60s."),
                    AdminTargetError(secondsAgo: 31, kind: "credentials", faultDomain: "gateway", message: "Provider 'openai-west' refused the gateway's key (HTTP 401)."),
                ]
            ),
            AdminTarget(
                provider: "local", model: "llama3.2", health: "drained", breaker: "closed", drained: true, restingSeconds: nil, inFlight: 1,
                reportedQueue: 3, requests1m: 255, errorRate1m: 0, latencyMs: Percentiles(p50: 45, p95: 70, p99: 95.5),
                timeToFirstTokenMs: Percentiles(p50: 12), lastError: nil
            ),
        ],
        routes: [
            AdminRoute(
                alias: "gpt-4o", strategy: "weighted",
                targets: [
                    AdminRouteTarget(provider: "openai-east", model: "gpt-4o", weight: 3, priority: 0, share1m: 0.917),
                    AdminRouteTarget(provider: "openai-west", model: "gpt-4o", weight: 1, priority: 0, share1m: 0.083),
                ],
                fallbacks: ["local-small"], hedged: true, editedAtRuntime: true, requests1m: 447
            ),
            AdminRoute(
                alias: "local-small", strategy: "least-busy",
                targets: [AdminRouteTarget(provider: "local", model: "llama3.2", weight: 1, priority: 0, share1m: 1)],
                fallbacks: [], hedged: false, editedAtRuntime: false, requests1m: 255
            ),
        ],
        tenants: [
            AdminTenant(
                name: "acme", requestsToday: 12_000, tokensToday: 4_500_000, costTodayUsd: 41.5, budgetUsed: 0.83, limitRejections: 12,
                dailyBudgetUsd: 50, costMonthUsd: 612.25, rejectionsByReason: ["rate_limited": 9, "concurrency_limited": 3]
            ),
            AdminTenant(name: "globex", requestsToday: 300, tokensToday: 90_000, costTodayUsd: 0.9, budgetUsed: nil, limitRejections: 0, rejectionsByReason: [:]),
            AdminTenant(
                name: "initech", requestsToday: 95, tokensToday: 8_120, costTodayUsd: 0.0104, budgetUsed: 1.04, limitRejections: 31,
                dailyBudgetUsd: 0.01, monthlyBudgetUsd: 0.25, costMonthUsd: 0.0921, rejectionsByReason: ["budget_exceeded": 31]
            ),
        ],
        cache: AdminCache(
            entries: 1_204, bytes: 18_874_368, hitRate: 0.31, semanticHitRate: 0.07, missRate: 0.62, vectors: 388, partitions: 41, embeddingFailures: 2
        )
    ))

    /// Three replicas, one of them on a config its reload rejected, behind one Redis.
    static func inAFleet(_ snapshot: AdminSnapshot) -> AdminSnapshot {
        var snapshot = snapshot
        let config = "3f9a1c2e"
        snapshot.fleet = [
            AdminReplica(
                id: "gateway-7d9f-a:8080", address: "127.0.0.11:8080", version: "0.2.0", configDigest: config, configVersion: 4, upSince: -7_200,
                requestsLastMinute: 612, errorRate: 0.012, lastSeenSecondsAgo: 1.2
            ),
            AdminReplica(
                id: "gateway-7d9f-b:8080", address: "127.0.0.12:8080", version: "0.2.0", configDigest: config, configVersion: 4, upSince: -7_140,
                requestsLastMinute: 598, errorRate: 0.009, lastSeenSecondsAgo: 0.4
            ),
            AdminReplica(
                id: "gateway-7d9f-c:8080", address: "127.0.0.13:8080", version: "0.2.0", configDigest: "b71e04d9", configVersion: 3, upSince: -600,
                requestsLastMinute: 577, errorRate: 0.08, lastSeenSecondsAgo: 6.5, reloadProblem: "routes.gpt-4o.targets[1]: unknown provider 'azure'"
            ),
        ]
        snapshot.sharedState = AdminSharedState(
            replica: "gateway-7d9f-a:8080", url: "redis://gateway:***@redis:6379/0", onError: "deny", reachable: true,
            unavailableDenied: 14, unavailableAllowed: 0, sharedCacheHits: 2_310, sharedCacheFailures: 0
        )
        snapshot.ledger = AdminLedger(
            database: "postgres://gateway:***@postgres:5432/switchyard?sslmode=verify-full", rowsWritten: 1_482_113, rowsQueued: 42,
            rowsJournalled: 0, secondsBehind: 0.02, databaseDown: false
        )
        return snapshot
    }

    static var events: [AdminEvent] {
        var events: [AdminEvent] = []
        for index in 0..<30 {
            var event = AdminEvent(kind: .request, message: "ok")
            event.seq = index + 1
            event.time = 43_200 + Double(index)
            event.route = "gpt-4o"
            event.provider = index % 5 == 0 ? "openai-west" : "openai-east"
            event.model = "gpt-4o"
            event.status = index % 10 == 9 ? 503 : 200
            event.latencyMs = 80 + Double(index)
            if event.status == 503 {
                event.provider = "openai-west"
                event.failure = "provider"
                event.message = "Provider 'openai-west' answered with HTTP 503."
            }
            events.append(event)
        }
        var drained = AdminEvent(kind: .drained, message: "provider local drained: no new requests")
        drained.seq = 31
        drained.time = 43_231
        drained.provider = "local"
        events.append(drained)
        return events
    }

    /// acme's day: its models, keys and last refusals.
    static let acmeToday = AdminTenantDetail(
        name: "acme",
        models: [
            AdminSpend(name: "openai-east/gpt-4o", requests: 9_100, tokens: 3_900_000, costUsd: 38.2),
            AdminSpend(name: "local/llama3.2", requests: 2_900, tokens: 600_000, costUsd: 3.3),
        ],
        keys: [
            AdminSpend(name: "web", keyId: "key_7f3a", keyPrefix: "sk-sy-7f3a", requests: 11_000, tokens: 4_100_000, costUsd: 39.9),
            AdminSpend(name: "batch", keyId: "key_91c0", keyPrefix: "sk-sy-91c0", requests: 1_000, tokens: 400_000, costUsd: 1.6),
            AdminSpend(name: "ci", keyId: "key_0b22", keyPrefix: "sk-sy-0b22", requests: 0, tokens: 0, costUsd: 0),
        ],
        lastRejections: [
            AdminRejection(time: 43_190, reason: "rate_limited", status: 429, message: "Rate limit of 600 requests per minute reached for tenant 'acme'."),
            AdminRejection(time: 43_100, reason: "concurrency_limited", status: 429, message: "8 requests already in flight for tenant 'acme'."),
        ]
    )

    /// A minute of snapshots a second apart: traffic waves, acme spending $36 an hour, the west
    /// target's breaker opening, probing and opening again, and a fourth replica that left.
    static func state(screen: Screen, readOnly: Bool = false) -> ViewState {
        var state = ViewState(readOnly: readOnly, socketPath: "./.switchyard/admin.sock")
        for step in 0..<60 {
            var snapshot = Self.snapshot
            let wave = Double(step % 12)
            snapshot.windows["10s"]?.requestsPerSecond = 5 + wave
            snapshot.windows["10s"]?.latencyMs.p50 = 60 + wave * 4
            snapshot.windows["10s"]?.latencyMs.p99 = 150 + wave * 10
            snapshot.tenants[0].costTodayUsd = 41.5 - Double(59 - step) * 0.01
            snapshot.tenants[2].costTodayUsd = 0.0104 - Double(59 - step) * 0.0001
            snapshot.targets[0].latencyMs.p50 = 70 + wave * 2
            snapshot.targets[1].errorRate1m = step < 20 ? 0.01 : 0.41
            snapshot.targets[1].breaker = step < 20 ? "closed" : step < 40 ? "open" : step < 50 ? "half_open" : "open"
            if step == 58 {
                var leaving = snapshot.fleet?[1]
                leaving?.id = "gateway-7d9f-d:8080"
                leaving?.address = "127.0.0.14:8080"
                leaving?.lastSeenSecondsAgo = 4
                snapshot.fleet?.append(leaving!)
            }
            state.apply(snapshot: snapshot, at: Double(step))
        }
        state.apply(events: Self.events)
        state.apply(tenantDetail: Self.acmeToday)
        state.screen = screen
        return state
    }
}

struct PanelTests {
    static let sizes = [(80, 24), (120, 40), (200, 60)]

    @Test(arguments: Screen.allCases)
    func everyScreenMatchesItsGoldenText(_ screen: Screen) throws {
        for (width, height) in Self.sizes {
            let canvas = Renderer(unicode: true, now: 0).render(Sample.state(screen: screen), width: width, height: height)
            try Golden.check(canvas.text, name: "\(screen)-\(width)x\(height)")
        }
    }

    @Test func helpAndConfirmationOverlays() throws {
        var state = Sample.state(screen: .providers)
        _ = state.handle(.function(1))
        try Golden.check(Renderer(now: 0).render(state, width: 80, height: 24).text, name: "help-80x24")
        _ = state.handle(.char("x"))
        _ = state.handle(.char("d"))
        let confirm = Renderer(now: 0).render(state, width: 80, height: 24).text
        #expect(confirm.contains("Drain openai-east? New requests go elsewhere, in-flight ones finish. [y/N]"))
    }

    @Test func asciiFallbackWithoutUTF8() {
        let text = Renderer(unicode: false, now: 0).render(Sample.state(screen: .overview), width: 80, height: 24).text
        #expect(!text.contains("█") && !text.contains("┌") && !text.contains("▁"))
        #expect(text.contains("+-") && text.contains("#"))
    }

    @Test func theDisconnectedStateSaysSoAndKeepsTheLastNumbers() {
        var state = Sample.state(screen: .overview)
        state.apply(disconnected: "Couldn't connect to server", at: 100)
        let text = Renderer(now: 112).render(state, width: 80, height: 24).text
        #expect(text.contains("○ down"))
        #expect(text.contains("disconnected for 12s, retrying: Couldn't connect to server"))
        #expect(text.contains("requests/s"))
        state.apply(snapshot: Sample.snapshot, at: 0)
        #expect(Renderer(now: 113).render(state, width: 80, height: 24).text.contains("● live"))
    }

    @Test func aTinyTerminalGetsAMessageNotACrash() {
        for (width, height) in [(0, 0), (10, 3), (19, 30), (80, 5)] {
            let canvas = Renderer().render(Sample.state(screen: .log), width: width, height: height)
            #expect(canvas.width == max(0, width))
        }
    }
}

struct ViewStateTests {
    @Test func theFleetScreenOfOneReplicaSaysHowToMakeAFleet() {
        var state = ViewState(readOnly: false, socketPath: "s")
        var alone = Sample.snapshot
        alone.fleet = nil
        alone.sharedState = nil
        state.apply(snapshot: alone, at: 0)
        state.screen = .fleet
        let text = Renderer(unicode: true, now: 0).render(state, width: 100, height: 30).text
        #expect(text.contains("One replica") && text.contains("state: redis://"))
        // Redis away: the screen says so instead of an empty table.
        var away = Sample.snapshot
        away.fleet = nil
        away.sharedState?.reachable = false
        state.apply(snapshot: away, at: 0)
        let down = Renderer(unicode: true, now: 0).render(state, width: 100, height: 30).text
        #expect(down.contains("NOT ANSWERING") && down.contains("cannot be read"))
        // The shared database away: the ledger line says how much waits on this replica's disk.
        var ledgerDown = Sample.snapshot
        ledgerDown.ledger = AdminLedger(database: "postgres://db/x", rowsWritten: 10, rowsQueued: 3, rowsJournalled: 1_200, secondsBehind: 12, databaseDown: true)
        state.apply(snapshot: ledgerDown, at: 0)
        let journalling = Renderer(unicode: true, now: 0).render(state, width: 160, height: 30).text
        #expect(journalling.contains("DATABASE NOT ANSWERING"))
        #expect(journalling.contains("1203 waiting (1200 journalled on disk), 12s behind"))
        // Numbers no replica should send never trap the console.
        var odd = Sample.snapshot
        odd.fleet?[0].upSince = -1e308
        odd.fleet?[1].upSince = .nan
        odd.uptimeSeconds = .infinity
        state.apply(snapshot: odd, at: 0)
        #expect(Renderer(unicode: true, now: 0).render(state, width: 160, height: 48).text.contains("gateway-7d9f-a"))
    }

    /// A wide terminal gives a long target name the room it needs; a narrow one cuts it.
    @Test func longTargetNamesUseTheRoomAWideTerminalHas() {
        var snapshot = Sample.snapshot
        let long = "azure-sweden-central/gpt-4o-2024-11-20-global"
        snapshot.targets[0] = AdminTarget(
            provider: "azure-sweden-central", model: "gpt-4o-2024-11-20-global", health: "healthy", breaker: "closed", drained: false,
            restingSeconds: nil, inFlight: 1, reportedQueue: nil, requests1m: 10, errorRate1m: 0, latencyMs: Percentiles(p50: 80), timeToFirstTokenMs: Percentiles(p50: 20),
            lastError: nil
        )
        var state = Sample.state(screen: .providers)
        state.apply(snapshot: snapshot, at: 0)
        #expect(Renderer(unicode: true, now: 0).render(state, width: 200, height: 60).text.contains(long))
        // 14 rows: the table alone, without the selected target's panel (whose title is its whole name).
        #expect(!Renderer(unicode: true, now: 0).render(state, width: 80, height: 14).text.contains(long))
    }

    @Test func routesGiveLongTargetNamesAndShareBarsTheRoom() {
        var snapshot = Sample.snapshot
        snapshot.routes[0].targets[0].provider = "azure-sweden-central"
        snapshot.routes[0].targets[0].model = "gpt-4o-2024-11-20-global"
        var state = Sample.state(screen: .routes)
        state.apply(snapshot: snapshot, at: 60)
        let long = "azure-sweden-central/gpt-4o-2024-11-20-global"
        let wide = Renderer(unicode: true, now: 0).render(state, width: 200, height: 60).text
        #expect(wide.contains(long + "  w3 p0"))
        #expect(wide.contains(String(repeating: "█", count: 37)), "a 40-column share bar at 91.7%")
        #expect(!Renderer(unicode: true, now: 0).render(state, width: 80, height: 24).text.contains(long))
    }

    @Test func numbersTabAndShiftTabSwitchScreens() {
        var state = ViewState(readOnly: false, socketPath: "s")
        _ = state.handle(.char("4"))
        #expect(state.screen == .routes)
        for _ in 0..<4 { _ = state.handle(.tab) }
        #expect(state.screen == .overview)
        _ = state.handle(.backTab)
        #expect(state.screen == .fleet)
        #expect(state.handle(.function(10)) == [.quit])
    }

    @Test func drainAsksFirstAndOnlyYesSendsIt() {
        var state = Sample.state(screen: .providers)
        _ = state.handle(.down)
        #expect(state.handle(.function(7)).isEmpty)
        guard case .confirm(let command, _) = state.mode else {
            Issue.record("no confirmation")
            return
        }
        #expect(command == .post(path: "/v1/providers/openai-west/drain", summary: "drain openai-west"))
        #expect(state.handle(.char("n")).isEmpty && state.mode == .normal)
        _ = state.handle(.char("d"))
        #expect(state.handle(.char("y")) == [command])
    }

    @Test func readOnlyHidesAndDisablesEveryAction() {
        var state = Sample.state(screen: .providers, readOnly: true)
        #expect(state.handle(.char("d")).isEmpty && state.mode == .normal)
        #expect(state.handle(.function(5)).isEmpty && state.mode == .normal)
        let footer = KeyBindings.footer(on: .providers, readOnly: true).map(\.hint)
        #expect(!footer.contains("Drain") && !footer.contains("Reload") && footer.contains("Quit"))
        _ = state.handle(.char("?"))
        let help = Renderer(now: 0).render(state, width: 80, height: 24).text
        #expect(!help.contains("drain the selected provider"))
    }

    @Test func theKeyTableDrivesDispatchFooterAndHelpAlike() {
        for binding in KeyBindings.table {
            for key in binding.keys {
                let screen = binding.screens?.first ?? .overview
                #expect(KeyBindings.action(for: key, on: screen, readOnly: false) == binding.action)
            }
        }
        let keys = KeyBindings.table.flatMap(\.keys)
        #expect(Set(keys).count == keys.count, "a key bound twice")
    }

    @Test func aRouteEditIsAFormThenAConfirmationThenOnePut() throws {
        var state = Sample.state(screen: .routes)
        _ = state.handle(.char("e"))
        _ = state.handle(.char("+"))
        _ = state.handle(.down)
        _ = state.handle(.char(" "))
        _ = state.handle(.char("s"))
        _ = state.handle(.enter)
        guard case .confirm(.put(let path, let body, _), _) = state.mode else {
            Issue.record("no confirmation of the edit")
            return
        }
        #expect(path == "/v1/routes/gpt-4o")
        let edit = try AdminJSON.decoder().decode(RouteEdit.self, from: body)
        #expect(edit == RouteEdit(strategy: "least-busy", targets: [.init(provider: "openai-east", model: "gpt-4o", weight: 4, priority: 0)]))
        // Disabling every target is refused in the form, before the gateway is asked.
        var form = RouteForm(Sample.snapshot.routes[1])
        _ = form.handle(.char(" "))
        #expect(form.handle(.enter) == .editing && form.problem != nil)
    }

    @Test func filterAndSortNarrowTheRows() {
        var state = Sample.state(screen: .log)
        _ = state.handle(.char("/"))
        for character in "503" { _ = state.handle(.char(character)) }
        _ = state.handle(.enter)
        #expect(state.visibleEvents.count == 3)
        state.screen = .tenants
        #expect(state.visibleTenants.map(\.name) == ["acme", "globex", "initech"])
        _ = state.handle(.char("s"))
        _ = state.handle(.char("s"))
        _ = state.handle(.char("s"))
        _ = state.handle(.char("s"))
        #expect(state.tenantSort == .name)
    }

    @Test func gapsInTheEventSequenceAreCounted() {
        var state = ViewState(readOnly: false, socketPath: "s")
        var first = AdminEvent(kind: .request, message: "ok")
        first.seq = 10
        var later = first
        later.seq = 15
        state.apply(events: [first, later])
        #expect(state.missedEvents == 4)
    }

    @Test func actionResultsAreShownNotSwallowed() {
        var state = Sample.state(screen: .routes)
        state.apply(result: "route edit refused (422): targets[0]: unknown provider 'zz'", ok: false)
        let text = Renderer(now: 0).render(state, width: 100, height: 24).text
        #expect(text.contains("refused (422): targets[0]: unknown provider 'zz'"))
    }
}

struct ThemeTests {
    @Test func missingKeysFallBackAndUnknownKeysWarn() {
        let theme = Theme.parse("theme[status_ok]=\"#00FF00\"\ntheme[shiny]=\"#123456\"\ntheme[muted]=\"sparkly\"\nnonsense\n", name: "mine")
        #expect(theme.style(.ok) == .color(red: 0, green: 255, blue: 0))
        #expect(theme.style(.error) == Theme.builtIn.style(.error))
        #expect(theme.warnings.count == 3)
        #expect(theme.warnings.contains { $0.contains("unknown key 'shiny'") })
    }

    @Test func everyShippedThemeParsesCleanly() throws {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../themes").standardized
        for name in ["default", "light", "monochrome", "high-contrast"] {
            let text = try String(contentsOf: directory.appendingPathComponent("\(name).theme"), encoding: .utf8)
            let theme = Theme.parse(text, name: name)
            #expect(theme.warnings.isEmpty, "\(name): \(theme.warnings)")
            if name == "monochrome" {
                #expect(Role.allCases.allSatisfy { if case .attributes = theme.style($0) { true } else { false } })
            }
        }
    }

    @Test func coloursStepDownTo256AndTo8() {
        #expect(Theme.xterm256(red: 255, green: 0, blue: 0) == 196)
        #expect(Theme.xterm256(red: 0x5F, green: 0xAF, blue: 0xFF) == 75)
        #expect(Theme.xterm256(red: 0x80, green: 0x80, blue: 0x80) == 244)
        #expect(Theme.ansi8(red: 0xFF, green: 0x5F, blue: 0x5F) == 1)
        #expect(Theme.ansi8(red: 0x5F, green: 0xD7, blue: 0x5F) == 2)
        #expect(Theme.ansi8(red: 0x30, green: 0x30, blue: 0x30) == 0)
    }
}

struct CanvasTests {
    @Test func onlyChangedCellsAreRedrawn() {
        var before = Canvas(width: 10, height: 2)
        before.put(0, 0, "hello")
        var after = before
        after.put(0, 0, "help ")
        let changes = after.changes(since: before)
        #expect(changes.count == 2)
        #expect(changes.map(\.x) == [3, 4])
        #expect(after.changes(since: nil).count == 20)
        #expect(after.changes(since: Canvas(width: 5, height: 2)).count == 20)
    }

    @Test func writesAreClipped() {
        var canvas = Canvas(width: 5, height: 1)
        canvas.put(3, 0, "abcdef")
        canvas.put(-2, 0, "xyz")
        canvas.put(0, 5, "nope")
        #expect(canvas.text == "z  ab")
    }
}

struct OperatorViewTests {
    @Test func breakersOpenAndResetForTheSelectedTargetAfterAYes() {
        var state = Sample.state(screen: .providers)
        _ = state.handle(.down)
        #expect(state.handle(.char("o")).isEmpty)
        guard case .confirm(let command, let question) = state.mode else { Issue.record("no confirmation"); return }
        #expect(question.hasPrefix("Open the breaker of openai-west/gpt-4o?"))
        #expect(command == .post(path: "/v1/providers/openai-west/breaker/open?model=gpt-4o", summary: "open breaker of openai-west/gpt-4o"))
        #expect(state.handle(.char("y")) == [command])
        _ = state.handle(.char("c"))
        #expect(state.handle(.char("n")).isEmpty && state.message?.text == "cancelled")
    }

    @Test func aModelNameWithQuerySignsStaysOneValue() {
        var state = Sample.state(screen: .providers)
        var snapshot = Sample.snapshot
        snapshot.targets = [snapshot.targets[0]]
        snapshot.targets[0].model = "gpt-4.1:fault=500&x=1"
        state.apply(snapshot: snapshot, at: 100)
        _ = state.handle(.char("c"))
        guard case .confirm(.post(let path, _), _) = state.mode else { Issue.record("no confirmation"); return }
        #expect(path == "/v1/providers/openai-east/breaker/reset?model=gpt-4.1:fault%3D500%26x%3D1")
    }

    @Test func aKeyIsRevokedByPickingItThenConfirming() {
        var state = Sample.state(screen: .tenants)
        #expect(state.selectedTenant?.name == "acme" && state.tenantDetailWanted == "acme")
        _ = state.handle(.char("x"))
        guard case .pickKey = state.mode else { Issue.record("no key picker"); return }
        let picker = Renderer(now: 0).render(state, width: 80, height: 24).text
        #expect(picker.contains("Revoke a key of acme") && picker.contains("batch  sk-sy-91c0…"))
        _ = state.handle(.down)
        _ = state.handle(.enter)
        guard case .confirm(let command, let question) = state.mode else { Issue.record("no confirmation"); return }
        #expect(question == "Revoke key batch (sk-sy-91c0…) of tenant acme? It stops working at once, on every replica. [y/N]")
        #expect(state.handle(.char("y")) == [.delete(path: "/v1/keys/key_91c0", summary: "revoke key batch (sk-sy-91c0…) of tenant acme")])

        // Without the tenant's keys read yet, it says so instead of guessing.
        state.apply(tenantDetail: nil)
        _ = state.handle(.char("x"))
        #expect(state.mode == .normal && state.message?.isError == true)
    }

    @Test func aFlushOnTenantsIsTheSelectedTenants() {
        var state = Sample.state(screen: .tenants)
        _ = state.handle(.char("f"))
        guard case .confirm(let command, _) = state.mode else { Issue.record("no confirmation"); return }
        #expect(command == .post(path: "/v1/cache/flush?tenant=acme", summary: "flush cache of tenant acme"))
    }

    @Test func spendRateAndTheDaysProjectionComeFromWhatWasSampled() throws {
        let state = Sample.state(screen: .tenants)
        // A cent a second over the last 59 s: $36 an hour.
        let rate = try #require(state.spendRatePerHour("acme"))
        #expect(abs(rate - 36) < 0.001)
        let acme = try #require(state.snapshot?.tenants.first)
        // At 18:00 UTC six hours remain: $41.50 + 6 × $36.
        let projected = try #require(state.projectedSpendToday(acme, at: 18 * 3600))
        #expect(abs(projected - (41.5 + 216)) < 0.01)
        #expect(state.spendRatePerHour("globex") == 0)

        // A new day (spend back to zero) starts the rate afresh rather than going negative.
        var later = state
        var snapshot = Sample.snapshot
        snapshot.tenants[0].costTodayUsd = 0
        later.apply(snapshot: snapshot, at: 100)
        #expect(later.spendRatePerHour("acme") == nil)
    }

    @Test func theSpendRatesGraphAveragesOverFifteenSeconds() {
        // A cent every 5 s, sampled every second: $7.20 an hour, not spikes of $36 between flat zeros.
        let samples = (0..<60).map { ViewState.SpendSample(time: Double($0), costUsd: Double($0 / 5) * 0.01) }
        let rates = Renderer.rates(samples)
        #expect(rates.count == 59)
        #expect(rates.suffix(40).allSatisfy { abs($0 - 7.2) < 2.5 }, "\(rates)")
        #expect(Renderer.rates([]).isEmpty && Renderer.rates(Array(samples.prefix(1))).isEmpty)
    }

    @Test func aBreakersChangesAreKeptWithTheirTimes() throws {
        var state = Sample.state(screen: .providers)
        _ = state.handle(.down)
        let west = try #require(state.targetHistory["openai-west/gpt-4o"])
        #expect(west.breakerChanges.map(\.state) == ["open", "half_open", "open"])
        #expect(west.breakerChanges.map(\.time) == [20, 40, 50])
        #expect(state.targetHistory["openai-east/gpt-4o"]?.breakerChanges.isEmpty == true)
        let screen = Renderer(now: 0).render(state, width: 120, height: 40).text
        #expect(screen.contains("since: 00:00:20 open → 00:00:40 half_open → 00:00:50 open"))
        // Its last failed attempts, with when (as of the last snapshot, read at 59 s), what and whose fault.
        #expect(screen.contains("00:00:57  server_error  provider  Provider 'openai-west' answered with HTTP 503."))
        #expect(screen.contains("00:00:28  credentials  gateway  Provider 'openai-west' refused the gateway's key (HTTP 401)."))
    }

    @Test func aReplicaThatLeftTheRollCallIsShownGone() {
        let state = Sample.state(screen: .fleet)
        #expect(state.goneReplicas.keys.sorted() == ["gateway-7d9f-d:8080"])
        let screen = Renderer(now: 0).render(state, width: 120, height: 40).text
        #expect(screen.contains("Fleet, 3 replicas up, 1 gone"))
        #expect(screen.contains("gone: no heartbeat since 00:00:54"))
        // Back in the roll call, it is no longer gone.
        var back = state
        var snapshot = Sample.snapshot
        snapshot.fleet?.append(AdminReplica(
            id: "gateway-7d9f-d:8080", address: "127.0.0.14:8080", version: "0.2.0", configDigest: "3f9a1c2e", configVersion: 4, upSince: 0,
            requestsLastMinute: 1, errorRate: 0
        ))
        back.apply(snapshot: snapshot, at: 61)
        #expect(back.goneReplicas.isEmpty)

        // A fleet rolling its pods: only the latest few gone replicas are kept.
        var rolling = state
        for pod in 0..<20 {
            var snapshot = Sample.snapshot
            snapshot.fleet?.append(AdminReplica(
                id: "pod-\(pod):8080", address: "127.0.0.20:8080", version: "0.2.0", configDigest: "3f9a1c2e", configVersion: 4, upSince: 0,
                requestsLastMinute: 1, errorRate: 0
            ))
            rolling.apply(snapshot: snapshot, at: Double(100 + pod))
        }
        rolling.apply(snapshot: Sample.snapshot, at: 200)
        #expect(rolling.goneReplicas.count == ViewState.goneReplicasKept && rolling.goneReplicas["pod-19:8080"] != nil)
    }

    @Test func inAFleetAnActionsAnswerSaysEveryReplicaAppliesIt() {
        var state = Sample.state(screen: .providers)
        state.apply(result: "provider local drained", ok: true, of: .post(path: "/v1/providers/local/drain", summary: "drain local"))
        #expect(state.message?.text == "provider local drained  (fleet-wide: all 3 replicas)")
        state.apply(result: "drain local refused (404): no provider", ok: false, of: .post(path: "/v1/providers/local/drain", summary: "drain local"))
        #expect(state.message?.text == "drain local refused (404): no provider")
    }

    @Test func tallerTerminalsGiveTheOverviewsGraphsMoreRows() {
        let state = Sample.state(screen: .overview)
        let short = Renderer(now: 0).render(state, width: 120, height: 24).text
        let tall = Renderer(now: 0).render(state, width: 120, height: 60).text
        #expect(!short.contains("top "))
        #expect(tall.contains("top 16.0") && tall.contains("Windows"))
        #expect(tall.split(separator: "\n").filter { $0.contains("█") }.count > short.split(separator: "\n").filter { $0.contains("█") }.count)
    }
}

enum Golden {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

    static func check(_ text: String, name: String) throws {
        let url = self.directory.appendingPathComponent("\(name).txt")
        if ProcessInfo.processInfo.environment["UPDATE_GOLDEN"] == "1" {
            try (text + "\n").write(to: url, atomically: true, encoding: .utf8)
            return
        }
        let expected = try String(contentsOf: url, encoding: .utf8)
        #expect(text + "\n" == expected, "\(name) differs from Golden/\(name).txt (UPDATE_GOLDEN=1 rewrites it)")
    }
}
