#if canImport(Glibc)
import Glibc
#endif
import NIOCore

/// An HTTP/1.1 request head framed from the bytes as they arrived, for the fast lane, which sits in
/// front of Hummingbird's HTTP/1.1 decoder and must find where each request ends without it.
///
/// Only clean heads are framed: a request line `METHOD SP target SP HTTP/1.1`, fields of token names
/// and visible values, CRLF line ends, at most one `Content-Length` and no `Transfer-Encoding` or
/// `Upgrade`. Anything else is `unframeable`, and the connection is Hummingbird's from there on, so
/// two parsers never disagree about where a request ends (the way requests are smuggled).
struct RequestHead {
    enum Parse {
        /// The blank line ending the head has not arrived yet.
        case incomplete
        case head(RequestHead)
        case unframeable
    }

    /// Heads longer than this are left to Hummingbird, whose own limits answer them.
    static let maxLength = 16 * 1024

    /// The head's bytes, its blank line included.
    let bytes: ByteBuffer
    let isPost: Bool
    /// Where the request target is in `bytes`.
    private let target: Range<Int>
    private let fields: [(name: Range<Int>, value: Range<Int>)]
    /// 0 when the head has none.
    let contentLength: Int
    /// `Connection: close`: the client ends the connection after the answer.
    let closes: Bool
    /// An `Expect` field (`100-continue`): the framework answers those.
    let expects: Bool

    /// Frames the head at the start of `buffer`.
    /// - Parameter searchedUpTo: how many bytes of `buffer` earlier calls found no blank line in (a
    ///   head that trickles in is not searched again from its start).
    static func parse(_ buffer: ByteBuffer, searchedUpTo: Int = 0) -> Parse {
        guard let end = HTTPToken.headLength(in: buffer, searchedUpTo: searchedUpTo) else { return buffer.readableBytes > Self.maxLength ? .unframeable : .incomplete }
        guard end <= Self.maxLength, let bytes = buffer.getSlice(at: buffer.readerIndex, length: end) else { return .unframeable }
        return bytes.withUnsafeReadableBytes { raw in Self.frame(raw) }.map { Parse.head(RequestHead(bytes: bytes, framed: $0)) } ?? .unframeable
    }

    private struct Framed {
        var isPost = false
        var target = 0..<0
        var fields: [(name: Range<Int>, value: Range<Int>)] = []
        var contentLength: Int?
        var closes = false
        var expects = false
    }

    private init(bytes: ByteBuffer, framed: Framed) {
        self.bytes = bytes
        self.isPost = framed.isPost
        self.target = framed.target
        self.fields = framed.fields
        self.contentLength = framed.contentLength ?? 0
        self.closes = framed.closes
        self.expects = framed.expects
    }

    private static func frame(_ bytes: UnsafeRawBufferPointer) -> Framed? {
        var framed = Framed()
        var lines = HeadLines(bytes)
        guard let requestLine = lines.next(), let firstSpace = bytes[requestLine].firstIndex(of: 0x20) else { return nil }
        let method = requestLine.lowerBound..<firstSpace
        guard !method.isEmpty, method.allSatisfy({ HTTPToken.isTokenByte(bytes[$0]) }) else { return nil }
        let version = requestLine.upperBound - 8..<requestLine.upperBound
        guard version.lowerBound > firstSpace + 1, bytes[version.lowerBound - 1] == 0x20, HTTPToken.equals(bytes, version, "HTTP/1.1") else { return nil }
        framed.target = firstSpace + 1..<version.lowerBound - 1
        guard framed.target.allSatisfy({ bytes[$0] > 0x20 && bytes[$0] < 0x7F }) else { return nil }
        framed.isPost = HTTPToken.equals(bytes, method, "POST")
        framed.fields.reserveCapacity(8)
        while let line = lines.next() {
            guard let (name, value) = HTTPToken.field(in: bytes, line: line) else { return nil }
            framed.fields.append((name, value))
            switch name.count {
            case 14 where HTTPToken.equalsIgnoringCase(bytes, name, "content-length"):
                guard framed.contentLength == nil, let length = HTTPToken.decimal(bytes, value) else { return nil }
                framed.contentLength = length
            case 17 where HTTPToken.equalsIgnoringCase(bytes, name, "transfer-encoding"):
                return nil
            case 7 where HTTPToken.equalsIgnoringCase(bytes, name, "upgrade"):
                return nil
            case 10 where HTTPToken.equalsIgnoringCase(bytes, name, "connection"):
                if HTTPToken.listContains(bytes, value, "close") { framed.closes = true }
            case 6 where HTTPToken.equalsIgnoringCase(bytes, name, "expect"):
                framed.expects = true
            default:
                break
            }
        }
        // A line that does not end in CRLF (a bare LF, a lone CR) left bytes the lines never reached.
        return lines.isComplete ? framed : nil
    }

    /// Whether the request target is exactly `path` (no query).
    func targets(_ path: StaticString) -> Bool {
        self.bytes.withUnsafeReadableBytes { HTTPToken.equals($0, self.target, path) }
    }

    /// Whether the first value of the field `name` (given in lower case) holds `needle`, looked at in
    /// place.
    func field(_ name: String, contains needle: String) -> Bool {
        var needle = needle
        return needle.withUTF8 { needle in
            self.withValue(of: name) { value in
                guard let value, needle.count > 0, value.count >= needle.count else { return false }
                return (0...(value.count - needle.count)).contains { start in
                    memcmp(value.baseAddress! + start, needle.baseAddress!, needle.count) == 0
                }
            }
        }
    }

    /// The first value of the field `name` (given in lower case), as sent.
    func field(_ name: String) -> String? {
        self.withValue(of: name) { value in value.map { String(decoding: $0, as: UTF8.self) } }
    }

    /// `body` of the bytes of the first value of the field `name` (given in lower case), nil when the
    /// head has no such field.
    private func withValue<Result>(of name: String, _ body: (UnsafeRawBufferPointer?) -> Result) -> Result {
        var name = name
        return name.withUTF8 { wanted in
            self.bytes.withUnsafeReadableBytes { bytes in
                let field = self.fields.first { $0.name.count == wanted.count && HTTPToken.equalsIgnoringCase(bytes, $0.name, wanted) }
                return body(field.map { UnsafeRawBufferPointer(rebasing: bytes[$0.value]) })
            }
        }
    }
}

/// The lines of a head whose end (the blank line) has been found: each line's range without its CRLF,
/// up to the blank line, which ends the iteration.
struct HeadLines {
    private let bytes: UnsafeRawBufferPointer
    private var position = 0
    /// Whether the blank line was reached, every line before it ending in CRLF.
    private(set) var isComplete = false

    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    mutating func next() -> Range<Int>? {
        guard !self.isComplete, self.position < self.bytes.count, let base = self.bytes.baseAddress else { return nil }
        let start = self.position
        guard let found = memchr(base + start, 0x0A, self.bytes.count - start) else { return nil }
        let lf = UnsafeRawPointer(found) - base
        // A bare LF would end the line for some parsers and not for others. (A bare CR inside a line
        // is refused by the checks of what a line may hold.)
        guard lf > start, self.bytes[lf - 1] == 0x0D else { return nil }
        self.position = lf + 1
        if lf - 1 == start {
            self.isComplete = true
            return nil
        }
        return start..<lf - 1
    }
}

/// Byte-level helpers for HTTP/1.1 heads (RFC 9110 tokens and field values).
enum HTTPToken {
    /// The length of the head at the start of `buffer`, its blank line included; nil before that
    /// line has arrived.
    /// - Parameter searchedUpTo: how many bytes earlier searches found no blank line in.
    static func headLength(in buffer: ByteBuffer, searchedUpTo: Int) -> Int? {
        buffer.withUnsafeReadableBytes { bytes -> Int? in
            guard let base = bytes.baseAddress else { return nil }
            var position = max(0, searchedUpTo - 3)
            while bytes.count - position >= 4, let found = memchr(base + position, 0x0D, bytes.count - position - 3) {
                let cr = UnsafeRawPointer(found) - base
                if bytes[cr + 1] == 0x0A, bytes[cr + 2] == 0x0D, bytes[cr + 3] == 0x0A { return cr + 4 }
                position = cr + 1
            }
            return nil
        }
    }

    /// `tchar`: what method and field names are made of. One bit a byte (ASCII letters, digits and
    /// ``!#$%&'*+-.^_`|~``), as two words: no branch per character.
    @inline(__always)
    static func isTokenByte(_ byte: UInt8) -> Bool {
        let low: UInt64 = 0x03FF_6CFA_0000_0000
        let high: UInt64 = 0x57FF_FFFF_C7FF_FFFE
        guard byte < 128 else { return false }
        return ((byte < 64 ? low : high) >> UInt64(byte & 63)) & 1 == 1
    }

    /// A field line's name and its value without surrounding whitespace; nil when the line is not
    /// `token ":" OWS value OWS` with a value of visible characters, spaces, tabs and obs-text.
    static func field(in bytes: UnsafeRawBufferPointer, line: Range<Int>) -> (name: Range<Int>, value: Range<Int>)? {
        var colon = line.lowerBound
        while colon < line.upperBound, bytes[colon] != UInt8(ascii: ":") {
            guard Self.isTokenByte(bytes[colon]) else { return nil }
            colon += 1
        }
        guard colon > line.lowerBound, colon < line.upperBound else { return nil }
        var start = colon + 1
        var end = line.upperBound
        while start < end, bytes[start] == 0x20 || bytes[start] == 0x09 { start += 1 }
        while end > start, bytes[end - 1] == 0x20 || bytes[end - 1] == 0x09 { end -= 1 }
        for index in start..<end {
            let byte = bytes[index]
            guard byte >= 0x20 || byte == 0x09, byte != 0x7F else { return nil }
        }
        return (line.lowerBound..<colon, start..<end)
    }

    static func equals(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ literal: StaticString) -> Bool {
        guard range.count == literal.utf8CodeUnitCount else { return false }
        return memcmp(bytes.baseAddress! + range.lowerBound, literal.utf8Start, range.count) == 0
    }

    static func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ lowercased: StaticString) -> Bool {
        Self.equalsIgnoringCase(bytes, range, UnsafeBufferPointer(start: lowercased.utf8Start, count: lowercased.utf8CodeUnitCount))
    }

    /// `lowercased` must be lower case; the bytes in `range` may be in any case.
    static func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ lowercased: UnsafeBufferPointer<UInt8>) -> Bool {
        guard range.count == lowercased.count else { return false }
        var offset = 0
        for index in range {
            let byte = bytes[index]
            let folded = byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
            guard folded == lowercased[offset] else { return false }
            offset += 1
        }
        return true
    }

    /// A plain decimal number (what `Content-Length` must be), at most 15 digits.
    static func decimal(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Int? {
        guard !range.isEmpty, range.count <= 15 else { return nil }
        var value = 0
        for index in range {
            let byte = bytes[index]
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return value
    }

    /// Whether the comma-separated list in `range` holds `token` (lower case), in any case.
    static func listContains(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ token: StaticString) -> Bool {
        var start = range.lowerBound
        while start < range.upperBound {
            var end = start
            while end < range.upperBound, bytes[end] != UInt8(ascii: ",") { end += 1 }
            var (from, to) = (start, end)
            while from < to, bytes[from] == 0x20 || bytes[from] == 0x09 { from += 1 }
            while to > from, bytes[to - 1] == 0x20 || bytes[to - 1] == 0x09 { to -= 1 }
            if Self.equalsIgnoringCase(bytes, from..<to, token) { return true }
            start = end + 1
        }
        return false
    }
}
