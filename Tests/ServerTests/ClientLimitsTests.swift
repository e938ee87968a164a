import Engine
import Foundation
import Testing
@testable import Server

/// What a client connection may take of the gateway, on both lanes: time to send a request head and
/// body, a keep-alive pause, a place among the listener's connections; and when an answer ends the
/// connection (HTTP/1.0, a broken request), so that nothing the client sent after it is served.
@Suite(.serialized)
struct ClientLimitsTests {
    /// A gateway whose client limits are short (hundreds of milliseconds), or long where a test does
    /// not look at them.
    private func start(
        header: Duration = .seconds(30), bodyGrace: Duration = .seconds(30), bodyMinRate: Int = 1024, idle: Duration = .seconds(30),
        maxConnections: Int? = nil, extraProviders: [ProviderSettings] = [], extraRoutes: [RouteSettings] = [], lane: Lane = .fast
    ) async throws -> GatewayFixture {
        try await GatewayFixture.start(
            routes: ["fast": "gpt-4o-mini-2024-07-18", "slow": "m:tps=10"], extraProviders: extraProviders, extraRoutes: extraRoutes, lane: lane
        ) { config in
            config.server.client.headerTimeout = header
            config.server.client.bodyGrace = bodyGrace
            config.server.client.bodyMinRate = bodyMinRate
            config.server.client.idleTimeout = idle
            config.server.client.maxConnections = maxConnections
        }
    }

    private static let chat = TestClient.chat(model: "fast")
    private static let message = #"{"model":"fast","max_tokens":20,"messages":[{"role":"user","content":"Hello there"}]}"#

    private static func post(_ path: String, _ body: String, version: String = "1.1", fields: String = "") -> String {
        "POST \(path) HTTP/\(version)\r\nhost: x\r\ncontent-type: application/json\r\n\(fields)content-length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    private static func metric(_ fixture: GatewayFixture, _ name: String) async throws -> Int {
        let metrics = try await TestClient.get("\(fixture.gateway.url)/metrics").body
        let line = metrics.split(separator: "\n").first { $0.hasPrefix("\(name) ") }
        return line.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
    }

    // MARK: Timeouts

    /// Slowloris: connections that send nothing, or a head a byte at a time, are answered 408 and closed.
    @Test func connectionsThatSendNoWholeHeadAreClosedByTheHeaderTimeout() async throws {
        let fixture = try await self.start(header: .milliseconds(300))
        let silent = try (0..<200).map { _ in try RawConnection(port: fixture.gateway.port) }
        // A head that never ends, a byte every 20 ms: its bytes buy it no time.
        let trickling = try RawConnection(port: fixture.gateway.port)
        for character in "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-padding: " + String(repeating: "a", count: 20) {
            guard trickling.trySend(String(character)) else { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        var closed = 0
        for connection in silent + [trickling] {
            let answer = try #require(await connection.readToClose(), "a connection was still open after 10 s")
            #expect(answer.hasPrefix("HTTP/1.1 408 "), "\(answer.prefix(200))")
            #expect(answer.contains(#""code":"request_timeout""#))
            closed += 1
        }
        #expect(closed == 201)
        #expect(try await Self.metric(fixture, #"switchyard_client_timeouts_total{phase="header"}"#) >= 201)
        // The gateway still answers.
        #expect(try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", Self.chat).status == 200)
        await fixture.stop()
    }

    /// Half-sent bodies are closed on both lanes: the fast lane collecting a chat completion, Hummingbird
    /// reading an Anthropic message, and a chunked body (Hummingbird's framing).
    @Test(arguments: Lane.allCases)
    func halfSentBodiesAreClosedByTheBodyTimeout(lane: Lane) async throws {
        let fixture = try await self.start(bodyGrace: .milliseconds(200), bodyMinRate: 1024, lane: lane)
        let full = String(repeating: "x", count: 64 * 1024)
        let starts = [
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: \(full.utf8.count)\r\n\r\n" + full.prefix(100),
            "POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: \(full.utf8.count)\r\n\r\n" + full.prefix(100),
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n10000\r\n" + full.prefix(100),
        ]
        let connections = try starts.map { start in
            let connection = try RawConnection(port: fixture.gateway.port)
            try connection.send(start)
            return connection
        }
        for connection in connections {
            let answer = try #require(await connection.readToClose(), "a half-sent body was still open after 10 s")
            #expect(answer.isEmpty || answer.hasPrefix("HTTP/1.1 408 "), "\(answer.prefix(200))")
        }
        #expect(try await Self.metric(fixture, #"switchyard_client_timeouts_total{phase="body"}"#) == 3)
        try await fixture.expectServed(chats: 0)
        await fixture.stop()
    }

    /// A body that keeps coming, however slowly above the minimum rate, is read and answered.
    @Test(arguments: Lane.allCases)
    func aBodyArrivingAboveTheMinimumRateIsAnswered(lane: Lane) async throws {
        let fixture = try await self.start(bodyGrace: .milliseconds(100), bodyMinRate: 1, lane: lane)
        for (path, body) in [("/v1/chat/completions", Self.chat), ("/v1/messages", Self.message)] {
            let request = Self.post(path, body)
            let connection = try RawConnection(port: fixture.gateway.port)
            let cut = request.utf8.count - body.utf8.count / 2
            try connection.send(String(request.utf8.prefix(cut))!)
            try await Task.sleep(for: .milliseconds(400))
            try connection.send(String(request.utf8.dropFirst(cut))!)
            let answer = try await connection.readResponse()
            #expect(answer.status == 200, "\(path): \(answer.status) \(answer.body)")
        }
        try await fixture.expectServed(chats: 2)
        await fixture.stop()
    }

    @Test(arguments: Lane.allCases)
    func anIdleKeepAliveConnectionIsClosedOnEitherLane(lane: Lane) async throws {
        let fixture = try await self.start(idle: .milliseconds(300), lane: lane)
        for request in [Self.post("/v1/chat/completions", Self.chat), "GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n"] {
            let connection = try RawConnection(port: fixture.gateway.port)
            try connection.send(request)
            #expect(try await connection.readResponse().status == 200)
            // Nothing more is sent: the connection is closed without another word.
            #expect(await connection.readToClose() == "")
        }
        #expect(try await Self.metric(fixture, #"switchyard_client_timeouts_total{phase="idle"}"#) == 2)
        try await fixture.expectServed(chats: 1)
        await fixture.stop()
    }

    /// The limits time the client, never the upstream: a slow answer, whole or streamed, on either lane,
    /// outlasts every client timeout.
    @Test(arguments: Lane.allCases)
    func aSlowUpstreamIsNoClientTimeout(lane: Lane) async throws {
        let upstream = try await ScriptedUpstream(.init(answerAfter: .milliseconds(1200)))
        let provider = ProviderSettings(id: "late", kind: .openAICompatible, baseURL: "http://127.0.0.1:\(upstream.port)/v1")
        let fixture = try await self.start(
            header: .milliseconds(200), bodyGrace: .milliseconds(200), idle: .milliseconds(200),
            extraProviders: [provider], extraRoutes: [RouteSettings(alias: "late", targets: [RouteTarget(provider: "late", model: "m")])], lane: lane
        )
        let connection = try RawConnection(port: fixture.gateway.port)
        try connection.send(Self.post("/v1/chat/completions", TestClient.chat(model: "late")))
        #expect(try await connection.readResponse().status == 200)
        let translated = try RawConnection(port: fixture.gateway.port)
        try translated.send(Self.post("/v1/messages", #"{"model":"late","max_tokens":20,"messages":[{"role":"user","content":"Hi"}]}"#))
        #expect(try await translated.readResponse().status == 200)
        // A stream of 2 s (10 tokens a second) relayed to an OpenAI client and, translated, to an Anthropic one.
        for (path, body) in [
            ("/v1/chat/completions", TestClient.chat(model: "slow", stream: true, extra: #","max_tokens":20"#)),
            ("/v1/messages", #"{"model":"slow","max_tokens":20,"stream":true,"messages":[{"role":"user","content":"Hi"}]}"#),
        ] {
            let reply = try await TestClient.post("\(fixture.gateway.url)\(path)", body)
            #expect(reply.status == 200)
            #expect(reply.body.contains(path.hasSuffix("messages") ? "message_stop" : "[DONE]"), "\(path): \(reply.body.suffix(200))")
        }
        #expect(try await Self.metric(fixture, #"switchyard_client_timeouts_total{phase="body"}"#) == 0)
        try await fixture.expectServed(chats: 4)
        await fixture.stop()
        await upstream.stop()
    }

    // MARK: Connection cap

    @Test func pastMaxConnectionsAConnectionIsRefusedWith503() async throws {
        let fixture = try await self.start(maxConnections: 2)
        // Two connections in use, each answered (so each was accepted in turn).
        var held: [RawConnection] = []
        for _ in 0..<2 {
            let connection = try RawConnection(port: fixture.gateway.port)
            try connection.send("GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            #expect(try await connection.readResponse().status == 200)
            held.append(connection)
        }
        let third = try RawConnection(port: fixture.gateway.port)
        let answer = try #require(await third.readToClose(), "the connection past the cap was not closed")
        #expect(answer.hasPrefix("HTTP/1.1 503 "), "\(answer.prefix(200))")
        #expect(answer.lowercased().contains("connection: close"))
        #expect(answer.contains(#""code":"too_many_connections""#))
        // A place frees when a connection closes: the metrics request gets in once the close is seen.
        held[1].hangUp()
        // The gauge settles once every close is seen (the metrics request's own connection included).
        // A metrics request that comes before the close is seen is refused too, and counted.
        var metrics: String?
        var refusedMeanwhile = 0
        for _ in 0..<50 where metrics?.contains("switchyard_client_connections 2") != true {
            switch try? await TestClient.get("\(fixture.gateway.url)/metrics") {
            case .some(let reply) where reply.status == 200: metrics = reply.body
            case .some(let reply) where reply.status != 503: break
            default: refusedMeanwhile += 1
            }
            if metrics?.contains("switchyard_client_connections 2") != true { try await Task.sleep(for: .milliseconds(100)) }
        }
        let text = try #require(metrics, "no place freed after a connection closed")
        #expect(
            text.contains("switchyard_client_connections_refused_total \(1 + refusedMeanwhile)"),
            "\(refusedMeanwhile) refused meanwhile: \(text.split(separator: "\n").filter { $0.contains("client_connections") })"
        )
        #expect(text.contains("switchyard_client_connections 2"))
        _ = held[0]
        await fixture.stop()
    }

    // MARK: When an answer ends the connection

    /// Both lanes: a chat completion (the fast lane's, in HTTP/1.1) and a model list, whole or streamed.
    @Test(arguments: Lane.allCases)
    func anHTTP10ClientIsDisconnectedAfterItsAnswer(lane: Lane) async throws {
        let fixture = try await self.start(lane: lane)
        for request in [
            Self.post("/v1/chat/completions", Self.chat, version: "1.0"),
            "GET /v1/models HTTP/1.0\r\n\r\n",
            Self.post("/v1/chat/completions", TestClient.chat(model: "fast", stream: true), version: "1.0"),
        ] {
            let connection = try RawConnection(port: fixture.gateway.port)
            try connection.send(request)
            let answer = try #require(await connection.readToClose(), "an HTTP/1.0 connection was still open after its answer")
            #expect(answer.hasPrefix("HTTP/1.0 200 "), "\(answer.prefix(200))")
            #expect(answer.lowercased().contains("connection: close"))
            #expect(!answer.lowercased().contains("transfer-encoding"), "an HTTP/1.0 client reads no chunks")
            #expect(answer.contains("chat.completion") || answer.contains(#""object":"list""#))
        }
        // HTTP/1.0 with keep-alive, and an answer of known length: the connection stays.
        let kept = try RawConnection(port: fixture.gateway.port)
        try kept.send(Self.post("/v1/chat/completions", Self.chat, version: "1.0", fields: "connection: keep-alive\r\n"))
        let first = try await kept.readResponse()
        #expect(first.status == 200 && first.headers["connection"] == "keep-alive")
        try kept.send("GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        #expect(try await kept.readResponse().status == 200)
        // HTTP/1.0 is framing the fast lane leaves to Hummingbird: all four requests (the model list too).
        try await fixture.expectServed(chats: 0, left: 4, because: .unusualFraming)
        await fixture.stop()
    }

    /// A request behind one answered `400 Connection: close` is never framed, sent upstream or billed:
    /// pipelined in the same write, a moment later, or once the 400 came.
    @Test(arguments: Lane.allCases, [nil, 1, 20, 100, 400] as [Int?])
    func aRequestBehindA400IsNeverSentUpstream(lane: Lane, _ pause: Int?) async throws {
        let upstream = try await ScriptedUpstream(.init())
        let provider = ProviderSettings(id: "count", kind: .openAICompatible, baseURL: "http://127.0.0.1:\(upstream.port)/v1")
        let fixture = try await self.start(
            extraProviders: [provider], extraRoutes: [RouteSettings(alias: "count", targets: [RouteTarget(provider: "count", model: "m")])], lane: lane
        )
        let unknownMethod = "FOO /v1/chat/completions HTTP/1.1\r\nhost: x\r\n\r\n"
        let chat = Self.post("/v1/chat/completions", TestClient.chat(model: "count"))
        let connection = try RawConnection(port: fixture.gateway.port)
        if let pause {
            try connection.send(unknownMethod)
            try await Task.sleep(for: .milliseconds(pause))
            _ = connection.trySend(chat)
        } else {
            try connection.send(unknownMethod + chat)
        }
        let rest = try #require(await connection.readToClose(), "the connection stayed open after 400 Connection: close")
        #expect(rest.hasPrefix("HTTP/1.1 400 ") && rest.lowercased().contains("connection: close"), "\(rest.prefix(300))")
        #expect(!rest.contains("chat.completion") && rest.components(separatedBy: "HTTP/1.1 ").count == 2, "\(rest.prefix(600))")
        // Had the request gone on, the upstream would have answered it at once; give it the time to.
        try await Task.sleep(for: .milliseconds(300))
        #expect(upstream.answers == 0)
        #expect(try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", TestClient.chat(model: "count")).status == 200)
        #expect(upstream.answers == 1)
        try await fixture.expectServed(chats: 1)
        await fixture.stop()
        await upstream.stop()
    }

    /// The caller's 400, in its dialect, not our 500: not logged as our failure nor counted as our fault.
    @Test(arguments: ["/v1/chat/completions", "/v1/messages"])
    func aMalformedChunkedBodyIsTheCallersBadRequest(_ path: String) async throws {
        let fixture = try await self.start()
        let connection = try RawConnection(port: fixture.gateway.port)
        try connection.send("POST \(path) HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{\"mod\r\nzz\r\nel\"\r\n0\r\n\r\n")
        let answer = try await connection.readResponse()
        #expect(answer.status == 400, "\(answer.body)")
        #expect(answer.headers["connection"] == "close")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any])
        let error = try #require(json["error"] as? [String: Any])
        if path.hasSuffix("messages") {
            #expect(json["type"] as? String == "error" && error["type"] as? String == "invalid_request_error")
        } else {
            #expect(error["code"] as? String == "invalid_request" && error["type"] as? String == "invalid_request_error")
        }
        #expect(await connection.readToClose() != nil, "the connection stayed open after a broken body")
        let metrics = try await TestClient.get("\(fixture.gateway.url)/metrics").body
        #expect(metrics.contains(#"outcome="caller""#))
        #expect(!metrics.contains(#"outcome="gateway""#))
        await fixture.stop()
    }
}
