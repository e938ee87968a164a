/// What is wrong with a server's URL (`state:`, `database:`).
public struct ConnectionURLProblem: Error, Equatable {
    public let message: String
}

/// Pieces of URLs that more than one parser needs.
enum URLText {
    /// `user[:password]@` split off the front of an authority: the user (nil when empty), the
    /// password, and what follows the `@` (the whole authority when there is none).
    static func credentials(_ authority: Substring) -> (user: String?, password: Secret?, rest: Substring) {
        guard let at = authority.lastIndex(of: "@") else { return (nil, nil, authority) }
        let credentials = authority[..<at]
        let colon = credentials.firstIndex(of: ":")
        let name = self.percentDecoded(colon.map { credentials[..<$0] } ?? credentials)
        let password = colon.map { Secret(self.percentDecoded(credentials[credentials.index(after: $0)...])) }
        return (name.isEmpty ? nil : name, password, authority[authority.index(after: at)...])
    }

    /// `host`, `host:port`, `[v6]` or `[v6]:port`.
    static func hostAndPort(_ text: Substring, defaultPort: Int) throws(ConnectionURLProblem) -> (host: String, port: Int) {
        var host = text
        var port = defaultPort
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { throw ConnectionURLProblem(message: "an IPv6 address needs its closing ']'") }
            let after = host[host.index(after: close)...]
            host = host[host.index(after: host.startIndex)..<close]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let number = Int(after.dropFirst()), (1...65_535).contains(number) else {
                    throw ConnectionURLProblem(message: "the port must be 1-65535")
                }
                port = number
            }
        } else if let colon = host.lastIndex(of: ":") {
            guard let number = Int(host[host.index(after: colon)...]), (1...65_535).contains(number) else { throw ConnectionURLProblem(message: "the port must be 1-65535") }
            port = number
            host = host[..<colon]
        }
        guard !host.isEmpty else { throw ConnectionURLProblem(message: "names no host") }
        return (String(host), port)
    }

    /// `%XX` escapes decoded (a password may hold `@`, `:` or `/`); a malformed escape is kept as it is.
    static func percentDecoded(_ text: Substring) -> String {
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

    /// A host name or address that stays on this machine.
    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host.hasSuffix(".localhost") || host == "::1" || host.hasPrefix("127.")
            && host.split(separator: ".").count == 4 && host.split(separator: ".").allSatisfy { UInt8($0) != nil }
    }
}
