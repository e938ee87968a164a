import AsyncHTTPClient
import Engine
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import Testing
@testable import Server

/// A server of ours on a loopback port, run in its own service group and stopped gracefully.
struct RunningService: Sendable {
    let port: Int
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    static let logger: Logger = {
        var logger = Logger(label: "test")
        logger.logLevel = ProcessInfo.processInfo.environment["TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
        return logger
    }()

    /// Starts the simulator on an ephemeral port.
    static func simulator(_ router: SimulatorRouter) async throws -> RunningService {
        try await self.serving(router.build())
    }

    /// Starts `router` on an ephemeral loopback port: a test's own upstream or image server.
    static func serving(_ router: Router<BasicRequestContext>) async throws -> RunningService {
        try await self.start { started in
            Application(
                router: router,
                configuration: .init(address: .hostname("127.0.0.1", port: 0), serverName: nil),
                onServerRunning: { channel in await started(channel.localAddress?.port ?? 0) },
                logger: Self.logger
            )
        }
    }

    /// Starts the gateway with `config` on an ephemeral port.
    /// - Parameter imagePolicy: where image URLs may lead; tests serving images widen it to loopback.
    static func gateway(_ config: GatewayConfig, imagePolicy: AddressPolicy = .publicOnly) async throws -> RunningService {
        try await self.controlledGateway(config, imagePolicy: imagePolicy).0
    }

    /// Starts the gateway, with its control handle (drain, target states).
    static func controlledGateway(_ config: GatewayConfig, imagePolicy: AddressPolicy = .publicOnly) async throws -> (RunningService, GatewayControl) {
        var config = config
        config.server.listen = ListenAddress(host: "127.0.0.1", port: 0)
        // Each gateway its own state dir: its admin socket and database.
        if config.server.stateDir == ServerSettings().stateDir { config.server.stateDir = Self.temporaryStateDir() }
        let finalConfig = config
        let (controls, continuation) = AsyncStream<GatewayControl>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let service = try await self.start { started in
            var gateway = GatewayService(config: finalConfig, logger: Self.logger) {
                continuation.yield($0.control)
                continuation.finish()
                await started($0.port)
            }
            gateway.imageAddressPolicy = imagePolicy
            return gateway
        }
        var iterator = controls.makeAsyncIterator()
        guard let control = await iterator.next() else { throw CancellationError() }
        return (service, control)
    }

    static func temporaryStateDir() -> String {
        NSTemporaryDirectory() + "switchyard-test-\(UUID().uuidString.prefix(12))"
    }

    static func start(_ make: (@escaping @Sendable (Int) async -> Void) -> some Service) async throws -> RunningService {
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let service = make { port in
            continuation.yield(port)
            continuation.finish()
        }
        let group = ServiceGroup(configuration: .init(services: [service], logger: Self.logger))
        let task = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw CancellationError() }
        return RunningService(port: port, group: group, task: task)
    }

    var url: String { "http://127.0.0.1:\(self.port)" }

    func stop() async {
        await self.group.triggerGracefulShutdown()
        _ = await self.task.result
    }
}

/// One gateway in front of one standalone simulator, configured per test.
struct GatewayFixture {
    let simulatorRouter: SimulatorRouter
    let simulator: RunningService
    let gateway: RunningService

    /// - Parameters:
    ///   - routes: alias → upstream model (simulator options may ride on the name, e.g. `m:fault=429`).
    ///   - timeouts: the simulator provider's timeouts.
    static func start(
        routes: [String: String] = ["fast": "gpt-4o-mini-2024-07-18"],
        timeouts: UpstreamTimeouts = UpstreamTimeouts(),
        maxBody: Int = 8 << 20,
        extraProviders: [ProviderSettings] = [],
        extraRoutes: [RouteSettings] = [],
        wire: WireFormat = .openAIChat,
        imagePolicy: AddressPolicy = .publicOnly,
        configure: (inout GatewayConfig) -> Void = { _ in }
    ) async throws -> GatewayFixture {
        let router = SimulatorRouter(settings: SimulatorSettings(timeToFirstToken: .zero, tokensPerSecond: 0))
        let simulator = try await RunningService.simulator(router)
        var config = GatewayConfig()
        config.server.maxBodyBytes = maxBody
        let base = wire == .ollamaChat ? simulator.url : wire == .geminiGenerateContent ? "\(simulator.url)/v1beta" : "\(simulator.url)/v1"
        config.providers = [
            ProviderSettings(id: "sim", kind: .simulator, baseURL: base, timeouts: timeouts, wire: wire)
        ] + extraProviders
        config.routes = routes.sorted { $0.key < $1.key }.map { alias, model in
            RouteSettings(alias: alias, targets: [RouteTarget(provider: "sim", model: model)])
        } + extraRoutes
        configure(&config)
        let gateway = try await RunningService.gateway(config, imagePolicy: imagePolicy)
        return GatewayFixture(simulatorRouter: router, simulator: simulator, gateway: gateway)
    }

    func stop() async {
        await self.gateway.stop()
        await self.simulator.stop()
    }
}

/// A finished HTTP exchange, body read whole.
struct Exchange {
    let status: Int
    let headers: HTTPHeaders
    let body: String

    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(self.body.utf8)) as? [String: Any]) ?? [:]
    }

    /// The `data:` payloads of an SSE body, in order.
    var events: [String] {
        self.body.components(separatedBy: "\n\n").compactMap { event in
            event.split(separator: "\n").first { $0.hasPrefix("data: ") }.map { String($0.dropFirst(6)) }
        }
    }
}

enum TestClient {
    /// Room for a few hundred concurrent requests, with waits that survive a loaded CI machine.
    static let client = HTTPClient(
        eventLoopGroupProvider: .singleton,
        configuration: .init(
            timeout: .init(connect: .seconds(10), read: .seconds(20)),
            connectionPool: .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 256),
            decompression: .disabled
        )
    )

    static func post(_ url: String, _ body: String, headers: [(String, String)] = []) async throws -> Exchange {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(string: body))
        return try await self.send(request)
    }

    static func get(_ url: String) async throws -> Exchange {
        try await self.send(HTTPClientRequest(url: url))
    }

    static func send(_ request: HTTPClientRequest) async throws -> Exchange {
        let response = try await self.client.execute(request, timeout: .seconds(20))
        let body = try await response.body.collect(upTo: 16 << 20)
        return Exchange(status: Int(response.status.code), headers: response.headers, body: String(buffer: body))
    }

    static func chat(model: String, stream: Bool = false, extra: String = "") -> String {
        #"{"model":"\#(model)","messages":[{"role":"user","content":"Hello there"}]\#(stream ? #","stream":true"# : "")\#(extra)}"#
    }
}

/// promtool (Debian's prometheus package, installed by scripts/bootstrap) lints a metrics exposition.
enum Promtool {
    static func check(_ exposition: String) throws -> (ok: Bool, report: String) {
        let promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"].first { FileManager.default.isExecutableFile(atPath: $0) }
        let path = try #require(promtool, "promtool is missing: run scripts/bootstrap")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["check", "metrics"]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        input.fileHandleForWriting.write(Data(exposition.utf8))
        try input.fileHandleForWriting.close()
        process.waitUntilExit()
        return (process.terminationStatus == 0, String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
    }
}
