import CNcursesw
import Foundation
import Glibc

/// The only code that calls curses: start, draw the cells that changed, read keys, restore.
final class Terminal {
    private var previous: Canvas?
    private var attributes: [Role: Int32] = [:]
    let unicode: Bool

    /// Takes over the terminal.
    /// - Parameter theme: the roles' looks; `NO_COLOR` or a colourless terminal use attributes only.
    init(theme: Theme) {
        _ = cn_setlocale_all()
        self.unicode = cn_locale_is_utf8() != 0
        initscr()
        cbreak()
        noecho()
        nonl()
        keypad(cn_stdscr(), true)
        curs_set(0)
        // The ESC key alone, without waiting a second for an escape sequence.
        set_escdelay(25)
        timeout(200)
        self.setUpColors(theme)
    }

    /// Gives the terminal back as it was (safe to call twice).
    func restore() {
        if isendwin() == false { endwin() }
    }

    var size: (width: Int, height: Int) {
        var height: Int32 = 0
        var width: Int32 = 0
        cn_getmaxyx(cn_stdscr(), &height, &width)
        return (Int(width), Int(height))
    }

    /// Draws the cells that differ from the last frame, then lets curses update the screen.
    func draw(_ canvas: Canvas) {
        for change in canvas.changes(since: self.previous) {
            var attributes = self.attributes[change.cell.role] ?? 0
            if change.cell.bold { attributes |= Int32(cn_a_bold()) }
            let pair = Int16(change.cell.role.rawValue + 1)
            let scalar = change.cell.character.unicodeScalars.first.map { wchar_t(bitPattern: $0.value) } ?? 32
            _ = cn_mvadd_wch(Int32(change.y), Int32(change.x), scalar, attributes, has_colors() ? pair : 0)
        }
        self.previous = canvas
        refresh()
    }

    /// Forgets the last frame: the next draw repaints everything (after a resize).
    func invalidate() {
        self.previous = nil
        clear()
    }

    /// The next key, or nil when none came within the input timeout.
    func readKey() -> Key? {
        let code = getch()
        switch code {
        case ERR: return nil
        case KEY_UP: return .up
        case KEY_DOWN: return .down
        case KEY_LEFT: return .left
        case KEY_RIGHT: return .right
        case KEY_PPAGE: return .pageUp
        case KEY_NPAGE: return .pageDown
        case KEY_HOME: return .home
        case KEY_END: return .end
        case KEY_BTAB: return .backTab
        case KEY_RESIZE: return .resize
        case KEY_BACKSPACE, 127, 8: return .backspace
        case KEY_ENTER, 10, 13: return .enter
        case 9: return .tab
        case 27: return .escape
        default:
            for number in 1...12 where code == cn_key_f(Int32(number)) { return .function(number) }
            guard code > 0, code < 0x110000, let scalar = Unicode.Scalar(UInt32(code)) else { return nil }
            return .char(Character(scalar))
        }
    }

    private func setUpColors(_ theme: Theme) {
        let colorful = has_colors() && ProcessInfo.noColor == false
        if colorful {
            start_color()
            use_default_colors()
        }
        let colors = Int(cn_colors())
        for role in Role.allCases {
            switch (colorful, theme.style(role)) {
            case (true, .color(let red, let green, let blue)):
                let foreground = Self.terminalColor(red, green, blue, colors: colors)
                var background: Int16 = -1
                if role == .selected, case .color(let r, let g, let b)? = theme.selectedBackground {
                    background = Self.terminalColor(r, g, b, colors: colors)
                }
                init_pair(Int16(role.rawValue + 1), foreground, background)
                self.attributes[role] = Int32(cn_color_pair(Int32(role.rawValue + 1)))
                if role == .selected && background == -1 { self.attributes[role, default: 0] |= Int32(cn_a_reverse()) }
            case (_, .attributes(let set)):
                self.attributes[role] = Self.curses(set)
            case (false, .color):
                self.attributes[role] = Self.curses(Theme.attributesOnly.style(role).attributeSet)
            }
        }
    }

    /// The theme's colour stepped down to what the terminal has: 256 colours, else the basic 8.
    private static func terminalColor(_ red: Int, _ green: Int, _ blue: Int, colors: Int) -> Int16 {
        colors >= 256 ? Int16(Theme.xterm256(red: red, green: green, blue: blue)) : Int16(Theme.ansi8(red: red, green: green, blue: blue))
    }

    private static func curses(_ set: Set<Theme.Attribute>) -> Int32 {
        var value: Int32 = 0
        if set.contains(.bold) { value |= Int32(cn_a_bold()) }
        if set.contains(.dim) { value |= Int32(cn_a_dim()) }
        if set.contains(.reverse) { value |= Int32(cn_a_reverse()) }
        if set.contains(.underline) { value |= Int32(cn_a_underline()) }
        return value
    }
}

extension Theme.Style {
    var attributeSet: Set<Theme.Attribute> {
        if case .attributes(let set) = self { return set }
        return [.normal]
    }
}

extension ProcessInfo {
    /// https://no-color.org: set and non-empty means no colour.
    static var noColor: Bool { !(ProcessInfo.processInfo.environment["NO_COLOR"] ?? "").isEmpty }
}
