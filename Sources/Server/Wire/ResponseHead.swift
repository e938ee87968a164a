import NIOCore
import NIOHTTP1

/// An upstream's answer that is not HTTP/1.1 as RFC 9112 frames it.
struct UpstreamFramingError: Error, CustomStringConvertible {
    let description: String
}

/// The head of an upstream's HTTP/1.1 answer, framed from the bytes by the fast lane's upstream
/// connections: its status, how its body is delimited (RFC 9112 §6.3) and whether the connection can
/// carry another request. The fields are turned into `HTTPHeaders` only when asked for (a failed
/// answer's `retry-after`); a successful one needs none of them.
struct ResponseHead {
    enum Body: Equatable {
        case none
        case length(Int)
        case chunked
        /// Until the upstream closes the connection.
        case untilClose
    }

    /// Heads longer than this are refused.
    static let maxLength = 64 * 1024

    let status: Int
    let body: Body
    let keepAlive: Bool
    private let bytes: ByteBuffer
    private let fields: [(name: Range<Int>, value: Range<Int>)]

    /// Frames the head at the start of `buffer`.
    /// - Returns: the head and its length in bytes, or nil when its blank line has not arrived.
    /// - Throws: when the bytes are not an HTTP/1.x status line and fields.
    static func parse(_ buffer: ByteBuffer, searchedUpTo: Int = 0) throws(UpstreamFramingError) -> (head: ResponseHead, length: Int)? {
        guard let length = HTTPToken.headLength(in: buffer, searchedUpTo: searchedUpTo) else {
            if buffer.readableBytes > Self.maxLength { throw UpstreamFramingError(description: "a head longer than \(Self.maxLength) bytes") }
            return nil
        }
        guard length <= Self.maxLength, let bytes = buffer.getSlice(at: buffer.readerIndex, length: length) else {
            throw UpstreamFramingError(description: "a head longer than \(Self.maxLength) bytes")
        }
        let result: Result<ResponseHead, UpstreamFramingError> = bytes.withUnsafeReadableBytes { raw in
            do throws(UpstreamFramingError) {
                return .success(try Self.frame(raw, bytes: bytes))
            } catch {
                return .failure(error)
            }
        }
        return (try result.get(), length)
    }

    private init(status: Int, body: Body, keepAlive: Bool, bytes: ByteBuffer, fields: [(name: Range<Int>, value: Range<Int>)]) {
        self.status = status
        self.body = body
        self.keepAlive = keepAlive
        self.bytes = bytes
        self.fields = fields
    }

    private static func frame(_ raw: UnsafeRawBufferPointer, bytes: ByteBuffer) throws(UpstreamFramingError) -> ResponseHead {
        var lines = HeadLines(raw)
        // `HTTP/1.1 200 OK`, the reason phrase optional.
        guard let statusLine = lines.next(), statusLine.count >= 12, HTTPToken.equals(raw, statusLine.lowerBound..<statusLine.lowerBound + 7, "HTTP/1."),
            raw[statusLine.lowerBound + 8] == 0x20, statusLine.count == 12 || raw[statusLine.lowerBound + 12] == 0x20,
            let status = HTTPToken.decimal(raw, statusLine.lowerBound + 9..<statusLine.lowerBound + 12)
        else { throw UpstreamFramingError(description: "no HTTP/1.x status line") }
        let minor = raw[statusLine.lowerBound + 7]
        var fields: [(name: Range<Int>, value: Range<Int>)] = []
        fields.reserveCapacity(8)
        var contentLength: Int?
        var chunked: Bool?
        var connectionClose = false
        var connectionKeepAlive = false
        while let line = lines.next() {
            guard let (name, value) = HTTPToken.field(in: raw, line: line) else { throw UpstreamFramingError(description: "a malformed header line") }
            fields.append((name, value))
            switch name.count {
            case 14 where HTTPToken.equalsIgnoringCase(raw, name, "content-length"):
                guard let length = HTTPToken.decimal(raw, value), contentLength == nil || contentLength == length else {
                    throw UpstreamFramingError(description: "an invalid Content-Length")
                }
                contentLength = length
            case 17 where HTTPToken.equalsIgnoringCase(raw, name, "transfer-encoding"):
                // Only a final `chunked` frames the body; any other coding runs until the connection closes.
                chunked = HTTPToken.lastListItem(raw, value, is: "chunked")
            case 10 where HTTPToken.equalsIgnoringCase(raw, name, "connection"):
                connectionClose = connectionClose || HTTPToken.listContains(raw, value, "close")
                connectionKeepAlive = connectionKeepAlive || HTTPToken.listContains(raw, value, "keep-alive")
            default:
                break
            }
        }
        guard lines.isComplete else { throw UpstreamFramingError(description: "a header line not ended by CRLF") }
        var keepAlive = minor == UInt8(ascii: "1") ? !connectionClose : connectionKeepAlive && !connectionClose
        let body: Body
        if status < 200 || status == 204 || status == 304 {
            body = .none
        } else if let chunked {
            body = chunked ? .chunked : .untilClose
            // Both framings at once: the connection cannot be trusted with another request.
            if contentLength != nil || !chunked { keepAlive = false }
        } else if let contentLength {
            body = contentLength == 0 ? .none : .length(contentLength)
        } else {
            body = .untilClose
            keepAlive = false
        }
        return ResponseHead(status: status, body: body, keepAlive: keepAlive, bytes: bytes, fields: fields)
    }

    /// The fields of a failed answer, which are read (`retry-after`); a successful one's are not, and
    /// are left out.
    var failureHeaders: HTTPHeaders {
        (200..<300).contains(self.status) ? [:] : self.headers
    }

    /// The fields as AsyncHTTPClient would have given them.
    var headers: HTTPHeaders {
        self.bytes.withUnsafeReadableBytes { raw in
            var headers = HTTPHeaders()
            for field in self.fields {
                headers.add(
                    name: String(decoding: UnsafeRawBufferPointer(rebasing: raw[field.name]), as: UTF8.self),
                    value: String(decoding: UnsafeRawBufferPointer(rebasing: raw[field.value]), as: UTF8.self)
                )
            }
            return headers
        }
    }
}

extension HTTPToken {
    /// Whether the last item of the comma-separated list in `range` is `token` (lower case).
    static func lastListItem(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, is token: StaticString) -> Bool {
        var start = range.upperBound
        while start > range.lowerBound, bytes[start - 1] != UInt8(ascii: ",") { start -= 1 }
        var (from, to) = (start, range.upperBound)
        while from < to, bytes[from] == 0x20 || bytes[from] == 0x09 { from += 1 }
        while to > from, bytes[to - 1] == 0x20 || bytes[to - 1] == 0x09 { to -= 1 }
        return Self.equalsIgnoringCase(bytes, from..<to, token)
    }
}

/// The body of a chunked answer (RFC 9112 §7.1), decoded as it arrives: the data of each chunk is
/// handed on as a slice of what was read, never copied; chunk extensions and trailers are skipped.
struct ChunkedBodyDecoder {
    private enum State {
        case size
        case data(remaining: Int)
        case dataEnd
        case trailers
        case done
    }

    /// A chunk-size or trailer line longer than this is refused.
    static let maxLineLength = 4096
    private var state = State.size
    /// Bytes of the line being read already searched for its CRLF: a line arriving in pieces is
    /// searched once, not again from its start on every read.
    private var lineSearched = 0

    var isDone: Bool {
        if case .done = self.state { return true }
        return false
    }

    /// Consumes what it can of `buffer`, handing each piece of chunk data to `emit`; stops at the end
    /// of the body, leaving whatever follows it in `buffer`.
    mutating func decode(_ buffer: inout ByteBuffer, emit: (ByteBuffer) -> Void) throws(UpstreamFramingError) {
        while buffer.readableBytes > 0 {
            switch self.state {
            case .size:
                guard let line = try self.line(in: &buffer) else { return }
                let size = try line.withUnsafeReadableBytes { bytes throws(UpstreamFramingError) in try Self.chunkSize(bytes) }
                self.state = size == 0 ? .trailers : .data(remaining: size)
            case .data(let remaining):
                let taken = min(remaining, buffer.readableBytes)
                if let slice = buffer.readSlice(length: taken) { emit(slice) }
                self.state = remaining == taken ? .dataEnd : .data(remaining: remaining - taken)
            case .dataEnd:
                guard buffer.readableBytes >= 2 else { return }
                guard buffer.readInteger(as: UInt16.self) == 0x0D0A else { throw UpstreamFramingError(description: "chunk data not followed by CRLF") }
                self.state = .size
            case .trailers:
                guard let line = try self.line(in: &buffer) else { return }
                if line.readableBytes == 0 {
                    self.state = .done
                    return
                }
            case .done:
                return
            }
        }
    }

    /// The next CRLF-ended line (without its CRLF), consumed; nil until it has arrived whole.
    private mutating func line(in buffer: inout ByteBuffer) throws(UpstreamFramingError) -> ByteBuffer? {
        // A CR that ended what was searched may have its LF now: the search resumes at that CR.
        let from = max(0, self.lineSearched - 1)
        let found: Int? = buffer.withUnsafeReadableBytes { bytes in
            guard bytes.count >= 2, from < bytes.count - 1 else { return nil }
            for index in from..<bytes.count - 1 where bytes[index] == 0x0D && bytes[index + 1] == 0x0A { return index }
            return nil
        }
        guard let found, found <= Self.maxLineLength else {
            if found != nil || buffer.readableBytes > Self.maxLineLength {
                throw UpstreamFramingError(description: "a chunk line longer than \(Self.maxLineLength) bytes")
            }
            self.lineSearched = buffer.readableBytes
            return nil
        }
        self.lineSearched = 0
        let line = buffer.readSlice(length: found)
        buffer.moveReaderIndex(forwardBy: 2)
        return line
    }

    /// `1a3f` or `1a3f;name=value`: the size in hex, at most 15 digits.
    private static func chunkSize(_ bytes: UnsafeRawBufferPointer) throws(UpstreamFramingError) -> Int {
        var size = 0
        var digits = 0
        for byte in bytes {
            let value: Int
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = Int(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): value = Int(byte - UInt8(ascii: "a")) + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): value = Int(byte - UInt8(ascii: "A")) + 10
            case UInt8(ascii: ";"), UInt8(ascii: " "), 0x09:
                guard digits > 0 else { throw UpstreamFramingError(description: "a chunk without a size") }
                return size
            default:
                throw UpstreamFramingError(description: "an invalid chunk size")
            }
            digits += 1
            guard digits <= 15 else { throw UpstreamFramingError(description: "a chunk size too large") }
            size = size * 16 + value
        }
        guard digits > 0 else { throw UpstreamFramingError(description: "a chunk without a size") }
        return size
    }
}
