import Foundation

/// A console colour theme: semantic roles (`status_ok`, `muted`, `latency_start`…) to a colour
/// (`"#RRGGBB"`) or to attributes (`"bold"`, `"reverse,bold"`, `"dim"`, `"underline"`, `"normal"`).
/// Files live in `themes/NAME.theme`, one `theme[key]="value"` a line; missing keys fall back to
/// the default theme, unknown keys are reported as warnings.
struct Theme: Equatable, Sendable {
    enum Style: Equatable, Sendable {
        case color(red: Int, green: Int, blue: Int)
        case attributes(Set<Attribute>)
    }

    enum Attribute: String, Sendable, CaseIterable {
        case bold, dim, reverse, underline, normal
    }

    let name: String
    private(set) var styles: [String: Style]
    /// Problems found while reading the file, for the status line.
    private(set) var warnings: [String] = []

    /// Every key a theme may set.
    static let keys: Set<String> = Set(Role.allCases.map(\.themeKey) + ["selected_bg"])

    /// The default theme, built in so the console works wherever it is installed.
    static let builtIn: Theme = {
        var theme = Theme(name: "default", styles: [:])
        for (key, hex) in [
            ("text", "#D0D0D0"), ("status_ok", "#5FD75F"), ("status_warn", "#FFD75F"), ("status_error", "#FF5F5F"),
            ("muted", "#8A8A8A"), ("accent", "#5FAFFF"), ("selected_bg", "#303A4A"), ("selected_fg", "#FFFFFF"),
            ("border", "#4E4E4E"), ("border_focus", "#5FAFFF"), ("latency_start", "#5FD75F"), ("latency_mid", "#FFD75F"),
            ("latency_end", "#FF5F5F"), ("volume_start", "#5F87AF"), ("volume_mid", "#5FAFD7"), ("volume_end", "#AFD7FF"),
        ] {
            theme.styles[key] = Self.parseValue(hex)
        }
        return theme
    }()

    /// Attributes only, for `NO_COLOR` and terminals without colour.
    static let attributesOnly: Theme = {
        var theme = Theme(name: "monochrome", styles: [:])
        for role in Role.allCases {
            let attributes: Set<Attribute> = switch role {
            case .error, .accent, .latencyEnd: [.bold]
            case .muted, .border, .latencyStart, .volumeStart: [.dim]
            case .selected: [.reverse]
            case .warn: [.underline]
            default: [.normal]
            }
            theme.styles[role.themeKey] = .attributes(attributes)
        }
        return theme
    }()

    init(name: String, styles: [String: Style]) {
        self.name = name
        self.styles = styles
    }

    /// Reads a theme file's text over the default theme.
    static func parse(_ text: String, name: String, base: Theme = .builtIn) -> Theme {
        var theme = Theme(name: name, styles: base.styles)
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard line.hasPrefix("theme["), let close = line.firstIndex(of: "]"), let equals = line.firstIndex(of: "="), close < equals else {
                theme.warnings.append("\(name).theme line \(number + 1): expected theme[key]=\"value\"")
                continue
            }
            let key = String(line[line.index(line.startIndex, offsetBy: 6)..<close])
            let value = line[line.index(after: equals)...].trimmingCharacters(in: CharacterSet(charactersIn: "\" "))
            guard Self.keys.contains(key) else {
                theme.warnings.append("\(name).theme line \(number + 1): unknown key '\(key)'")
                continue
            }
            guard let style = Self.parseValue(value) else {
                theme.warnings.append("\(name).theme line \(number + 1): '\(value)' is neither #RRGGBB nor bold/dim/reverse/underline/normal")
                continue
            }
            theme.styles[key] = style
        }
        return theme
    }

    static func parseValue(_ value: String) -> Style? {
        if value.hasPrefix("#"), value.count == 7, let number = Int(value.dropFirst(), radix: 16) {
            return .color(red: (number >> 16) & 0xFF, green: (number >> 8) & 0xFF, blue: number & 0xFF)
        }
        let words = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let attributes = words.compactMap(Attribute.init(rawValue:))
        guard !words.isEmpty, attributes.count == words.count else { return nil }
        return .attributes(Set(attributes))
    }

    /// Finds `themes/NAME.theme`: in `$SWITCHYARD_THEMES`, `./themes`, then beside the executable.
    static func load(named name: String, executable: String = CommandLine.arguments[0]) -> Theme {
        let executableDirectory = (executable as NSString).deletingLastPathComponent
        let directories = [
            ProcessInfo.processInfo.environment["SWITCHYARD_THEMES"],
            "themes",
            (executableDirectory as NSString).appendingPathComponent("../share/switchyard/themes"),
            (executableDirectory as NSString).appendingPathComponent("../../themes"),
        ].compactMap { $0 }
        for directory in directories {
            let path = (directory as NSString).appendingPathComponent("\(name).theme")
            if let text = try? String(contentsOfFile: path, encoding: .utf8) { return Self.parse(text, name: name) }
        }
        var fallback = Self.builtIn
        if name != "default" { fallback.warnings = ["theme '\(name)' not found (looked in \(directories.joined(separator: ", "))); using the default"] }
        return fallback
    }

    func style(_ role: Role) -> Style {
        self.styles[role.themeKey] ?? Self.builtIn.styles[role.themeKey] ?? .attributes([.normal])
    }

    var selectedBackground: Style? { self.styles["selected_bg"] }

    // MARK: Stepping down to the terminal's colours

    /// The nearest of xterm's 256 colours (its 6×6×6 cube or its 24 greys).
    static func xterm256(red: Int, green: Int, blue: Int) -> Int {
        let levels = [0, 95, 135, 175, 215, 255]
        func nearestLevel(_ value: Int) -> Int { levels.indices.min { abs(levels[$0] - value) < abs(levels[$1] - value) } ?? 0 }
        let (r, g, b) = (nearestLevel(red), nearestLevel(green), nearestLevel(blue))
        let cube = 16 + 36 * r + 6 * g + b
        let cubeDistance = Self.distance((levels[r], levels[g], levels[b]), (red, green, blue))
        let grey = max(0, min(23, ((red + green + blue) / 3 - 3) / 10))
        let greyValue = 8 + grey * 10
        let greyDistance = Self.distance((greyValue, greyValue, greyValue), (red, green, blue))
        return greyDistance < cubeDistance ? 232 + grey : cube
    }

    /// The nearest of the eight basic colours (black, red, green, yellow, blue, magenta, cyan, white).
    static func ansi8(red: Int, green: Int, blue: Int) -> Int {
        let basic = [(0, 0, 0), (205, 0, 0), (0, 205, 0), (205, 205, 0), (0, 0, 238), (205, 0, 205), (0, 205, 205), (229, 229, 229)]
        return basic.indices.min { Self.distance(basic[$0], (red, green, blue)) < Self.distance(basic[$1], (red, green, blue)) } ?? 7
    }

    private static func distance(_ a: (Int, Int, Int), _ b: (Int, Int, Int)) -> Int {
        let (dr, dg, db) = (a.0 - b.0, a.1 - b.1, a.2 - b.2)
        return dr * dr + dg * dg + db * db
    }
}
