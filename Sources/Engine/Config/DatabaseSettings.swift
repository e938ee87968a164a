/// `database:` — where keys, the ledger and the audit log live: the SQLite file in the state dir (the
/// default, for one process), or one PostgreSQL that every replica of a fleet shares. Written as the
/// URL alone, or as a mapping with the URL and the ledger's retention.
public struct DatabaseSettings: Sendable, Equatable {
    public enum Location: Sendable, Equatable {
        /// `STATE_DIR/switchyard.sqlite`.
        case sqlite
        case postgres(PostgresSettings)
    }

    public var location = Location.sqlite
    /// Ledger rows older than this many days are rolled up into daily totals and removed; nil keeps
    /// every row.
    public var retentionDays: Int?

    public init(location: Location = .sqlite, retentionDays: Int? = nil) {
        self.location = location
        self.retentionDays = retentionDays
    }

    /// Whether every replica reads and writes the same database.
    public var isShared: Bool {
        if case .postgres = self.location { return true }
        return false
    }

    /// The longest retention accepted: about 30 years, so a cut-off in seconds never overflows.
    public static let longestRetentionDays = 10_000
}

/// A PostgreSQL server, from `postgres://user:password@host:port/database?sslmode=…`.
public struct PostgresSettings: Sendable, Equatable {
    /// libpq's `sslmode` values that mean something without a client certificate.
    public enum TLSMode: String, Sendable, CaseIterable {
        /// Plain TCP.
        case disable
        /// TLS when the server offers it, the certificate unchecked.
        case prefer
        /// TLS always, the certificate unchecked.
        case require
        /// TLS always, the certificate checked against the trusted roots.
        case verifyCA = "verify-ca"
        /// TLS always, the certificate and the host name checked (the default: what a hosted database needs).
        case verifyFull = "verify-full"
    }

    public var host: String
    public var port: Int
    public var user: String
    public var password: Secret?
    public var database: String
    public var tlsMode: TLSMode
    /// `sslrootcert=`: a PEM file of the roots to trust instead of the system's.
    public var rootCertificate: String?

    /// The URL as it appears in logs: the password never.
    public var redacted: String {
        let host = self.host.contains(":") ? "[\(self.host)]" : self.host
        return "postgres://\(self.user)\(self.password == nil ? "" : ":***")@\(host):\(self.port)/\(self.database)?sslmode=\(self.tlsMode.rawValue)"
    }

    /// What is wrong with a `database:` URL.
    public typealias URLProblem = ConnectionURLProblem

    /// Parses `postgres://` or `postgresql://` `[user[:password]@]host[:port][/database][?sslmode=…&sslrootcert=…]`.
    /// The user defaults to `postgres`, the port to 5432, the database to the user's name, `sslmode` to
    /// `verify-full` (so a URL without it never sends a password in the clear to a remote host; a
    /// loopback host defaults to `disable`).
    /// - Throws: what is wrong with the URL.
    public static func parse(_ url: String) throws(URLProblem) -> PostgresSettings {
        var rest: Substring
        if url.hasPrefix("postgres://") {
            rest = url.dropFirst("postgres://".count)
        } else if url.hasPrefix("postgresql://") {
            rest = url.dropFirst("postgresql://".count)
        } else {
            throw URLProblem(message: "must be 'sqlite' or a postgres:// URL")
        }
        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        var database: String?
        if let slash = rest.firstIndex(of: "/") {
            let path = URLText.percentDecoded(rest[rest.index(after: slash)...])
            rest = rest[..<slash]
            if !path.isEmpty { database = path }
        }
        let (named, password, authority) = URLText.credentials(rest)
        let user = named ?? "postgres"
        let (host, port) = try URLText.hostAndPort(authority, defaultPort: 5432)
        var tlsMode: TLSMode = URLText.isLoopback(host) ? .disable : .verifyFull
        var rootCertificate: String?
        for parameter in query.split(separator: "&") where !parameter.isEmpty {
            let parts = parameter.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let value = parts.count == 2 ? URLText.percentDecoded(parts[1]) : ""
            switch parts[0] {
            case "sslmode":
                guard let mode = TLSMode(rawValue: value) else {
                    throw URLProblem(message: "sslmode must be one of \(TLSMode.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                tlsMode = mode
            case "sslrootcert":
                guard !value.isEmpty else { throw URLProblem(message: "sslrootcert names no file") }
                rootCertificate = value
            default:
                throw URLProblem(message: "'\(parts[0].prefix(40))' is not a parameter Switchyard reads (sslmode, sslrootcert)")
            }
        }
        return PostgresSettings(
            host: host, port: port, user: user, password: password, database: database ?? user, tlsMode: tlsMode, rootCertificate: rootCertificate
        )
    }
}
