public import NIOCore

/// A command as Redis reads it: an array of bulk strings, its name first.
public struct RedisCommand: Sendable {
    public let name: String
    public private(set) var arguments: [RedisArgument]

    public init(_ name: String, _ arguments: [RedisArgument] = []) {
        self.name = name
        self.arguments = arguments
    }

    /// Its bytes on the wire, appended to `buffer`.
    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeStaticString("*")
        Self.decimal(self.arguments.count + 1, into: &buffer)
        buffer.writeStaticString("\r\n")
        Self.bulk(self.name, into: &buffer)
        for argument in self.arguments {
            switch argument.value {
            case .text(let text): Self.bulk(text, into: &buffer)
            case .bytes(let bytes):
                buffer.writeStaticString("$")
                Self.decimal(bytes.readableBytes, into: &buffer)
                buffer.writeStaticString("\r\n")
                buffer.writeImmutableBuffer(bytes)
                buffer.writeStaticString("\r\n")
            }
        }
    }

    private static func bulk(_ text: String, into buffer: inout ByteBuffer) {
        buffer.writeStaticString("$")
        Self.decimal(text.utf8.count, into: &buffer)
        buffer.writeStaticString("\r\n")
        buffer.writeString(text)
        buffer.writeStaticString("\r\n")
    }

    /// A length in decimal digits, without making a string of it (every argument has one).
    private static func decimal(_ value: Int, into buffer: inout ByteBuffer) {
        let value = max(0, value)
        var divisor = 1
        while divisor <= value / 10 { divisor *= 10 }
        var rest = value
        while divisor > 0 {
            buffer.writeInteger(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: rest / divisor))
            rest %= divisor
            divisor /= 10
        }
    }
}

/// One argument of a command: text, a number or bytes, sent as a bulk string (binary-safe).
public struct RedisArgument: Sendable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    enum Value: Sendable {
        /// Written as its UTF-8 when the command is encoded: no buffer of its own.
        case text(String)
        case bytes(ByteBuffer)
    }

    let value: Value

    public init(_ bytes: ByteBuffer) {
        self.value = .bytes(bytes)
    }

    public init(_ text: String) {
        self.value = .text(text)
    }

    public init(_ number: Int) {
        self.value = .text(String(number))
    }

    /// A number in Swift's shortest text that reads back exactly (Lua's `tonumber` included).
    public init(_ number: Double) {
        self.value = .text(number.isFinite ? "\(number)" : "0")
    }

    public init(stringLiteral text: String) {
        self.init(text)
    }

    public init(integerLiteral number: Int) {
        self.init(number)
    }
}
