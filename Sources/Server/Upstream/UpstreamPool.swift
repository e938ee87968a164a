import AsyncHTTPClient
import Engine
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// One HTTP client per provider: its own connection pool, so a slow provider cannot starve the others,
/// and timeouts from its config.
///
/// Each provider gets two clients because AsyncHTTPClient has one read timeout per client, and the two
/// kinds of call need different ones: a non-streaming call is silent for the whole generation
/// (`first_byte`), a stream must never be silent longer than `idle`.
final class UpstreamPool: Sendable {
    /// A class: every attempt, outcome and exchange refers to its upstream, and copying a struct of
    /// this size (the provider's whole settings) retained each of its fields each time.
    final class Upstream: Sendable {
        let settings: ProviderSettings
        let baseURL: String
        let streamingClient: HTTPClient
        let blockingClient: HTTPClient
        let headers: HTTPHeaders
        /// How the fast lane reaches it, or why it leaves it to AsyncHTTPClient.
        let fastLane: Result<UpstreamEndpoint, FastLaneSkip>
        /// The event loops' connection pools, which both lanes call it over when `fastLane` is an endpoint.
        let loops: LoopUpstreams
        /// The sessions its `https` connections resume (nil for plain HTTP).
        let tlsSessions: TLSSessionCache?

        init(
            settings: ProviderSettings, baseURL: String, streamingClient: HTTPClient, blockingClient: HTTPClient, headers: HTTPHeaders,
            fastLane: Result<UpstreamEndpoint, FastLaneSkip>, loops: LoopUpstreams, tlsSessions: TLSSessionCache?
        ) {
            self.settings = settings
            self.baseURL = baseURL
            self.streamingClient = streamingClient
            self.blockingClient = blockingClient
            self.headers = headers
            self.fastLane = fastLane
            self.loops = loops
            self.tlsSessions = tlsSessions
        }

        /// The host and port of `baseURL` (`server.address` and `server.port` on an attempt's span).
        var address: (host: String, port: Int)? {
            guard let url = URL(string: self.baseURL), let host = url.host else { return nil }
            return (host, url.port ?? (url.scheme == "https" ? 443 : 80))
        }

        /// Where `path` (`/chat/completions`, `/messages`, `/embeddings`) of `model` lives. Azure's classic
        /// API names the deployment in the path and the version in the query.
        func url(_ path: String, model: String) -> String {
            guard let version = self.settings.apiVersion else { return self.baseURL + path }
            let deployment = model.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(["/"])) ?? model
            return "\(self.baseURL)/deployments/\(deployment)\(path)?api-version=\(version)"
        }
    }

    private let upstreams: [String: Upstream]
    private let simulatorURL: String?
    private let proxy: EgressProxy
    let eventLoopGroup: any EventLoopGroup
    /// Every event loop's upstream connections, kept across rebuilds.
    let loops: LoopUpstreams

    /// - Parameters:
    ///   - simulatorURL: where the in-process simulator listens, for `simulator` providers without a `base_url`.
    ///   - proxy: the egress proxy the environment names.
    /// - Throws: a provider's `tls.ca_file` that cannot be read or holds no certificate: nothing of
    ///   the configuration applies.
    init(
        providers: [ProviderSettings], simulatorURL: String?, proxy: EgressProxy, eventLoopGroup: any EventLoopGroup, loops: LoopUpstreams? = nil,
        reusing existing: [String: Upstream] = [:]
    ) throws(ConfigError) {
        self.simulatorURL = simulatorURL
        self.proxy = proxy
        self.eventLoopGroup = eventLoopGroup
        let loops = loops ?? LoopUpstreams(group: eventLoopGroup)
        self.loops = loops
        var upstreams: [String: Upstream] = [:]
        for provider in providers {
            if let kept = existing[provider.id], kept.settings == provider {
                upstreams[provider.id] = kept
                continue
            }
            // The in-process simulator serves each API where its vendor does: Ollama's at the root,
            // Gemini's under /v1beta, the others under /v1.
            let simulatorBase = simulatorURL.map { root in
                switch provider.wire {
                case .ollamaChat: return root
                case .geminiGenerateContent: return root + "/v1beta"
                default: return root + "/v1"
                }
            }
            let baseURL = provider.baseURL ?? simulatorBase ?? "http://127.0.0.1:1/v1"
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "application/json")
            headers.add(name: "user-agent", value: "switchyard")
            switch provider.auth {
            case .bearer:
                if let key = provider.apiKey { headers.add(name: "authorization", value: "Bearer \(key.exposedValue)") }
            case .xAPIKey:
                if let key = provider.apiKey { headers.add(name: "x-api-key", value: key.exposedValue) }
            case .apiKeyHeader:
                if let key = provider.apiKey { headers.add(name: "api-key", value: key.exposedValue) }
            case .googAPIKey:
                if let key = provider.apiKey { headers.add(name: "x-goog-api-key", value: key.exposedValue) }
            }
            if provider.wire == .anthropicMessages { headers.add(name: "anthropic-version", value: "2023-06-01") }
            for (name, value) in provider.headers.sorted(by: { $0.key < $1.key }) {
                headers.replaceOrAdd(name: name, value: value)
            }
            let tls = try Self.tls(provider, baseURL: baseURL)
            let route = Self.route(to: baseURL, proxy: proxy)
            upstreams[provider.id] = Upstream(
                settings: provider,
                baseURL: baseURL,
                streamingClient: Self.client(provider, read: provider.timeouts.idle, tls: tls?.configuration, proxy: route, eventLoopGroup),
                blockingClient: Self.client(provider, read: provider.timeouts.firstByte, tls: tls?.configuration, proxy: route, eventLoopGroup),
                headers: headers,
                fastLane: Result { () throws(FastLaneSkip) in
                    try UpstreamEndpoint(baseURL: baseURL, settings: provider, headers: headers, tls: tls?.context, proxy: proxy)
                },
                loops: loops,
                tlsSessions: tls?.sessions
            )
        }
        self.upstreams = upstreams
    }

    subscript(id: String) -> Upstream? {
        self.upstreams[id]
    }

    /// Every provider's upstream, by provider id.
    var all: [String: Upstream] { self.upstreams }

    /// A pool for `providers` that keeps the clients of providers whose settings did not change.
    /// - Returns: the pool, and the upstreams it no longer uses.
    func rebuilt(for providers: [ProviderSettings]) throws(ConfigError) -> (UpstreamPool, retired: [Upstream]) {
        let pool = try UpstreamPool(providers: providers, simulatorURL: self.simulatorURL, proxy: self.proxy, eventLoopGroup: self.eventLoopGroup, loops: self.loops, reusing: self.upstreams)
        let retired = self.upstreams.filter { id, upstream in
            guard let kept = pool.upstreams[id] else { return true }
            return kept.streamingClient !== upstream.streamingClient
        }.map(\.value)
        return (pool, retired)
    }

    /// Shuts retired clients down once every request they may carry has hit its total timeout, so a
    /// reload never cuts a stream short.
    static func retire(_ upstreams: [Upstream]) {
        for upstream in upstreams {
            Task {
                try? await Task.sleep(for: upstream.settings.timeouts.total + .seconds(1))
                try? await upstream.streamingClient.shutdown()
                try? await upstream.blockingClient.shutdown()
            }
        }
    }

    func shutdown() async {
        for upstream in self.upstreams.values {
            try? await upstream.streamingClient.shutdown()
            try? await upstream.blockingClient.shutdown()
        }
    }

    /// An `https` provider's TLS: the system trust store plus its `tls.ca_file`, as AsyncHTTPClient
    /// takes it and as the fast lane's connections use it (one context, made once, resuming sessions).
    private static func tls(
        _ provider: ProviderSettings, baseURL: String
    ) throws(ConfigError) -> (configuration: TLSConfiguration, context: NIOSSLContext, sessions: TLSSessionCache?)? {
        guard baseURL.hasPrefix("https://") else { return nil }
        var configuration = TLSConfiguration.makeClientConfiguration()
        // The gateway closes an upstream connection only when its answer is no longer wanted (a client
        // hang-up, a timeout) or it is retired: it has no use for the upstream's close_notify, and
        // waiting for it (NIOSSL's default, 5 s) leaves an upstream that does not read while it
        // streams generating, and billing, that long.
        configuration.shutdownTimeout = .zero
        func refuse(_ path: String, _ message: String) -> ConfigError {
            ConfigError(source: "providers", issues: [ConfigIssue(line: nil, column: nil, path: "providers.\(provider.id).\(path)", message: message)])
        }
        if let file = provider.tls.caFile {
            let certificates: [NIOSSLCertificate]
            do {
                certificates = try NIOSSLCertificate.fromPEMFile(file)
            } catch {
                throw refuse("tls.ca_file", "'\(file)' cannot be read as PEM certificates (\(error))")
            }
            guard !certificates.isEmpty else { throw refuse("tls.ca_file", "'\(file)' holds no certificate") }
            configuration.additionalTrustRoots = [.certificates(certificates)]
        }
        do {
            let context = try NIOSSLContext(configuration: configuration)
            return (configuration, context, TLSSessionCache.attached(to: context))
        } catch {
            throw refuse("tls", "the TLS client cannot be set up: \(error)")
        }
    }

    /// The proxy AsyncHTTPClient goes through to reach `baseURL`, if the environment names one for it.
    private static func route(to baseURL: String, proxy: EgressProxy) -> HTTPClient.Configuration.Proxy? {
        guard let url = URL(string: baseURL), let host = url.host,
            let server = proxy.server(forHost: host, https: url.scheme == "https")
        else { return nil }
        let authorization = server.credentials.map { HTTPClient.Authorization.basic(username: $0.user, password: $0.password) }
        return .server(host: server.host, port: server.port, authorization: authorization)
    }

    private static func client(
        _ provider: ProviderSettings, read: Duration, tls: TLSConfiguration?, proxy: HTTPClient.Configuration.Proxy?, _ group: any EventLoopGroup
    ) -> HTTPClient {
        var configuration = HTTPClient.Configuration(
            tlsConfiguration: tls,
            timeout: .init(connect: .milliseconds(provider.timeouts.connect.milliseconds), read: .milliseconds(read.milliseconds)),
            connectionPool: .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: provider.maxConnections),
            proxy: proxy,
            decompression: .disabled
        )
        // A gateway must not follow redirects on a POST it was asked to proxy.
        configuration.redirectConfiguration = .disallow
        // A refused connection should fail now, so the caller (and later a fallback) can act on it,
        // not be retried silently until the connect timeout.
        configuration.connectionPool.retryConnectionEstablishment = false
        // AsyncHTTPClient builds a span per request even for the no-op tracer (3% of CPU in the
        // overhead benchmark); the gateway traces requests itself.
        configuration.tracing.tracer = nil
        return HTTPClient(eventLoopGroupProvider: .shared(group), configuration: configuration)
    }
}

extension GatewayError {
    /// Maps a transport failure to the error the client sees, naming the timeout that fired.
    static func from(_ error: any Error, provider: ProviderSettings, streaming: Bool) -> GatewayError {
        if let gatewayError = error as? GatewayError { return gatewayError }
        let timeouts = provider.timeouts
        if let clientError = error as? HTTPClientError {
            switch clientError {
            case .connectTimeout:
                return .upstreamTimeout(provider, .connect)
            case .readTimeout:
                return streaming
                    ? .upstreamTimeout(provider, .idle)
                    : .upstreamTimeout(provider, .firstByte)
            case .deadlineExceeded:
                return timeouts.total < timeouts.firstByte
                    ? .upstreamTimeout(provider, .total)
                    : .upstreamTimeout(provider, .firstByte)
            case .remoteConnectionClosed:
                return .upstreamUnreachable(provider: provider.id, detail: "the connection was closed")
            default:
                return .upstreamUnreachable(provider: provider.id, detail: clientError.shortDescription)
            }
        }
        if case ChannelError.connectTimeout = error {
            return .upstreamTimeout(provider, .connect)
        }
        if let framing = error as? UpstreamFramingError {
            return .upstreamMalformed(provider: provider.id, detail: "the answer is not valid HTTP/1.1: \(framing.description)")
        }
        if let tls = error as? NIOSSLError {
            return .upstreamUnreachable(provider: provider.id, detail: "TLS failed: \(tls)")
        }
        if let tunnel = error as? UpstreamTunnelError {
            return .upstreamUnreachable(provider: provider.id, detail: tunnel.detail)
        }
        if error is HTTPParserError {
            return .upstreamMalformed(provider: provider.id, detail: "the answer is not valid HTTP/1.1")
        }
        if error is NIOConnectionError || error is ChannelError || error is IOError {
            return .upstreamUnreachable(provider: provider.id, detail: "connection failed")
        }
        return .upstreamUnreachable(provider: provider.id, detail: String(describing: type(of: error)))
    }
}
