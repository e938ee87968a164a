/// A validating, allocation-light JSON scanner over raw bytes.
///
/// The fast path needs three things from a client body without decoding it into structs: proof that it
/// is valid JSON, the byte ranges of a few top-level members (to patch them in place), and their values.
/// Everything else is only skipped over, so the bytes we forward are exactly the bytes we received.
public struct JSONScanner {
    public enum ValueKind: Sendable, Equatable {
        case object, array, string, number, bool, null
    }

    /// One member of an object: its key (decoded) and the byte range of its value.
    public struct Member: Sendable, Equatable {
        public let key: String
        /// From the first byte of the key's opening quote.
        public let keyStart: Int
        public let valueRange: Range<Int>
        public let kind: ValueKind
    }

    /// A member to find by name: in the object scanned (`inside` nil), or in the object that is the
    /// value of the member `names[inside]` (found the same way), so usage inside an answer is read in
    /// the pass that validates the answer.
    public struct MemberName: Sendable, ExpressibleByStringLiteral {
        public let name: StaticString
        public let inside: Int?

        public init(_ name: StaticString, inside: Int? = nil) {
            self.name = name
            self.inside = inside
        }

        public init(stringLiteral name: StaticString) {
            self.init(name)
        }
    }

    /// A member found by name (`forEachTopLevelMember(of:named:_:)`): which of the names, and its value.
    public struct NamedMember: Sendable, Equatable {
        /// The index of its name in the names asked for.
        public let name: Int
        public let valueRange: Range<Int>
        public let kind: ValueKind
    }

    public struct SyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
        public let message: String
        public let offset: Int
        public var description: String { "\(self.message) at byte \(self.offset)" }
    }

    /// Guards the recursion: a body of 100,000 `[` must not overflow the stack.
    static let maxDepth = 256

    private let bytes: UnsafeRawBufferPointer
    private var position = 0

    private init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    // MARK: Entry points

    /// Validates the whole document, which must be an object, and returns its top-level members in order.
    public static func topLevelMembers(of bytes: UnsafeRawBufferPointer) throws(SyntaxError) -> [Member] {
        var scanner = JSONScanner(bytes)
        scanner.skipWhitespace()
        guard scanner.peek() == UInt8(ascii: "{") else {
            throw scanner.error(scanner.atEnd ? "the body is empty" : "the body must be a JSON object")
        }
        let members = try scanner.scanObject(collectMembers: true, depth: 0)
        scanner.skipWhitespace()
        guard scanner.atEnd else { throw scanner.error("unexpected data after the JSON object") }
        return members
    }

    /// Validates the whole document, which must be an object, and hands `body` its top-level members
    /// called one of `names`, in document order (a repeated member each time it appears). The other
    /// members' names are compared as bytes and never decoded, and nothing is collected, so nothing is
    /// allocated.
    public static func forEachTopLevelMember(
        of bytes: UnsafeRawBufferPointer, named names: [MemberName], _ body: (NamedMember) -> Void
    ) throws(SyntaxError) {
        var scanner = JSONScanner(bytes)
        scanner.skipWhitespace()
        guard scanner.peek() == UInt8(ascii: "{") else {
            throw scanner.error(scanner.atEnd ? "the body is empty" : "the body must be a JSON object")
        }
        try scanner.scanObject(named: names, inside: nil, depth: 0, body)
        scanner.skipWhitespace()
        guard scanner.atEnd else { throw scanner.error("unexpected data after the JSON object") }
    }

    /// Hands `body` the members called one of `names` of the object that starts at `range` in an
    /// already validated document.
    public static func forEachMember(
        ofObjectIn bytes: UnsafeRawBufferPointer, range: Range<Int>, named names: [MemberName], _ body: (NamedMember) -> Void
    ) throws(SyntaxError) {
        var scanner = JSONScanner(UnsafeRawBufferPointer(rebasing: bytes[..<range.upperBound]))
        scanner.position = range.lowerBound
        try scanner.scanObject(named: names, inside: nil, depth: 0, body)
    }

    /// The first element of the array that starts at `range` in an already validated document.
    public static func firstElement(ofArrayIn bytes: UnsafeRawBufferPointer, range: Range<Int>) throws(SyntaxError) -> (range: Range<Int>, kind: ValueKind)? {
        var scanner = JSONScanner(UnsafeRawBufferPointer(rebasing: bytes[..<range.upperBound]))
        scanner.position = range.lowerBound
        try scanner.expect(UInt8(ascii: "["), "'['")
        scanner.skipWhitespace()
        guard scanner.peek() != UInt8(ascii: "]") else { return nil }
        let start = scanner.position
        let kind = try scanner.scanValue(depth: 0)
        return (start..<scanner.position, kind)
    }

    /// Validates one complete JSON value (any kind), as found in one SSE `data:` line.
    public static func validate(_ bytes: UnsafeRawBufferPointer) throws(SyntaxError) {
        var scanner = JSONScanner(bytes)
        scanner.skipWhitespace()
        _ = try scanner.scanValue(depth: 0)
        scanner.skipWhitespace()
        guard scanner.atEnd else { throw scanner.error("unexpected data after the JSON value") }
    }

    /// Members of the object that starts at `range` in an already validated document.
    public static func members(ofObjectIn bytes: UnsafeRawBufferPointer, range: Range<Int>) throws(SyntaxError) -> [Member] {
        var scanner = JSONScanner(UnsafeRawBufferPointer(rebasing: bytes[..<range.upperBound]))
        scanner.position = range.lowerBound
        return try scanner.scanObject(collectMembers: true, depth: 0)
    }

    /// The elements of the array that starts at `range` in an already validated document.
    public static func elements(ofArrayIn bytes: UnsafeRawBufferPointer, range: Range<Int>) throws(SyntaxError) -> [(range: Range<Int>, kind: ValueKind)] {
        var scanner = JSONScanner(UnsafeRawBufferPointer(rebasing: bytes[..<range.upperBound]))
        scanner.position = range.lowerBound
        var elements: [(range: Range<Int>, kind: ValueKind)] = []
        try scanner.scanArray(depth: 0) { start, end, kind in elements.append((start..<end, kind)) }
        return elements
    }

    /// Decodes the JSON string literal at `range` (quotes included).
    public static func decodeString(in bytes: UnsafeRawBufferPointer, range: Range<Int>) throws(SyntaxError) -> String {
        var scanner = JSONScanner(UnsafeRawBufferPointer(rebasing: bytes[..<range.upperBound]))
        scanner.position = range.lowerBound
        return try scanner.scanString(decode: true) ?? ""
    }

    // MARK: Grammar

    private var atEnd: Bool { self.position >= self.bytes.count }

    private func peek() -> UInt8? {
        self.position < self.bytes.count ? self.bytes[self.position] : nil
    }

    private func error(_ message: String) -> SyntaxError {
        SyntaxError(message: message, offset: self.position)
    }

    private mutating func skipWhitespace() {
        while self.position < self.bytes.count {
            switch self.bytes[self.position] {
            case 0x20, 0x09, 0x0A, 0x0D: self.position += 1
            default: return
            }
        }
    }

    /// `what` is a `StaticString`: a `String` argument would be retained and released on every call.
    private mutating func expect(_ byte: UInt8, _ what: StaticString) throws(SyntaxError) {
        guard self.peek() == byte else { throw self.error("expected \(what)") }
        self.position += 1
    }

    private mutating func scanValue(depth: Int) throws(SyntaxError) -> ValueKind {
        guard depth < Self.maxDepth else { throw self.error("nesting deeper than \(Self.maxDepth) levels") }
        guard let byte = self.peek() else { throw self.error("unexpected end of input") }
        switch byte {
        case UInt8(ascii: "{"):
            try self.skipObject(depth: depth)
            return .object
        case UInt8(ascii: "["):
            try self.scanArray(depth: depth)
            return .array
        case UInt8(ascii: "\""):
            _ = try self.scanString(decode: false)
            return .string
        case UInt8(ascii: "t"):
            try self.scanLiteral("true")
            return .bool
        case UInt8(ascii: "f"):
            try self.scanLiteral("false")
            return .bool
        case UInt8(ascii: "n"):
            try self.scanLiteral("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            try self.scanNumber()
            return .number
        default:
            throw self.error("unexpected character '\(Character(Unicode.Scalar(byte)))'")
        }
    }

    private mutating func scanObject(collectMembers: Bool, depth: Int) throws(SyntaxError) -> [Member] {
        var members: [Member] = []
        try self.scanObject(depth: depth) { (scanner, key, keyStart, valueRange, kind) throws(SyntaxError) in
            guard collectMembers else { return }
            members.append(Member(key: try scanner.decodedKey(key), keyStart: keyStart, valueRange: valueRange, kind: kind))
        }
        return members
    }

    /// A nested object nobody asked about: validated, its members handed nowhere.
    private mutating func skipObject(depth: Int) throws(SyntaxError) {
        try self.scanObject(depth: depth) { _, _, _, _, _ in }
    }

    /// Scans an object, handing `body` its members called one of the `names` that are `inside` it; an
    /// object value with names of its own to find is scanned the same way, else it is only validated.
    private mutating func scanObject(named names: [MemberName], inside: Int?, depth: Int, _ body: (NamedMember) -> Void) throws(SyntaxError) {
        guard try self.openObject() else { return }
        repeat {
            let (key, _) = try self.memberName()
            let valueStart = self.position
            let name = try self.index(of: key, in: names, inside: inside)
            let kind: ValueKind
            if let name, self.peek() == UInt8(ascii: "{"), names.contains(where: { $0.inside == name }) {
                guard depth + 1 < Self.maxDepth else { throw self.error("nesting deeper than \(Self.maxDepth) levels") }
                try self.scanObject(named: names, inside: name, depth: depth + 1, body)
                kind = .object
            } else {
                kind = try self.scanValue(depth: depth + 1)
            }
            if let name { body(NamedMember(name: name, valueRange: valueStart..<self.position, kind: kind)) }
        } while try self.nextMember()
    }

    /// A member name's content (between its quotes) and whether it holds escapes.
    private typealias Key = (content: Range<Int>, hasEscapes: Bool)

    /// Scans an object, handing each member to `onMember`: its name, where the name's opening quote
    /// is, and its value's range and kind. Inlined into each caller, so `onMember` is too (a call
    /// through a closure per member cost a third of scanning an answer).
    @inline(__always)
    private mutating func scanObject(
        depth: Int,
        onMember: (_ scanner: JSONScanner, _ key: Key, _ keyStart: Int, _ valueRange: Range<Int>, _ kind: ValueKind) throws(SyntaxError) -> Void
    ) throws(SyntaxError) {
        guard try self.openObject() else { return }
        repeat {
            let (key, keyStart) = try self.memberName()
            let valueStart = self.position
            let kind = try self.scanValue(depth: depth + 1)
            try onMember(self, key, keyStart, valueStart..<self.position, kind)
        } while try self.nextMember()
    }

    /// Consumes an object's `{`; false for an empty object (its `}` consumed too).
    @inline(__always)
    private mutating func openObject() throws(SyntaxError) -> Bool {
        try self.expect(UInt8(ascii: "{"), "'{'")
        self.skipWhitespace()
        guard self.peek() == UInt8(ascii: "}") else { return true }
        self.position += 1
        return false
    }

    /// A member's name, where its opening quote is, and the colon after it (the value is next).
    @inline(__always)
    private mutating func memberName() throws(SyntaxError) -> (Key, Int) {
        self.skipWhitespace()
        let keyStart = self.position
        guard self.peek() == UInt8(ascii: "\"") else { throw self.error("expected a quoted member name") }
        let key = try self.scanStringContent()
        self.skipWhitespace()
        try self.expect(UInt8(ascii: ":"), "':' after a member name")
        self.skipWhitespace()
        return (key, keyStart)
    }

    /// After a member's value: true past a `,` (another member follows), false past the closing `}`.
    @inline(__always)
    private mutating func nextMember() throws(SyntaxError) -> Bool {
        self.skipWhitespace()
        switch self.peek() {
        case UInt8(ascii: ","):
            self.position += 1
            return true
        case UInt8(ascii: "}"):
            self.position += 1
            return false
        default:
            throw self.error("expected ',' or '}' in an object")
        }
    }

    private mutating func scanArray(
        depth: Int,
        onElement: (_ start: Int, _ end: Int, _ kind: ValueKind) -> Void = { _, _, _ in }
    ) throws(SyntaxError) {
        try self.expect(UInt8(ascii: "["), "'['")
        self.skipWhitespace()
        if self.peek() == UInt8(ascii: "]") {
            self.position += 1
            return
        }
        while true {
            self.skipWhitespace()
            let start = self.position
            let kind = try self.scanValue(depth: depth + 1)
            onElement(start, self.position, kind)
            self.skipWhitespace()
            switch self.peek() {
            case UInt8(ascii: ","):
                self.position += 1
            case UInt8(ascii: "]"):
                self.position += 1
                return
            default:
                throw self.error("expected ',' or ']' in an array")
            }
        }
    }

    private mutating func scanLiteral(_ literal: StaticString) throws(SyntaxError) {
        let count = literal.utf8CodeUnitCount
        guard self.position + count <= self.bytes.count else { throw self.error("unexpected end of input") }
        for index in 0..<count where self.bytes[self.position + index] != literal.utf8Start[index] {
            throw self.error("invalid literal")
        }
        self.position += count
    }

    private mutating func scanNumber() throws(SyntaxError) {
        let start = self.position
        if self.peek() == UInt8(ascii: "-") { self.position += 1 }
        guard let first = self.peek(), Self.isDigit(first) else { throw self.error("invalid number") }
        self.position += 1
        if first != UInt8(ascii: "0") { self.skipDigits() }
        if self.peek() == UInt8(ascii: ".") {
            self.position += 1
            guard let digit = self.peek(), Self.isDigit(digit) else { throw self.error("invalid number") }
            self.skipDigits()
        }
        if let exponent = self.peek(), exponent == UInt8(ascii: "e") || exponent == UInt8(ascii: "E") {
            self.position += 1
            if let sign = self.peek(), sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { self.position += 1 }
            guard let digit = self.peek(), Self.isDigit(digit) else { throw self.error("invalid number") }
            self.skipDigits()
        }
        if let next = self.peek(), Self.isDigit(next) {
            self.position = start
            throw self.error("invalid number (leading zero)")
        }
    }

    private mutating func skipDigits() {
        while let byte = self.peek(), Self.isDigit(byte) { self.position += 1 }
    }

    private static func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    /// Scans a string literal; returns its decoded value when `decode` is set.
    private mutating func scanString(decode: Bool) throws(SyntaxError) -> String? {
        let key = try self.scanStringContent()
        return decode ? try self.decodedKey(key) : nil
    }

    /// The decoded text of string content found by `scanStringContent`.
    private func decodedKey(_ key: Key) throws(SyntaxError) -> String {
        let raw = UnsafeRawBufferPointer(rebasing: self.bytes[key.content])
        return key.hasEscapes ? try Self.unescape(raw, baseOffset: key.content.lowerBound) : String(decoding: raw, as: UTF8.self)
    }

    /// Which of `names` (those `inside` the object scanned) the string content is, compared as bytes
    /// (decoded first only when it holds escapes).
    private func index(of key: Key, in names: [MemberName], inside: Int?) throws(SyntaxError) -> Int? {
        if key.hasEscapes {
            let decoded = try self.decodedKey(key)
            return names.firstIndex { $0.inside == inside && $0.name.description == decoded }
        }
        let start = key.content.lowerBound
        return names.firstIndex { member in
            let name = member.name
            guard member.inside == inside, name.utf8CodeUnitCount == key.content.count else { return false }
            for offset in 0..<key.content.count where self.bytes[start + offset] != name.utf8Start[offset] { return false }
            return true
        }
    }

    /// Scans a string literal, validating its escapes and rejecting control characters.
    private mutating func scanStringContent() throws(SyntaxError) -> Key {
        try self.expect(UInt8(ascii: "\""), "'\"'")
        let contentStart = self.position
        var hasEscapes = false
        while true {
            self.skipPlainStringBytes()
            guard let byte = self.peek() else { throw self.error("unterminated string") }
            switch byte {
            case UInt8(ascii: "\""):
                let contentEnd = self.position
                self.position += 1
                return (contentStart..<contentEnd, hasEscapes)
            case UInt8(ascii: "\\"):
                hasEscapes = true
                self.position += 1
                guard let escaped = self.peek() else { throw self.error("unterminated string") }
                switch escaped {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                    UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    self.position += 1
                case UInt8(ascii: "u"):
                    self.position += 1
                    for _ in 0..<4 {
                        guard let hex = self.peek(), Self.hexValue(hex) != nil else { throw self.error("invalid \\u escape") }
                        self.position += 1
                    }
                default:
                    throw self.error("invalid escape sequence")
                }
            case 0x00..<0x20:
                throw self.error("control character in string")
            default:
                // A byte of 0x80 or more: the start of a multi-byte character, whose bytes must be
                // well-formed UTF-8 (or a client could smuggle bytes that other parsers read differently).
                guard let length = Self.utf8SequenceLength(self.bytes, at: self.position) else {
                    throw self.error("invalid UTF-8 in string")
                }
                self.position += length
            }
        }
    }

    /// The length of the well-formed UTF-8 sequence at `position` (Unicode's table 3-7: no overlong
    /// forms, no surrogates, nothing past U+10FFFF), or nil when it is not one.
    private static func utf8SequenceLength(_ bytes: UnsafeRawBufferPointer, at position: Int) -> Int? {
        let lead = bytes[position]
        let length: Int
        var second: ClosedRange<UInt8> = 0x80...0xBF
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0: (length, second) = (3, 0xA0...0xBF)
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED: (length, second) = (3, 0x80...0x9F)
        case 0xF0: (length, second) = (4, 0x90...0xBF)
        case 0xF1...0xF3: length = 4
        case 0xF4: (length, second) = (4, 0x80...0x8F)
        default: return nil
        }
        guard position + length <= bytes.count, second.contains(bytes[position + 1]) else { return nil }
        for offset in 2..<length where !(0x80...0xBF).contains(bytes[position + offset]) { return nil }
        return length
    }

    /// Skips what needs no attention inside a string (all but quotes, backslashes, control
    /// characters and non-ASCII bytes, which are checked as UTF-8): most of a body's bytes, in a loop
    /// without the grammar's per-byte checks.
    private mutating func skipPlainStringBytes() {
        var position = self.position
        let count = self.bytes.count
        // Eight bytes at a time while none of them is a quote, a backslash, below 0x20 or above 0x7F
        // (the classic "has a zero byte" and "has a byte less than n" word tests, and the high bits).
        if let base = self.bytes.baseAddress {
            let ones: UInt64 = 0x0101_0101_0101_0101
            let highs: UInt64 = 0x8080_8080_8080_8080
            while position + 8 <= count {
                let word = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: position, as: UInt64.self))
                let quotes = word ^ 0x2222_2222_2222_2222
                let backslashes = word ^ 0x5C5C_5C5C_5C5C_5C5C
                let found = (((quotes &- ones) & ~quotes) | ((backslashes &- ones) & ~backslashes) | ((word &- 0x2020_2020_2020_2020) & ~word) | word) & highs
                if found != 0 {
                    // The lowest byte flagged is exact: a borrow only misflags bytes after a true match,
                    // and the word is read with its first byte lowest.
                    self.position = position + found.trailingZeroBitCount / 8
                    return
                }
                position += 8
            }
        }
        while position < count {
            let byte = self.bytes[position]
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte < 0x20 || byte >= 0x80 { break }
            position += 1
        }
        self.position = position
    }

    private static func hexValue(_ byte: UInt8) -> UInt32? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt32(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt32(byte - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }

    /// Decodes escapes in already validated string content, pairing UTF-16 surrogates.
    private static func unescape(_ raw: UnsafeRawBufferPointer, baseOffset: Int) throws(SyntaxError) -> String {
        var utf8: [UInt8] = []
        utf8.reserveCapacity(raw.count)
        var index = 0
        var pendingHighSurrogate: UInt32?
        func appendScalar(_ value: UInt32) {
            let scalar = Unicode.Scalar(value) ?? "\u{FFFD}"
            UTF8.encode(scalar) { utf8.append($0) }
        }
        while index < raw.count {
            let byte = raw[index]
            guard byte == UInt8(ascii: "\\") else {
                if pendingHighSurrogate != nil { appendScalar(0xFFFD); pendingHighSurrogate = nil }
                utf8.append(byte)
                index += 1
                continue
            }
            let escaped = raw[index + 1]
            index += 2
            if escaped == UInt8(ascii: "u") {
                var value: UInt32 = 0
                for offset in 0..<4 { value = value << 4 | (self.hexValue(raw[index + offset]) ?? 0) }
                index += 4
                if (0xD800..<0xDC00).contains(value) {
                    if pendingHighSurrogate != nil { appendScalar(0xFFFD) }
                    pendingHighSurrogate = value
                } else if (0xDC00..<0xE000).contains(value), let high = pendingHighSurrogate {
                    appendScalar(0x10000 + ((high - 0xD800) << 10) + (value - 0xDC00))
                    pendingHighSurrogate = nil
                } else {
                    if pendingHighSurrogate != nil { appendScalar(0xFFFD); pendingHighSurrogate = nil }
                    appendScalar(value)
                }
                continue
            }
            if pendingHighSurrogate != nil { appendScalar(0xFFFD); pendingHighSurrogate = nil }
            switch escaped {
            case UInt8(ascii: "b"): utf8.append(0x08)
            case UInt8(ascii: "f"): utf8.append(0x0C)
            case UInt8(ascii: "n"): utf8.append(0x0A)
            case UInt8(ascii: "r"): utf8.append(0x0D)
            case UInt8(ascii: "t"): utf8.append(0x09)
            default: utf8.append(escaped)
            }
        }
        if pendingHighSurrogate != nil { appendScalar(0xFFFD) }
        return String(decoding: utf8, as: UTF8.self)
    }
}
