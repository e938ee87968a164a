public import NIOCore

/// One value of the Redis serialization protocol, version 3 (RESP2's types included, which a server
/// still sends before `HELLO 3`).
public enum RESPValue: Sendable, Equatable {
    case simpleString(String)
    /// A simple or blob error: its code (`ERR`, `NOSCRIPT`, `WRONGTYPE`…) and message.
    case error(RedisServerError)
    case integer(Int64)
    /// A bulk or verbatim string (a verbatim string's three-letter format dropped).
    case bulkString(ByteBuffer)
    case double(Double)
    case boolean(Bool)
    /// A big number, as its decimal digits.
    case bigNumber(String)
    /// RESP3's null, and RESP2's null bulk string and null array.
    case null
    case array([RESPValue])
    case set([RESPValue])
    case map([RESPPair])
    /// Out-of-band data on the connection (pub/sub messages), not the reply to a command.
    case push([RESPValue])

    /// A string's text: a simple string, a bulk string as UTF-8, a big number's digits.
    public var string: String? {
        switch self {
        case .simpleString(let text), .bigNumber(let text): text
        case .bulkString(let bytes): String(buffer: bytes)
        default: nil
        }
    }

    /// An integer, also from a string of digits (what a Lua script returns as a string).
    public var int: Int64? {
        switch self {
        case .integer(let value): value
        case .simpleString, .bulkString: self.string.flatMap { Int64($0) }
        default: nil
        }
    }

    /// The elements of an array, a set or a push.
    public var elements: [RESPValue]? {
        switch self {
        case .array(let values), .set(let values), .push(let values): values
        default: nil
        }
    }
}

/// A key and its value in a RESP3 map.
public struct RESPPair: Sendable, Equatable {
    public let key: RESPValue
    public let value: RESPValue

    public init(key: RESPValue, value: RESPValue) {
        self.key = key
        self.value = value
    }
}

/// An error reply: the server refused the command (not a failure of the connection).
public struct RedisServerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The first word, by convention the error's kind: `ERR`, `NOSCRIPT`, `WRONGTYPE`, `NOAUTH`…
    public let code: String
    public let message: String

    /// - Parameter text: the error's line, `CODE message`.
    public init(_ text: String) {
        let space = text.firstIndex(of: " ") ?? text.endIndex
        self.code = String(text[..<space])
        self.message = text
    }

    public var description: String { self.message }
}
