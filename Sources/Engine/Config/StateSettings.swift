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
    public struct URLProblem: Error, Equatable {
        public let message: String
    }

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
        var user: String?
        var password: Secret?
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            let colon = credentials.firstIndex(of: ":")
            let name = Self.percentDecoded(colon.map { credentials[..<$0] } ?? credentials)
            user = name.isEmpty ? nil : name
            if let colon { password = Secret(Self.percentDecoded(credentials[credentials.index(after: colon)...])) }
        }
        var host = rest
        var port = 6379
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { throw URLProblem(message: "an IPv6 address needs its closing ']'") }
            let after = host[host.index(after: close)...]
            host = host[host.index(after: host.startIndex)..<close]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let number = Int(after.dropFirst()), (1...65_535).contains(number) else { throw URLProblem(message: "the port must be 1-65535") }
                port = number
            }
        } else if let colon = host.lastIndex(of: ":") {
            guard let number = Int(host[host.index(after: colon)...]), (1...65_535).contains(number) else { throw URLProblem(message: "the port must be 1-65535") }
            port = number
            host = host[..<colon]
        }
        guard !host.isEmpty else { throw URLProblem(message: "names no host") }
        return RedisStateSettings(host: String(host), port: port, user: user, password: password, database: database, tls: tls)
    }

    /// `%XX` escapes decoded (a password may hold `@`, `:` or `/`); a malformed escape is kept as it is.
    private static func percentDecoded(_ text: Substring) -> String {
        var bytes: [UInt8] = []
        var index = text.utf8.startIndex
        let utf8 = text.utf8
        while index < utf8.endIndex {
            let byte = utf8[index]
            if byte == UInt8(ascii: "%"), let high = utf8.index(index, offsetBy: 1, limitedBy: utf8.endIndex), high < utf8.endIndex,
                let low = utf8.index(index, offsetBy: 2, limitedBy: utf8.endIndex), low < utf8.endIndex,
                let value = UInt8(String(decoding: [utf8[high], utf8[low]], as: UTF8.self), radix: 16)
            {
                bytes.append(value)
                index = utf8.index(after: low)
                continue
            }
            bytes.append(byte)
            index = utf8.index(after: index)
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
