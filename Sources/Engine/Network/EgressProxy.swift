import Foundation

/// The egress proxy the environment names, read as curl and most HTTP clients read it:
/// `HTTPS_PROXY` for `https` upstreams, `HTTP_PROXY` for plain ones (the lowercase names win when
/// both are set), and `NO_PROXY` for the hosts reached directly. Loopback (`localhost`, 127.0.0.0/8,
/// `::1`) is always reached directly, as Go's clients do: a local vLLM or the in-process simulator
/// never goes through a company's proxy.
///
/// `NO_PROXY` is a comma-separated list: `*` (nothing is proxied), a host name that also covers its
/// subdomains (`example.com`, `.example.com`), or an address; a `:port` on an entry is ignored.
public struct EgressProxy: Sendable, Equatable {
    public struct Server: Sendable, Equatable, CustomStringConvertible {
        public var host: String
        public var port: Int
        /// `user:password` from the proxy URL, sent as basic authorization.
        public var credentials: (user: String, password: String)?

        public init(host: String, port: Int, credentials: (user: String, password: String)? = nil) {
            self.host = host
            self.port = port
            self.credentials = credentials
        }

        public static func == (lhs: Server, rhs: Server) -> Bool {
            lhs.host == rhs.host && lhs.port == rhs.port && lhs.credentials?.user == rhs.credentials?.user
                && lhs.credentials?.password == rhs.credentials?.password
        }

        /// Without the credentials: what logs may show.
        public var description: String { "\(self.host):\(self.port)" }
    }

    public var https: Server?
    public var http: Server?
    /// Lowercased `NO_PROXY` entries, without ports or leading dots.
    public var direct: [String]
    public var everythingDirect: Bool

    /// No proxy at all.
    public static let none = EgressProxy(https: nil, http: nil, direct: [], everythingDirect: false)

    init(https: Server?, http: Server?, direct: [String], everythingDirect: Bool) {
        self.https = https
        self.http = http
        self.direct = direct
        self.everythingDirect = everythingDirect
    }

    /// The proxy `environment` names.
    /// - Throws: a message naming the variable whose value is not a proxy URL.
    public init(environment: [String: String]) throws(ConfigError) {
        func value(_ name: String) -> (name: String, value: String)? {
            for key in [name.lowercased(), name] {
                if let text = environment[key]?.trimmingCharacters(in: .whitespaces), !text.isEmpty { return (key, text) }
            }
            return nil
        }
        self.https = try value("HTTPS_PROXY").map(Self.server)
        self.http = try value("HTTP_PROXY").map(Self.server)
        let entries = (value("NO_PROXY")?.value ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty }
        self.everythingDirect = entries.contains("*")
        self.direct = entries.map { entry in
            var host = Substring(entry)
            if host.hasPrefix("["), let close = host.firstIndex(of: "]") {
                host = host[host.index(after: host.startIndex)..<close]
            } else if host.filter({ $0 == ":" }).count == 1, let colon = host.firstIndex(of: ":") {
                host = host[..<colon]
            }
            while host.hasPrefix(".") { host = host.dropFirst() }
            return String(host)
        }
    }

    private static func server(_ variable: (name: String, value: String)) throws(ConfigError) -> Server {
        func refuse(_ why: String) -> ConfigError {
            ConfigError(
                source: "environment",
                issues: [ConfigIssue(line: nil, column: nil, path: variable.name, message: "'\(Self.redacted(variable.value))' is not a proxy URL: \(why)")]
            )
        }
        var rest = Substring(variable.value)
        if let scheme = rest.range(of: "://") {
            let name = rest[..<scheme.lowerBound].lowercased()
            guard name == "http" else { throw refuse("only http:// proxies are supported (a CONNECT tunnel carries https)") }
            rest = rest[scheme.upperBound...]
        }
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        var credentials: (String, String)?
        if let at = rest.lastIndex(of: "@") {
            let userInfo = rest[..<at]
            let colon = userInfo.firstIndex(of: ":") ?? userInfo.endIndex
            credentials = (
                Self.decoded(userInfo[..<colon]), colon < userInfo.endIndex ? Self.decoded(userInfo[userInfo.index(after: colon)...]) : ""
            )
            rest = rest[rest.index(after: at)...]
        }
        var host = rest
        var port = 80
        if let colon = rest.lastIndex(of: ":"), !rest[colon...].contains("]") {
            guard let parsed = Int(rest[rest.index(after: colon)...]), (1...65_535).contains(parsed) else { throw refuse("the port must be 1-65535") }
            port = parsed
            host = rest[..<colon]
        }
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        guard !host.isEmpty else { throw refuse("no host") }
        return Server(host: String(host), port: port, credentials: credentials)
    }

    /// The proxy for an upstream at `host` over `https` (or plain HTTP); nil to connect directly.
    public func server(forHost host: String, https: Bool) -> Server? {
        guard let server = https ? self.https : self.http else { return nil }
        var host = host.lowercased()
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if self.everythingDirect || URLText.isLoopback(host) { return nil }
        for entry in self.direct where host == entry || host.hasSuffix("." + entry) {
            return nil
        }
        return server
    }

    private static func decoded(_ text: Substring) -> String {
        String(text).removingPercentEncoding ?? String(text)
    }

    /// A proxy URL without its password.
    private static func redacted(_ url: String) -> String {
        guard let at = url.lastIndex(of: "@") else { return url }
        let start = url.range(of: "://")?.upperBound ?? url.startIndex
        return url[..<start] + "…" + url[at...]
    }
}
