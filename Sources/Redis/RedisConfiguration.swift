import NIOCore
public import NIOSSL

/// Where Redis is and how to talk to it.
public struct RedisConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// The ACL user; `default` when only a password is given.
    public var user: String?
    public var password: String?
    public var database: Int
    /// Set for `rediss://`: the connection is TLS, the server's certificate verified.
    public var tls: TLSConfiguration?
    /// For the connection and its handshake (`HELLO`, `AUTH`, `SELECT`).
    public var connectTimeout: Duration
    /// For a command's reply: past it the connection is closed and the command fails.
    public var commandTimeout: Duration
    /// `CLIENT SETNAME`: which replica a connection is, in `CLIENT LIST`.
    public var clientName: String
    public var decoder: RESPDecoder

    public init(
        host: String, port: Int = 6379, user: String? = nil, password: String? = nil, database: Int = 0, tls: TLSConfiguration? = nil,
        connectTimeout: Duration = .seconds(1), commandTimeout: Duration = .milliseconds(250), clientName: String = "switchyard",
        decoder: RESPDecoder = RESPDecoder()
    ) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
        self.tls = tls
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.clientName = clientName
        self.decoder = decoder
    }
}

extension TimeAmount {
    /// NIO's time amount for a Swift duration, saturating past about 292 years instead of trapping.
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else {
            self = .nanoseconds(seconds < 0 ? .min : .max)
            return
        }
        let (total, carried) = whole.addingReportingOverflow(attoseconds / 1_000_000_000)
        self = .nanoseconds(carried ? (seconds < 0 ? .min : .max) : total)
    }
}
