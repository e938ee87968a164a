public import NIOCore

/// Reads RESP values from a connection's bytes as they arrive.
///
/// A server is trusted with our data, not with our process: every length and count it sends is
/// bounded before anything is allocated for it, numbers are parsed without overflow, and nesting is
/// capped, so a broken or hostile server ends its connection with an error, never the gateway.
public struct RESPDecoder: Sendable {
    /// What one reply may hold.
    public struct Limits: Sendable {
        /// The longest bulk string: a cached answer is the largest thing we store.
        public var maxBulkBytes: Int
        /// The most elements of one array, set, map or push.
        public var maxElements: Int
        /// The deepest nesting of aggregates.
        public var maxDepth: Int
        /// The longest line (a simple string or error, a number).
        public var maxLineBytes: Int

        public init(maxBulkBytes: Int = 64 << 20, maxElements: Int = 1 << 20, maxDepth: Int = 32, maxLineBytes: Int = 64 << 10) {
            self.maxBulkBytes = maxBulkBytes
            self.maxElements = maxElements
            self.maxDepth = maxDepth
            self.maxLineBytes = maxLineBytes
        }
    }

    public let limits: Limits

    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// The next whole value at the start of `buffer`, which it is then read past; nil (nothing read)
    /// until the value has arrived whole.
    /// - Throws: `RESPProtocolError` for bytes that are not RESP or break a limit: the connection
    ///   cannot be read further.
    public func next(from buffer: inout ByteBuffer) throws(RESPProtocolError) -> RESPValue? {
        let whole = buffer
        let parsed: Result<(value: RESPValue, end: Int)?, RESPProtocolError> = buffer.withUnsafeReadableBytes { bytes in
            var reader = Reader(bytes: bytes, buffer: whole, limits: self.limits)
            do throws(RESPProtocolError) {
                guard let value = try reader.value(depth: 0) else { return .success(nil) }
                return .success((value, reader.position))
            } catch {
                return .failure(error)
            }
        }
        guard let (value, end) = try parsed.get() else { return nil }
        buffer.moveReaderIndex(forwardBy: end)
        return value
    }

    private struct Reader {
        let bytes: UnsafeRawBufferPointer
        let buffer: ByteBuffer
        let limits: Limits
        var position = 0

        /// A value, or nil when its bytes have not all arrived.
        mutating func value(depth: Int) throws(RESPProtocolError) -> RESPValue? {
            guard depth <= self.limits.maxDepth else { throw .init("nesting deeper than \(self.limits.maxDepth)") }
            guard self.position < self.bytes.count else { return nil }
            let type = self.bytes[self.position]
            self.position += 1
            switch type {
            case UInt8(ascii: "+"):
                return try self.line().map { .simpleString($0) }
            case UInt8(ascii: "-"):
                return try self.line().map { .error(RedisServerError($0)) }
            case UInt8(ascii: ":"):
                return try self.line().map { text throws(RESPProtocolError) in .integer(try Self.integer(text)) }
            case UInt8(ascii: "("):
                guard let text = try self.line() else { return nil }
                guard Self.isBigNumber(text) else { throw .init("a big number that is not one: \(text.prefix(40))") }
                return .bigNumber(text)
            case UInt8(ascii: ","):
                guard let text = try self.line() else { return nil }
                return .double(try Self.double(text))
            case UInt8(ascii: "#"):
                guard let text = try self.line() else { return nil }
                switch text {
                case "t": return .boolean(true)
                case "f": return .boolean(false)
                default: throw .init("a boolean that is neither t nor f")
                }
            case UInt8(ascii: "_"):
                guard let text = try self.line() else { return nil }
                guard text.isEmpty else { throw .init("a null with a payload") }
                return .null
            case UInt8(ascii: "$"):
                switch try self.blob(nullable: true) {
                case nil: return nil
                case .null: return .null
                case .bytes(let bytes): return .bulkString(bytes)
                }
            case UInt8(ascii: "!"):
                guard case .bytes(let bytes) = try self.blob(nullable: false) else { return nil }
                return .error(RedisServerError(String(buffer: bytes)))
            case UInt8(ascii: "="):
                // A verbatim string: `txt:` or `mkd:` in front of the text.
                guard case .bytes(let text) = try self.blob(nullable: false) else { return nil }
                guard text.readableBytes >= 4, text.getInteger(at: text.readerIndex + 3, as: UInt8.self) == UInt8(ascii: ":") else {
                    throw .init("a verbatim string without its format")
                }
                return .bulkString(text.getSlice(at: text.readerIndex + 4, length: text.readableBytes - 4) ?? ByteBuffer())
            case UInt8(ascii: "*"):
                switch try self.length(nullable: true) {
                case nil: return nil
                case .null: return .null
                case .count(let count): return try self.elements(count, depth: depth).map { .array($0) }
                }
            case UInt8(ascii: "~"):
                guard case .count(let count) = try self.length(nullable: false) else { return nil }
                return try self.elements(count, depth: depth).map { .set($0) }
            case UInt8(ascii: ">"):
                guard case .count(let count) = try self.length(nullable: false) else { return nil }
                return try self.elements(count, depth: depth).map { .push($0) }
            case UInt8(ascii: "%"):
                guard case .count(let count) = try self.length(nullable: false) else { return nil }
                return try self.pairs(count, depth: depth).map { .map($0) }
            case UInt8(ascii: "|"):
                // Attributes describe the reply that follows them; we have no use for them.
                guard case .count(let count) = try self.length(nullable: false), try self.pairs(count, depth: depth) != nil else { return nil }
                return try self.value(depth: depth)
            default:
                throw .init("an unknown type byte 0x\(String(type, radix: 16))")
            }
        }

        /// The rest of a line, without its CRLF; nil until the CRLF has arrived.
        private mutating func line() throws(RESPProtocolError) -> String? {
            let start = self.position
            let limit = min(self.bytes.count, start + self.limits.maxLineBytes + 2)
            var index = start
            while index + 1 < limit {
                if self.bytes[index] == 0x0D {
                    guard self.bytes[index + 1] == 0x0A else { throw .init("a CR without LF") }
                    self.position = index + 2
                    return String(decoding: UnsafeRawBufferPointer(rebasing: self.bytes[start..<index]), as: UTF8.self)
                }
                index += 1
            }
            if limit - start >= self.limits.maxLineBytes + 2 { throw .init("a line longer than \(self.limits.maxLineBytes) bytes") }
            return nil
        }

        private enum Length {
            /// RESP2's `-1`: a null bulk string or array.
            case null
            case count(Int)
        }

        private enum Blob {
            case null
            /// A slice of what arrived, not a copy.
            case bytes(ByteBuffer)
        }

        /// A length or count line, nil until it has arrived; `-1` is a null where `nullable`.
        private mutating func length(nullable: Bool) throws(RESPProtocolError) -> Length? {
            guard let text = try self.line() else { return nil }
            let number = try Self.integer(text)
            if number == -1 && nullable { return .null }
            guard number >= 0 else { throw .init("a negative length \(number)") }
            return .count(Int(number))
        }

        /// A blob, nil until its bytes have all arrived.
        private mutating func blob(nullable: Bool) throws(RESPProtocolError) -> Blob? {
            switch try self.length(nullable: nullable) {
            case nil: return nil
            case .null: return .null
            case .count(let length):
                guard length <= self.limits.maxBulkBytes else { throw .init("a bulk string of \(length) bytes, over \(self.limits.maxBulkBytes)") }
                guard self.bytes.count - self.position >= length + 2 else { return nil }
                guard self.bytes[self.position + length] == 0x0D, self.bytes[self.position + length + 1] == 0x0A else {
                    throw .init("a bulk string not followed by CRLF")
                }
                let slice = self.buffer.getSlice(at: self.buffer.readerIndex + self.position, length: length)
                self.position += length + 2
                return .bytes(slice ?? ByteBuffer())
            }
        }

        private mutating func elements(_ count: Int, depth: Int) throws(RESPProtocolError) -> [RESPValue]? {
            guard count <= self.limits.maxElements else { throw .init("an aggregate of \(count) elements, over \(self.limits.maxElements)") }
            var values: [RESPValue] = []
            values.reserveCapacity(min(count, 64))
            for _ in 0..<count {
                guard let value = try self.value(depth: depth + 1) else { return nil }
                values.append(value)
            }
            return values
        }

        private mutating func pairs(_ count: Int, depth: Int) throws(RESPProtocolError) -> [RESPPair]? {
            guard count <= self.limits.maxElements / 2 else { throw .init("a map of \(count) pairs, over \(self.limits.maxElements / 2)") }
            var pairs: [RESPPair] = []
            pairs.reserveCapacity(min(count, 64))
            for _ in 0..<count {
                guard let key = try self.value(depth: depth + 1), let value = try self.value(depth: depth + 1) else { return nil }
                pairs.append(RESPPair(key: key, value: value))
            }
            return pairs
        }

        /// A signed 64-bit decimal, refused (never trapped on) when it does not fit.
        static func integer(_ text: String) throws(RESPProtocolError) -> Int64 {
            guard let value = Int64(text) else { throw .init("not a 64-bit integer: \(text.prefix(40))") }
            return value
        }

        static func double(_ text: String) throws(RESPProtocolError) -> Double {
            switch text {
            case "inf", "+inf": return .infinity
            case "-inf": return -.infinity
            case "nan", "-nan": return .nan
            default:
                guard let value = Double(text), value.isFinite else { throw .init("not a double: \(text.prefix(40))") }
                return value
            }
        }

        static func isBigNumber(_ text: String) -> Bool {
            let digits = text.utf8.first == UInt8(ascii: "-") || text.utf8.first == UInt8(ascii: "+") ? text.utf8.dropFirst() : text.utf8[...]
            return !digits.isEmpty && digits.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
        }
    }
}

/// Bytes from the server that are not RESP, or break one of the decoder's limits.
public struct RESPProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
    public let detail: String

    init(_ detail: String) {
        self.detail = detail
    }

    public var description: String { "the Redis server sent bytes that are not RESP3: \(self.detail)" }
}
