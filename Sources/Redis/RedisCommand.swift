public import NIOCore

/// A command as Redis reads it: an array of bulk strings, its name first.
public struct RedisCommand: Sendable {
    public let name: String
    public private(set) var arguments: [ByteBuffer]

    public init(_ name: String, _ arguments: [RedisArgument] = []) {
        self.name = name
        self.arguments = arguments.map(\.bytes)
    }

    /// Its bytes on the wire, appended to `buffer`.
    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeStaticString("*")
        buffer.writeString(String(self.arguments.count + 1))
        buffer.writeStaticString("\r\n")
        Self.bulk(ByteBuffer(string: self.name), into: &buffer)
        for argument in self.arguments { Self.bulk(argument, into: &buffer) }
    }

    private static func bulk(_ bytes: ByteBuffer, into buffer: inout ByteBuffer) {
        buffer.writeStaticString("$")
        buffer.writeString(String(bytes.readableBytes))
        buffer.writeStaticString("\r\n")
        buffer.writeImmutableBuffer(bytes)
        buffer.writeStaticString("\r\n")
    }
}

/// One argument of a command: text, a number or bytes, sent as a bulk string (binary-safe).
public struct RedisArgument: Sendable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    public let bytes: ByteBuffer

    public init(_ bytes: ByteBuffer) {
        self.bytes = bytes
    }

    public init(_ text: String) {
        self.bytes = ByteBuffer(string: text)
    }

    public init(_ number: Int) {
        self.bytes = ByteBuffer(string: String(number))
    }

    /// A number in Swift's shortest text that reads back exactly (Lua's `tonumber` included).
    public init(_ number: Double) {
        self.bytes = ByteBuffer(string: number.isFinite ? "\(number)" : "0")
    }

    public init(stringLiteral text: String) {
        self.init(text)
    }

    public init(integerLiteral number: Int) {
        self.init(number)
    }
}
