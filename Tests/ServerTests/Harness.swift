import AsyncHTTPClient
import Engine
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
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

    /// Starts `router` behind TLS on an ephemeral loopback port, with the test CA's certificate for
    /// 127.0.0.1 and localhost (`Fixtures/tls`): a stand-in for a hosted vendor's HTTPS endpoint.
    /// - Parameter idleTimeout: how long it keeps an idle connection open (as long as it likes by default).
    static func servingTLS(_ router: Router<BasicRequestContext>, host: String = "127.0.0.1", idleTimeout: TimeAmount? = nil) async throws -> RunningService {
        let tls = try TLSConfiguration.makeServerConfiguration(
            certificateChain: NIOSSLCertificate.fromPEMFile(TestTLS.path("cert.pem")).map { .certificate($0) },
            privateKey: .privateKey(NIOSSLPrivateKey(file: TestTLS.path("key.pem"), format: .pem))
        )
        let server = try HTTPServerBuilder.tls(.http1(configuration: .init(idleTimeout: idleTimeout)), tlsConfiguration: tls)
        return try await self.start { started in
            Application(
                router: router,
                server: server,
                configuration: .init(address: .hostname(host, port: 0), serverName: nil),
                onServerRunning: { channel in await started(channel.localAddress?.port ?? 0) },
                logger: Self.logger
            )
        }
    }

    /// Starts the gateway with `config` on an ephemeral port.
    /// - Parameter imagePolicy: where image URLs may lead; tests serving images widen it to loopback.
    /// - Parameter egressProxy: the proxy upstreams are reached through (none by default, whatever the
    ///   test process's environment says).
    static func gateway(_ config: GatewayConfig, imagePolicy: AddressPolicy = .publicOnly, egressProxy: EgressProxy = .none) async throws -> RunningService {
        try await self.controlledGateway(config, imagePolicy: imagePolicy, egressProxy: egressProxy).0
    }

    /// Starts the gateway, with its control handle (drain, target states).
    static func controlledGateway(
        _ config: GatewayConfig, imagePolicy: AddressPolicy = .publicOnly, egressProxy: EgressProxy = .none
    ) async throws -> (RunningService, GatewayControl) {
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
            gateway.egressProxy = egressProxy
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

/// The test CA and the certificate it signed for 127.0.0.1, localhost and vendor.test (valid until 2125).
enum TestTLS {
    static func path(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/tls/\(name)").path
    }

    static var caFile: String { self.path("ca.pem") }
}

/// The two ways the gateway serves a chat completion: every behaviour test that can reach both runs
/// on both (`server.fast_lane` picks), and checks it ran where it meant to (`LaneFixture.expectServed`).
enum Lane: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case fast
    case framework

    var testDescription: String { self.rawValue }
}

/// Where a simulator answers: over plain HTTP, or behind TLS as every hosted vendor is.
enum UpstreamTransport: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case plain
    case tls

    var testDescription: String { self.rawValue }
}

/// A gateway a test started on one lane: what its lane counters say, and checks that a test's chat
/// completions ran where it meant them to.
protocol LaneFixture {
    var gateway: RunningService { get }
    var lane: Lane { get }
}

extension LaneFixture {
    /// The gateway's counters of fast-lane requests, and of requests it left to the framework by reason.
    func laneCounts() async throws -> (fast: Int, skipped: [String: Int]) {
        let metrics = try await TestClient.get("\(self.gateway.url)/metrics").body
        var fast = 0
        var skipped: [String: Int] = [:]
        for line in metrics.split(separator: "\n") {
            guard let value = line.split(separator: " ").last.flatMap({ Int($0) }) else { continue }
            if line.hasPrefix("switchyard_fast_lane_requests_total ") { fast = value }
            if line.hasPrefix("switchyard_fast_lane_skipped_total{reason=\""), let reason = line.split(separator: "\"").dropFirst().first {
                skipped[String(reason)] = value
            }
        }
        return (fast, skipped)
    }

    /// Checks that the fixture's `chats` chat completions ran on its lane: the fast lane counted each
    /// one, or none, every request then skipped as `disabled` (for no other reason). With `left`, that
    /// many more chat completions are ones the fast lane leaves to the framework `because` of a reason
    /// of its own (a body it refuses, a translated target…): on the fast lane they are counted under
    /// that reason, on the framework lane as `disabled` like the rest.
    func expectServed(chats: Int, left: Int = 0, because reason: FastLaneSkip? = nil, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let counts = try await self.laneCounts()
        switch self.lane {
        case .fast:
            #expect(counts.fast == chats, "fast-lane requests (skipped: \(counts.skipped))", sourceLocation: sourceLocation)
            if let reason {
                #expect(counts.skipped[reason.rawValue, default: 0] == left, "skipped as \(reason.rawValue): \(counts.skipped)", sourceLocation: sourceLocation)
            }
        case .framework:
            #expect(counts.fast == 0, "fast-lane requests", sourceLocation: sourceLocation)
            #expect((counts.skipped["disabled"] ?? 0) >= chats + left, "skipped as disabled: \(counts.skipped)", sourceLocation: sourceLocation)
            let otherReasons = counts.skipped.filter { $0.key != FastLaneSkip.disabled.rawValue && $0.value > 0 }
            #expect(otherReasons.isEmpty, "with the switch off, every request is skipped as disabled: \(otherReasons)", sourceLocation: sourceLocation)
        }
    }

    /// As `expectServed(chats:)`, for chat completions the fast lane may leave to the framework
    /// `because` of where they came (which event loop, behind what on their connection): on the fast
    /// lane each one is counted as served or as left for that reason, none for another.
    func expectServed(chats: Int, someLeftBecause reason: FastLaneSkip, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let left = self.lane == .fast ? try await self.laneCounts().skipped[reason.rawValue, default: 0] : 0
        try await self.expectServed(chats: chats - left, left: left, because: reason, sourceLocation: sourceLocation)
    }
}

/// A gateway a test started itself, on `lane`.
struct GatewayOnLane: LaneFixture {
    let gateway: RunningService
    let lane: Lane
}

/// One gateway in front of one standalone simulator, configured per test.
struct GatewayFixture: LaneFixture {
    let simulatorRouter: SimulatorRouter
    let simulator: RunningService
    let gateway: RunningService
    let lane: Lane

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
        lane: Lane = .fast,
        upstream: UpstreamTransport = .plain,
        configure: (inout GatewayConfig) -> Void = { _ in }
    ) async throws -> GatewayFixture {
        let router = SimulatorRouter(settings: SimulatorSettings(timeToFirstToken: .zero, tokensPerSecond: 0))
        let simulator = upstream == .tls ? try await RunningService.servingTLS(router.build()) : try await RunningService.simulator(router)
        var config = GatewayConfig()
        config.server.maxBodyBytes = maxBody
        config.server.fastLane = lane == .fast
        let root = upstream == .tls ? "https://127.0.0.1:\(simulator.port)" : simulator.url
        let base = wire == .ollamaChat ? root : wire == .geminiGenerateContent ? "\(root)/v1beta" : "\(root)/v1"
        var provider = ProviderSettings(id: "sim", kind: .simulator, baseURL: base, timeouts: timeouts, wire: wire)
        if upstream == .tls { provider.tls.caFile = TestTLS.caFile }
        config.providers = [provider] + extraProviders
        config.routes = routes.sorted { $0.key < $1.key }.map { alias, model in
            RouteSettings(alias: alias, targets: [RouteTarget(provider: "sim", model: model)])
        } + extraRoutes
        configure(&config)
        let gateway = try await RunningService.gateway(config, imagePolicy: imagePolicy)
        return GatewayFixture(simulatorRouter: router, simulator: simulator, gateway: gateway, lane: lane)
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
