import AsyncHTTPClient
import Engine
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

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
        /// Set for a plain-HTTP upstream, which the fast lane reaches without AsyncHTTPClient.
        let plainEndpoint: PlainHTTPEndpoint?

        init(
            settings: ProviderSettings, baseURL: String, streamingClient: HTTPClient, blockingClient: HTTPClient, headers: HTTPHeaders,
            plainEndpoint: PlainHTTPEndpoint?
        ) {
            self.settings = settings
            self.baseURL = baseURL
            self.streamingClient = streamingClient
            self.blockingClient = blockingClient
            self.headers = headers
            self.plainEndpoint = plainEndpoint
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
    let eventLoopGroup: any EventLoopGroup

    /// - Parameter simulatorURL: where the in-process simulator listens, for `simulator` providers without a `base_url`.
    init(providers: [ProviderSettings], simulatorURL: String?, eventLoopGroup: any EventLoopGroup, reusing existing: [String: Upstream] = [:]) {
        self.simulatorURL = simulatorURL
        self.eventLoopGroup = eventLoopGroup
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
            upstreams[provider.id] = Upstream(
                settings: provider,
                baseURL: baseURL,
                streamingClient: Self.client(provider, read: provider.timeouts.idle, eventLoopGroup),
                blockingClient: Self.client(provider, read: provider.timeouts.firstByte, eventLoopGroup),
                headers: headers,
                plainEndpoint: PlainHTTPEndpoint(baseURL: baseURL, settings: provider, headers: headers)
            )
        }
        self.upstreams = upstreams
    }

    subscript(id: String) -> Upstream? {
        self.upstreams[id]
    }

    /// A pool for `providers` that keeps the clients of providers whose settings did not change.
    /// - Returns: the pool, and the upstreams it no longer uses.
    func rebuilt(for providers: [ProviderSettings]) -> (UpstreamPool, retired: [Upstream]) {
        let pool = UpstreamPool(providers: providers, simulatorURL: self.simulatorURL, eventLoopGroup: self.eventLoopGroup, reusing: self.upstreams)
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

    private static func client(_ provider: ProviderSettings, read: Duration, _ group: any EventLoopGroup) -> HTTPClient {
        var configuration = HTTPClient.Configuration(
            timeout: .init(connect: .milliseconds(provider.timeouts.connect.milliseconds), read: .milliseconds(read.milliseconds)),
            connectionPool: .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: provider.maxConnections),
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
        if error is HTTPParserError {
            return .upstreamMalformed(provider: provider.id, detail: "the answer is not valid HTTP/1.1")
        }
        if error is NIOConnectionError || error is ChannelError || error is IOError {
            return .upstreamUnreachable(provider: provider.id, detail: "connection failed")
        }
        return .upstreamUnreachable(provider: provider.id, detail: String(describing: type(of: error)))
    }
}
