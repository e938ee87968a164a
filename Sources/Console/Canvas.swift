/// What a cell means, not how it looks: the theme turns roles into colours or attributes.
enum Role: Int, CaseIterable, Sendable {
    case text
    case muted
    case accent
    case ok
    case warn
    case error
    case border
    case borderFocus
    case selected
    case latencyStart, latencyMid, latencyEnd
    case volumeStart, volumeMid, volumeEnd

    /// The theme key that styles this role.
    var themeKey: String {
        switch self {
        case .text: return "text"
        case .muted: return "muted"
        case .accent: return "accent"
        case .ok: return "status_ok"
        case .warn: return "status_warn"
        case .error: return "status_error"
        case .border: return "border"
        case .borderFocus: return "border_focus"
        case .selected: return "selected_fg"
        case .latencyStart: return "latency_start"
        case .latencyMid: return "latency_mid"
        case .latencyEnd: return "latency_end"
        case .volumeStart: return "volume_start"
        case .volumeMid: return "volume_mid"
        case .volumeEnd: return "volume_end"
        }
    }
}

struct Cell: Equatable, Sendable {
    var character: Character = " "
    var role: Role = .text
    var bold = false
}

/// The screen in memory: panels draw here, tests read it as text, and the terminal copies only the
/// cells that changed since the last frame.
struct Canvas: Equatable, Sendable {
    let width: Int
    let height: Int
    private(set) var cells: [Cell]

    init(width: Int, height: Int) {
        self.width = max(0, width)
        self.height = max(0, height)
        self.cells = Array(repeating: Cell(), count: self.width * self.height)
    }

    subscript(x: Int, y: Int) -> Cell {
        self.cells[y * self.width + x]
    }

    /// Writes `text` from (x, y), clipped to the canvas and to `limit` columns.
    mutating func put(_ x: Int, _ y: Int, _ text: String, _ role: Role = .text, bold: Bool = false, limit: Int? = nil) {
        guard y >= 0 && y < self.height else { return }
        let end = min(self.width, limit.map { x + $0 } ?? self.width)
        var column = x
        for character in text where column < end {
            if column >= 0 { self.cells[y * self.width + column] = Cell(character: character, role: role, bold: bold) }
            column += 1
        }
    }

    /// Paints a row segment in `role` (the selected row's highlight), keeping the characters.
    mutating func highlight(_ y: Int, from x: Int = 0, width: Int? = nil, role: Role) {
        guard y >= 0 && y < self.height else { return }
        for column in max(0, x)..<min(self.width, x + (width ?? self.width)) {
            self.cells[y * self.width + column].role = role
        }
    }

    /// A box with a title in its top border.
    mutating func box(_ x: Int, _ y: Int, _ width: Int, _ height: Int, title: String, focused: Bool = false, ascii: Bool = false) {
        guard width >= 2, height >= 2 else { return }
        let role: Role = focused ? .borderFocus : .border
        let (horizontal, vertical, corners) = ascii ? ("-", "|", ["+", "+", "+", "+"]) : ("─", "│", ["┌", "┐", "└", "┘"])
        self.put(x, y, corners[0] + String(repeating: horizontal, count: width - 2) + corners[1], role)
        for row in (y + 1)..<(y + height - 1) {
            self.put(x, row, vertical, role)
            self.put(x + width - 1, row, vertical, role)
        }
        self.put(x, y + height - 1, corners[2] + String(repeating: horizontal, count: width - 2) + corners[3], role)
        if !title.isEmpty { self.put(x + 2, y, " \(title) ", .accent, bold: true, limit: width - 4) }
    }

    /// The rows as plain text, trailing spaces trimmed (what the tests and `docs/console/` compare).
    var text: String {
        (0..<self.height).map { row in
            var line = String((0..<self.width).map { self[$0, row].character })
            while line.last == " " { line.removeLast() }
            return line
        }.joined(separator: "\n")
    }

    /// The cells that differ from `previous` (all of them when the size changed).
    func changes(since previous: Canvas?) -> [(x: Int, y: Int, cell: Cell)] {
        var changed: [(x: Int, y: Int, cell: Cell)] = []
        let same = previous.map { $0.width == self.width && $0.height == self.height } ?? false
        for y in 0..<self.height {
            for x in 0..<self.width {
                let cell = self[x, y]
                if !same || previous?[x, y] != cell { changed.append((x, y, cell)) }
            }
        }
        return changed
    }
}
