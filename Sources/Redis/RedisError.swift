/// Why a command got no reply from Redis: the server could not be reached or spoke out of turn.
/// (A reply that is an error is a `RedisServerError`, thrown as it came.)
public struct RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// No connection could be made (refused, unreachable, the handshake or `AUTH` failed).
        case connect
        /// The reply did not come within the command timeout; the connection was closed.
        case timeout
        /// The connection closed before the reply came.
        case closed
        /// The server sent bytes that are not RESP3, or a reply of the wrong shape.
        case protocolViolation = "protocol"
        /// A recent failure to connect: the client waits out its backoff instead of trying again at once.
        case unavailable
    }

    public let kind: Kind
    public let detail: String

    public init(_ kind: Kind, _ detail: String) {
        self.kind = kind
        self.detail = detail
    }

    public var description: String { "redis \(self.kind.rawValue): \(self.detail)" }
}
