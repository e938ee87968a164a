/// A key as the console understands it, whatever the terminal sent.
enum Key: Hashable, Sendable {
    case char(Character)
    case up, down, left, right, pageUp, pageDown, home, end
    case enter, escape, tab, backTab, backspace
    case function(Int)
    case resize
}

enum Screen: Int, CaseIterable, Sendable {
    case overview = 1, providers, tenants, routes, cache, log, fleet

    var title: String {
        switch self {
        case .overview: return "Overview"
        case .providers: return "Providers"
        case .tenants: return "Tenants"
        case .routes: return "Routes"
        case .cache: return "Cache"
        case .log: return "Live log"
        case .fleet: return "Fleet"
        }
    }

    /// The header's tab: as the title, but short enough that seven fit in 80 columns.
    var tab: String { self == .log ? "Log" : self.title }
}

enum Action: Equatable, Sendable {
    case quit, nextScreen, previousScreen, show(Screen), up, down, pageUp, pageDown
    case filter, sort, help
    case drain, undrain, openBreaker, resetBreaker, editRoute, flushCache, revokeKey, reload
}

/// One row of the key table: it drives dispatch, the footer hints and the help screen, so the three
/// can never disagree.
struct Binding: Sendable {
    let keys: [Key]
    let keyLabel: String
    let action: Action
    /// The footer's word for it.
    let hint: String
    let help: String
    /// Where it applies; nil = every screen.
    let screens: Set<Screen>?
    /// Changes the gateway: asks for confirmation, hidden and disabled with `--read-only`.
    let mutates: Bool

    init(_ keys: [Key], _ keyLabel: String, _ action: Action, hint: String, help: String, screens: Set<Screen>? = nil, mutates: Bool = false) {
        self.keys = keys
        self.keyLabel = keyLabel
        self.action = action
        self.hint = hint
        self.help = help
        self.screens = screens
        self.mutates = mutates
    }

    func applies(on screen: Screen, readOnly: Bool) -> Bool {
        (self.screens?.contains(screen) ?? true) && !(readOnly && self.mutates)
    }
}

enum KeyBindings {
    static let table: [Binding] = [
        Binding([.function(1), .char("?")], "F1/?", .help, hint: "Help", help: "this help"),
        Binding([.tab], "Tab", .nextScreen, hint: "", help: "next screen"),
        Binding([.backTab], "S-Tab", .previousScreen, hint: "", help: "previous screen"),
        Binding([.char("1")], "1", .show(.overview), hint: "", help: "Overview: rates, errors, latency, cost"),
        Binding([.char("2")], "2", .show(.providers), hint: "", help: "Providers: one row per target"),
        Binding([.char("3")], "3", .show(.tenants), hint: "", help: "Tenants: requests, tokens, cost, budget"),
        Binding([.char("4")], "4", .show(.routes), hint: "", help: "Routes: strategy, targets, traffic share"),
        Binding([.char("5")], "5", .show(.cache), hint: "", help: "Cache: entries, size, hit rates"),
        Binding([.char("6")], "6", .show(.log), hint: "", help: "Live log: the gateway's event stream"),
        Binding([.char("7")], "7", .show(.fleet), hint: "", help: "Fleet: replicas, their traffic and config, Redis"),
        Binding([.up, .char("k")], "↑/k", .up, hint: "", help: "select the row above"),
        Binding([.down, .char("j")], "↓/j", .down, hint: "", help: "select the row below"),
        Binding([.pageUp], "PgUp", .pageUp, hint: "", help: "a page up"),
        Binding([.pageDown], "PgDn", .pageDown, hint: "", help: "a page down"),
        Binding([.char("/")], "/", .filter, hint: "Filter", help: "filter the rows (Enter keeps, Esc clears)", screens: [.providers, .log]),
        Binding([.char("s")], "s", .sort, hint: "Sort", help: "change the sort column", screens: [.tenants, .providers]),
        Binding([.function(7), .char("d")], "F7/d", .drain, hint: "Drain", help: "drain the selected provider; in-flight requests finish", screens: [.providers], mutates: true),
        Binding([.function(8), .char("u")], "F8/u", .undrain, hint: "Undrain", help: "put the selected provider back in rotation", screens: [.providers], mutates: true),
        Binding([.char("o")], "o", .openBreaker, hint: "Open", help: "open the selected target's breaker: it rests, then probes", screens: [.providers], mutates: true),
        Binding([.char("c")], "c", .resetBreaker, hint: "Close", help: "close the selected target's breaker, forgetting its failures", screens: [.providers], mutates: true),
        Binding([.function(4), .char("e")], "F4/e", .editRoute, hint: "Edit", help: "edit the selected route: weights, order, targets, strategy", screens: [.routes], mutates: true),
        Binding([.function(9), .char("f")], "F9/f", .flushCache, hint: "Flush", help: "flush the cache (all, or the route's or tenant's)", screens: [.cache, .routes, .tenants], mutates: true),
        Binding([.function(6), .char("x")], "F6/x", .revokeKey, hint: "Revoke", help: "revoke a key of the selected tenant (pick, then confirm)", screens: [.tenants], mutates: true),
        Binding([.function(5), .char("r")], "F5/r", .reload, hint: "Reload", help: "re-read and validate the gateway's config file", mutates: true),
        Binding([.function(10), .char("q")], "F10/q", .quit, hint: "Quit", help: "quit the console (the gateway keeps running)"),
    ]

    static func action(for key: Key, on screen: Screen, readOnly: Bool) -> Action? {
        self.table.first { $0.keys.contains(key) && $0.applies(on: screen, readOnly: readOnly) }?.action
    }

    /// The footer: the hinted bindings that apply on this screen.
    static func footer(on screen: Screen, readOnly: Bool) -> [(key: String, hint: String)] {
        self.table.filter { !$0.hint.isEmpty && $0.applies(on: screen, readOnly: readOnly) }.map { ($0.keyLabel, $0.hint) }
    }
}
