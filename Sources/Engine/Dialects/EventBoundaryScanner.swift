public import NIOCore

/// Finds where the events of a stream end as its bytes arrive in pieces: SSE events (ended by an
/// empty line) or NDJSON lines.
///
/// It remembers how far the current event has been searched, so each byte is looked at once however
/// finely the event is split (searching the whole unfinished event again on every read costs time
/// quadratic in its size), and it refuses an event that grows past `maxEventBytes` without ending,
/// so an upstream that never ends an event grows neither our memory nor our CPU without bound.
///
/// The caller keeps the bytes of the unfinished event and presents them again, with more appended,
/// at the same place (`eventStart`) on the next call.
public struct EventBoundaryScanner: Sendable {
    public enum Separator: Sendable {
        /// SSE: an empty line ends an event; a line ends with CRLF, LF or CR (WHATWG HTML §9.2.5).
        case blankLine
        /// NDJSON: every line, ended by LF, is an event.
        case lineFeed
    }

    /// Where one event ends.
    public struct Boundary: Equatable, Sendable {
        /// The end of the event's lines (their own line endings included, the ending empty line not).
        public let contentEnd: Int
        /// Where the next event begins.
        public let next: Int
    }

    /// The largest event taken by default: 8 MiB. A stream's events are small (a token, a tool-call
    /// fragment: tens of bytes to a few KiB); the largest real ones carry a whole tool call or an
    /// inline image (a generated image as base64 is a few MiB), which fit with room to spare, while a
    /// stream holds at most this much (and its buffer's growth) however its upstream behaves.
    public static let defaultMaxEventBytes = 8 << 20

    public let separator: Separator
    public let maxEventBytes: Int
    private let provider: String
    /// Bytes of the current event already searched (none of them ended it).
    private var searched = 0
    private var atLineStart = true
    /// The last byte searched was a CR: an LF right after it belongs to the same line ending.
    private var afterCR = false
    /// The last call stopped before a CR that may end the event: it is searched again with the byte after it.
    private var heldCR = false
    /// Bytes looked at over the scanner's life: linear in the stream's length.
    public private(set) var bytesExamined = 0

    /// - Parameter provider: named in the error that refuses an event too large.
    public init(_ separator: Separator, provider: String, maxEventBytes: Int = Self.defaultMaxEventBytes) {
        self.separator = separator
        self.provider = provider
        self.maxEventBytes = maxEventBytes
    }

    /// The end of the event that begins at `eventStart`, searching only bytes not searched before;
    /// nil until it has arrived.
    /// - Throws: `upstreamMalformed` when the event is longer than `maxEventBytes`.
    public mutating func nextBoundary(in bytes: UnsafeRawBufferPointer, eventStart: Int) throws(GatewayError) -> Boundary? {
        let from = min(eventStart + self.searched, bytes.count)
        let found = self.separator == .lineFeed ? Self.lineFeed(in: bytes, from: from) : self.blankLine(in: bytes, from: from)
        self.bytesExamined += (found?.next ?? bytes.count) - from
        guard let found else {
            self.searched = bytes.count - eventStart - (self.heldCR ? 1 : 0)
            self.heldCR = false
            if self.searched > self.maxEventBytes { throw self.tooLarge }
            return nil
        }
        self.searched = 0
        guard found.contentEnd - eventStart <= self.maxEventBytes else { throw self.tooLarge }
        return found
    }

    private static func lineFeed(in bytes: UnsafeRawBufferPointer, from: Int) -> Boundary? {
        guard let index = bytes[from...].firstIndex(of: 0x0A) else { return nil }
        return Boundary(contentEnd: index, next: index + 1)
    }

    /// The state between lines lives in locals while searching, and is kept for the next call.
    private mutating func blankLine(in bytes: UnsafeRawBufferPointer, from: Int) -> Boundary? {
        var atLineStart = self.atLineStart
        var afterCR = self.afterCR
        defer {
            self.atLineStart = atLineStart
            self.afterCR = afterCR
        }
        var index = from
        while index < bytes.count {
            let byte = bytes[index]
            if byte != 0x0A && byte != 0x0D {
                // Inside a line: on to its end, eight bytes at a time.
                atLineStart = false
                afterCR = false
                index = LineBreaks.first(in: bytes, from: index + 1)
                continue
            }
            index += 1
            if byte == 0x0A {
                if afterCR {
                    // The LF of a CRLF, whose CR ended the line already.
                    afterCR = false
                } else if atLineStart {
                    return Boundary(contentEnd: index - 1, next: index)
                } else {
                    atLineStart = true
                }
            } else {
                if atLineStart {
                    // An empty line, ended by CR or CRLF. A CR that is the last byte so far waits for the
                    // next one: the event must end in the same place however its bytes were split.
                    guard index < bytes.count else {
                        self.heldCR = true
                        return nil
                    }
                    afterCR = false
                    return Boundary(contentEnd: index - 1, next: bytes[index] == 0x0A ? index + 1 : index)
                }
                atLineStart = true
                afterCR = true
            }
        }
        return nil
    }

    private var tooLarge: GatewayError {
        .upstreamMalformed(provider: self.provider, detail: "a stream event longer than \(self.maxEventBytes) bytes")
    }
}

/// Cuts a stream into whole events as its bytes arrive (`EventBoundaryScanner` finds their ends),
/// holding only the unfinished one. Events are slices of what arrived, not copies.
public struct StreamEventFramer: Sendable {
    /// One whole event.
    public struct Event: Sendable {
        /// The event as it came, with the line ending or empty line that ended it.
        public let bytes: ByteBuffer
        /// Its lines, without what ended the event.
        public let content: ByteBuffer
    }

    private var scanner: EventBoundaryScanner
    /// The unfinished event, alone in its buffer (what came before it is not kept).
    private var pending: ByteBuffer?

    public init(_ separator: EventBoundaryScanner.Separator, provider: String, maxEventBytes: Int = EventBoundaryScanner.defaultMaxEventBytes) {
        self.scanner = EventBoundaryScanner(separator, provider: provider, maxEventBytes: maxEventBytes)
    }

    /// Bytes looked at for event ends so far.
    public var bytesExamined: Int { self.scanner.bytesExamined }

    /// The events `chunk` completes, in order, and the failure that ends the stream after them: an
    /// event longer than the scanner's cap.
    public mutating func feed(_ chunk: ByteBuffer) -> (events: [Event], failure: GatewayError?) {
        var buffer = StreamEventFramer.appending(chunk, to: &self.pending)
        var boundaries: [EventBoundaryScanner.Boundary] = []
        var failure: GatewayError?
        var scanner = self.scanner
        buffer.withUnsafeReadableBytes { bytes in
            do throws(GatewayError) {
                while let boundary = try scanner.nextBoundary(in: bytes, eventStart: boundaries.last?.next ?? 0) { boundaries.append(boundary) }
            } catch {
                failure = error
            }
        }
        self.scanner = scanner
        var events: [Event] = []
        events.reserveCapacity(boundaries.count)
        var start = 0
        for boundary in boundaries {
            guard let content = buffer.getSlice(at: buffer.readerIndex, length: boundary.contentEnd - start),
                let bytes = buffer.readSlice(length: boundary.next - start)
            else { break }
            events.append(Event(bytes: bytes, content: content))
            start = boundary.next
        }
        if failure == nil && buffer.readableBytes > 0 { self.pending = buffer.slice() }
        return (events, failure)
    }

    /// The stream ended: what came after the last whole event (a last event without its ending), if anything.
    public mutating func finish() -> ByteBuffer? {
        defer { self.pending = nil }
        return self.pending
    }

    /// `pending` with `chunk` after it, taken out of `pending` first so that the append happens in
    /// place (a second reference would make it copy everything held, on every read).
    static func appending(_ chunk: ByteBuffer, to pending: inout ByteBuffer?) -> ByteBuffer {
        guard var buffer = pending else { return chunk }
        pending = nil
        var chunk = chunk
        buffer.writeBuffer(&chunk)
        return buffer
    }
}

/// The lines of one SSE event, whichever of CRLF, LF or CR ends each.
struct SSELines: Sequence, IteratorProtocol {
    private let event: UnsafeRawBufferPointer
    private var start = 0

    init(_ event: UnsafeRawBufferPointer) {
        self.event = event
    }

    mutating func next() -> Range<Int>? {
        guard self.start < self.event.count else { return nil }
        let end = LineBreaks.first(in: self.event, from: self.start)
        let line = self.start..<end
        self.start = end + (end + 1 < self.event.count && self.event[end] == 0x0D && self.event[end + 1] == 0x0A ? 2 : 1)
        return line
    }

    /// The value of a `data:` line (its one optional leading space dropped), or nil for any other line.
    static func dataValue(of line: Range<Int>, in event: UnsafeRawBufferPointer) -> Range<Int>? {
        guard line.count >= 5, UnsafeRawBufferPointer(rebasing: event[line.lowerBound..<line.lowerBound + 5]).elementsEqual("data:".utf8) else { return nil }
        var valueStart = line.lowerBound + 5
        if valueStart < line.upperBound && event[valueStart] == 0x20 { valueStart += 1 }
        return valueStart..<line.upperBound
    }
}

/// Where lines end: the first CR or LF, found eight bytes at a time (the lines of a stream event are
/// hundreds of bytes of JSON between two line breaks).
enum LineBreaks {
    /// The index of the first CR or LF at or after `from`, or `bytes.count` when there is none.
    static func first(in bytes: UnsafeRawBufferPointer, from: Int) -> Int {
        var index = from
        let count = bytes.count
        if let base = bytes.baseAddress {
            let ones: UInt64 = 0x0101_0101_0101_0101
            let highs: UInt64 = 0x8080_8080_8080_8080
            while index + 8 <= count {
                let word = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: index, as: UInt64.self))
                let lineFeeds = word ^ 0x0A0A_0A0A_0A0A_0A0A
                let carriageReturns = word ^ 0x0D0D_0D0D_0D0D_0D0D
                // The "has a zero byte" test, whose lowest flagged byte is exact (a borrow only
                // misflags bytes after a true match; the word is read with its first byte lowest).
                let found = (((lineFeeds &- ones) & ~lineFeeds) | ((carriageReturns &- ones) & ~carriageReturns)) & highs
                if found != 0 { return index + found.trailingZeroBitCount / 8 }
                index += 8
            }
        }
        while index < count && bytes[index] != 0x0A && bytes[index] != 0x0D { index += 1 }
        return index
    }
}
