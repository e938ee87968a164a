import AsyncHTTPClient
import Engine
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// The gateway's own look at its providers, on their own schedules: free health checks (a model
/// list), and the load reports of local backends (vLLM `/metrics`, Ollama `/api/ps`). Both feed the
/// routing health; neither costs a token.
struct BackendMonitor: Sendable {
    let state: GatewayState
    /// The configuration whose providers it watches; a reload starts a new monitor.
    let routing: RoutingSnapshot
    let logger: Logger

    /// Runs until cancelled (at shutdown).
    func run() async {
        await withTaskGroup(of: Void.self) { group in
            for provider in self.routing.config.providers {
                guard let upstream = self.routing.upstreams[provider.id] else { continue }
                if let check = provider.healthCheck {
                    group.addTask { await self.checkHealth(upstream, check) }
                }
                if let interval = provider.loadPoll {
                    group.addTask { await self.pollLoad(upstream, every: interval) }
                }
            }
        }
    }

    private func checkHealth(_ upstream: UpstreamPool.Upstream, _ check: HealthCheckSettings) async {
        let url = upstream.baseURL + (check.path ?? Self.defaultHealthPath(upstream.settings.wire))
        var passing = true
        while !Task.isCancelled {
            let passed = await self.get(url, upstream, timeout: check.timeout) { _ in true } ?? false
            if passed != passing {
                passing = passed
                self.logger.log(
                    level: passed ? .notice : .warning,
                    passed ? "health check passes again" : "health check failing; provider out of rotation",
                    metadata: ["gw.provider": "\(upstream.settings.id)", "gw.url": "\(url)"]
                )
            }
            self.state.health.withLock { $0.recordHealthCheck(upstream.settings.id, passed: passed) }
            try? await Task.sleep(for: check.interval)
        }
    }

    private func pollLoad(_ upstream: UpstreamPool.Upstream, every interval: Duration) async {
        let ollama = upstream.settings.wire == .ollamaChat
        let url = ollama ? upstream.baseURL + "/api/ps" : Self.serverRoot(upstream.baseURL) + "/metrics"
        while !Task.isCancelled {
            let load = await self.get(url, upstream, timeout: .seconds(2)) { body in
                ollama ? JSONValue.parse(body).flatMap(BackendLoad.ollama(ps:)) : BackendLoad.vllm(metrics: String(buffer: body))
            } ?? nil
            if let load {
                self.state.health.withLock { $0.recordLoad(load, provider: upstream.settings.id) }
            }
            try? await Task.sleep(for: interval)
        }
    }

    /// GETs `url` with the provider's credentials; `read` sees a 2xx body. Nil on any failure.
    private func get<Value>(_ url: String, _ upstream: UpstreamPool.Upstream, timeout: Duration, read: (ByteBuffer) -> Value) async -> Value? {
        var request = HTTPClientRequest(url: url)
        request.headers = upstream.headers
        request.headers.remove(name: "content-type")
        do {
            let response = try await upstream.blockingClient.execute(request, timeout: .milliseconds(timeout.milliseconds))
            let body = try await response.body.collect(upTo: 1 << 20)
            guard (200..<300).contains(Int(response.status.code)) else { return nil }
            return read(body)
        } catch {
            return nil
        }
    }

    /// The model list of each API: free, and it proves the key works.
    static func defaultHealthPath(_ wire: WireFormat) -> String {
        wire == .ollamaChat ? "/api/tags" : "/models"
    }

    /// vLLM serves `/metrics` beside `/v1`, not under it.
    static func serverRoot(_ baseURL: String) -> String {
        baseURL.hasSuffix("/v1") ? String(baseURL.dropLast(3)) : baseURL
    }
}
