/// Where a replica keeps the state it shares with the rest of its fleet: `state: local` (this
/// process alone, the default) or `state: redis://[user:password@]host:port[/db]` (`rediss://` for
/// TLS), written as that one line or as a mapping with the URL and its options.
public enum StateSettings: Sendable, Equatable {
    case local
    case redis(RedisStateSettings)
}

public struct RedisStateSettings: Sendable, Equatable {
    /// What admission does when Redis does not answer in time.
    public enum OnError: String, Sendable, CaseIterable {
        /// Refuse with 503: no limit or budget is passed unseen (the default).
        case deny
        /// Admit, unlimited while Redis is away.
        case allow
    }

    public var host: String
    public var port: Int
    public var user: String?
    public var password: Secret?
    public var database: Int
    public var tls: Bool
    public var onError = OnError.deny
    /// How long admission waits for Redis (the command timeout).
    public var timeout = Duration.milliseconds(250)
    /// How long a request's concurrency and money lease outlives a replica that died without settling it.
    public var leaseTTL = Duration.seconds(30)

    /// The URL as it appears in logs: the password never.
    public var redacted: String {
        let credentials = self.user.map { "\($0)\(self.password == nil ? "" : ":***")@" } ?? (self.password == nil ? "" : ":***@")
        let host = self.host.contains(":") ? "[\(self.host)]" : self.host
        return "\(self.tls ? "rediss" : "redis")://\(credentials)\(host):\(self.port)/\(self.database)"
    }

    /// What is wrong with a `state:` URL.
    public typealias URLProblem = ConnectionURLProblem

    /// Parses `redis://[user:password@]host[:port][/db]` or `rediss://…`.
    /// - Throws: what is wrong with the URL.
    public static func parse(_ url: String) throws(URLProblem) -> RedisStateSettings {
        let tls: Bool
        var rest: Substring
        if url.hasPrefix("redis://") {
            (tls, rest) = (false, url.dropFirst("redis://".count))
        } else if url.hasPrefix("rediss://") {
            (tls, rest) = (true, url.dropFirst("rediss://".count))
        } else {
            throw URLProblem(message: "must be 'local' or a redis:// or rediss:// URL")
        }
        var database = 0
        if let slash = rest.firstIndex(of: "/") {
            let path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
            if !path.isEmpty {
                guard let number = Int(path), (0...1_000_000).contains(number) else { throw URLProblem(message: "the database after '/' must be a number (0, 1, …)") }
                database = number
            }
        }
        let (user, password, authority) = URLText.credentials(rest)
        let (host, port) = try URLText.hostAndPort(authority, defaultPort: 6379)
        return RedisStateSettings(host: host, port: port, user: user, password: password, database: database, tls: tls)
    }
}
