import Engine
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL

/// An upstream's address as the fast lane reaches it, parsed once per provider configuration: host,
/// port, TLS, and the chat request's head serialized. A changed configuration makes a new endpoint,
/// so a connection opened for the old one is never used for the new one.
final class UpstreamEndpoint: Sendable {
    let host: String
    let port: Int
    /// Set for an `https` upstream: connections begin with a TLS handshake, its certificate verified.
    let tls: NIOSSLContext?
    /// The egress proxy whose `CONNECT` tunnel carries the connections, for an `https` upstream the
    /// environment sends through one.
    let tunnel: EgressProxy.Server?
    /// The name sent in TLS's server name indication; nil for an address (which SNI cannot carry:
    /// the certificate is then checked against the address).
    let serverName: String?
    /// The base URL's path (`/v1`), which every request path is appended to.
    let pathPrefix: String
    /// The `Host` header.
    let authority: String
    let maxConnections: Int
    let connectTimeout: Duration
    /// `POST …/chat/completions`, `Host` and the provider's own fields (auth, configured headers),
    /// serialized once: a request adds its id, trace context and length (Azure's classic API, whose
    /// path names the deployment, makes its request line per request).
    let chatRequestHead: ByteBuffer
    /// `Host` and the provider's own fields, for a request to another path (a translated request).
    private let fieldLines: ByteBuffer
    /// Azure's classic API: the deployment in the path and this version in the query.
    private let apiVersion: String?
    /// A `traceparent` the provider's config sets, sent when the client sent none.
    let configuredTraceparent: String?

    /// - Parameters:
    ///   - headers: the provider's fields as AsyncHTTPClient sends them.
    ///   - tls: the provider's TLS context, for an `https` base URL.
    ///   - proxy: where the environment sends this upstream's traffic.
    /// - Throws: why the fast lane leaves this upstream to the framework lane: a plain-HTTP upstream
    ///   behind a proxy, credentials or a query in the URL, or configured headers that are not
    ///   valid HTTP (AsyncHTTPClient refuses those; the fast lane sends headers unchecked, all of them
    ///   known good).
    init(baseURL: String, settings: ProviderSettings, headers: HTTPHeaders, tls: NIOSSLContext?, proxy: EgressProxy) throws(FastLaneSkip) {
        let isHTTPS = baseURL.hasPrefix("https://")
        guard isHTTPS || baseURL.hasPrefix("http://"), !isHTTPS || tls != nil, !baseURL.contains("?"), !baseURL.contains("@") else { throw .unusualUpstream }
        let forbidden: Set<UInt8> = [0x00, 0x0A, 0x0D]
        let headerText = settings.headers.flatMap { [$0.key, $0.value] } + [settings.apiKey?.exposedValue ?? ""]
        guard headerText.allSatisfy({ !$0.utf8.contains(where: forbidden.contains) }),
            settings.headers.keys.allSatisfy({ name in !name.isEmpty && name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") } })
        else { throw .unusualUpstream }
        let rest = baseURL.dropFirst(isHTTPS ? "https://".count : "http://".count)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = String(rest[..<slash])
        guard !authority.isEmpty else { throw .unusualUpstream }
        var host = Substring(authority)
        var port = isHTTPS ? 443 : 80
        // The port follows the last colon, unless that colon is inside an IPv6 literal (`[::1]`).
        if let colon = authority.lastIndex(of: ":"), !authority[colon...].contains("]") {
            guard let parsed = Int(authority[authority.index(after: colon)...]), (1...65_535).contains(parsed) else { throw .unusualUpstream }
            port = parsed
            host = authority[..<colon]
        }
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        let tunnel = proxy.server(forHost: String(host), https: isHTTPS)
        // A plain-HTTP request through a proxy names its URL whole; only `https` goes through a tunnel.
        guard tunnel == nil || isHTTPS else { throw .egressProxy }
        self.tunnel = tunnel
        self.host = String(host)
        self.port = port
        self.tls = isHTTPS ? tls : nil
        self.serverName = isHTTPS && !Self.isAddress(self.host) ? self.host : nil
        self.pathPrefix = String(rest[slash...])
        self.authority = authority
        self.maxConnections = settings.maxConnections
        self.connectTimeout = settings.timeouts.connect
        self.apiVersion = settings.apiVersion
        var fields = ByteBuffer(string: "host: \(authority)\r\n")
        // The gateway sets these itself, per request or per connection.
        let perRequest: Set<String> = ["host", "content-length", "transfer-encoding", "connection", "x-request-id", "traceparent"]
        for (name, value) in headers where !perRequest.contains(name.lowercased()) {
            fields.writeString("\(name): \(value)\r\n")
        }
        self.fieldLines = fields
        var head = ByteBuffer(string: "POST \(Self.requestTarget(prefix: self.pathPrefix, path: "/chat/completions", model: nil, apiVersion: nil)) HTTP/1.1\r\n")
        head.writeImmutableBuffer(fields)
        self.chatRequestHead = head
        self.configuredTraceparent = headers.first(name: "traceparent")
    }

    /// `host:port` as `CONNECT` names it (an IPv6 address in brackets).
    var authorityForTunnel: String {
        self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)"
    }

    /// An IPv4 or IPv6 literal, which TLS's server name indication may not carry.
    private static func isAddress(_ host: String) -> Bool {
        host.contains(":") || (host.split(separator: ".", omittingEmptySubsequences: false).count == 4 && host.split(separator: ".").allSatisfy { UInt8($0) != nil })
    }

    /// A chat completion request for this endpoint, in one buffer: the serialized head, then the
    /// client's body as `patch` edits it for `model`.
    func chatRequest(_ patch: OpenAIRequestPatch, model: String, requestStreamUsage: Bool, requestID: String, traceparent: String?) -> ByteBuffer {
        let edits = patch.edits(model: model, requestStreamUsage: requestStreamUsage)
        let length = patch.upstreamBodyLength(edits)
        var head = self.chatRequestHead
        if self.apiVersion != nil {
            head = ByteBuffer(string: "POST \(Self.requestTarget(prefix: self.pathPrefix, path: "/chat/completions", model: model, apiVersion: self.apiVersion)) HTTP/1.1\r\n")
            head.writeImmutableBuffer(self.fieldLines)
        }
        var request = Self.requestHead(head, bodyLength: length, requestID: requestID, traceparent: traceparent ?? self.configuredTraceparent)
        patch.writeUpstreamBody(edits, into: &request)
        return request
    }

    /// A request to `path` (the adapter's, for `model`) with a body of its own: a translated request.
    func request(path: String, model: String, body: ByteBuffer, requestID: String, traceparent: String?) -> ByteBuffer {
        var head = ByteBuffer(string: "POST \(Self.requestTarget(prefix: self.pathPrefix, path: path, model: model, apiVersion: self.apiVersion)) HTTP/1.1\r\n")
        head.writeImmutableBuffer(self.fieldLines)
        var request = Self.requestHead(head, bodyLength: body.readableBytes, requestID: requestID, traceparent: traceparent ?? self.configuredTraceparent)
        request.writeImmutableBuffer(body)
        return request
    }

    /// Where `path` of `model` lives under the base URL's path: Azure's classic API names the
    /// deployment in the path and the version in the query (as `UpstreamPool.Upstream.url` does).
    private static func requestTarget(prefix: String, path: String, model: String?, apiVersion: String?) -> String {
        guard let apiVersion, let model else { return prefix + path }
        let deployment = model.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(["/"])) ?? model
        return "\(prefix)/deployments/\(deployment)\(path)?api-version=\(apiVersion)"
    }

    /// `head` with the request's own fields, room left for the body.
    private static func requestHead(_ head: ByteBuffer, bodyLength: Int, requestID: String, traceparent: String?) -> ByteBuffer {
        var request = ByteBufferAllocator().buffer(capacity: head.readableBytes + 192 + bodyLength)
        request.writeImmutableBuffer(head)
        request.writeStaticString("x-request-id: ")
        request.writeString(requestID)
        if let traceparent {
            request.writeStaticString("\r\ntraceparent: ")
            request.writeString(traceparent)
        }
        request.writeStaticString("\r\ncontent-length: ")
        request.writeString(String(bodyLength))
        request.writeStaticString("\r\n\r\n")
        return request
    }
}
