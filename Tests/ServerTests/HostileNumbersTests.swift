import Engine
import Foundation
import Testing
@testable import Server

/// Numbers a client, an upstream or a stored row sends that trapped the whole process before they
/// were bounded (`UntrustedNumber`). A trap here ends the test run itself, so every test also shows the
/// gateway still answering afterwards.
@Suite(.serialized)
struct HostileNumbersTests {
    private static let huge = ["9223372036854775808", "9223372036854775807", "-9223372036854775809"]

    @Test func anAnonymousHugeMaxTokensIsRefusedOnEveryEndpoint() async throws {
        let fixture = try await GatewayFixture.start()
        for value in Self.huge {
            for name in ["max_tokens", "max_completion_tokens"] {
                let chat = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", TestClient.chat(model: "fast", extra: #","\#(name)":\#(value)"#))
                #expect(chat.status == 400, "chat \(name)=\(value): \(chat.body)")
                #expect((chat.json["error"] as? [String: Any])?["param"] as? String == name)
                let embedding = try await TestClient.post("\(fixture.gateway.url)/v1/embeddings", #"{"model":"fast","input":"hi","\#(name)":\#(value)}"#)
                #expect(embedding.status == 400, "embeddings \(name)=\(value): \(embedding.body)")
            }
            let messages = try await TestClient.post(
                "\(fixture.gateway.url)/v1/messages", #"{"model":"fast","max_tokens":\#(value),"messages":[{"role":"user","content":"hi"}]}"#,
                headers: [("anthropic-version", "2023-06-01")]
            )
            #expect(messages.status == 400, "messages \(value): \(messages.body)")
            #expect(messages.json["type"] as? String == "error")
        }
        #expect(try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", TestClient.chat(model: "fast")).status == 200)
        await fixture.stop()
    }

    @Test func aKeyHoldersHugeMaxTokensIsRefusedBeforeItsReservation() async throws {
        let fixture = try await GatewayFixture.start { config in
            config.server.anonymous = false
            var tenant = TenantSettings(name: "acme")
            tenant.limits.tokensPerMinute = 1_000_000
            tenant.keys = [DeclaredKey(name: "ci", secret: Secret("sk-sy-hostile-numbers-test-key-000000000000"))]
            config.tenants = [tenant]
        }
        let key = [("authorization", "Bearer sk-sy-hostile-numbers-test-key-000000000000")]
        let refused = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", TestClient.chat(model: "fast", extra: #","max_tokens":9223372036854775807"#), headers: key)
        #expect(refused.status == 400)
        let served = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", TestClient.chat(model: "fast", extra: #","max_tokens":16"#), headers: key)
        #expect(served.status == 200)
        await fixture.stop()
    }

    /// A raw HTTP/1.1 answer with `body`.
    private static func answer(_ body: String, status: String = "200 OK", headers: String = "content-type: application/json\r\n") -> String {
        "HTTP/1.1 \(status)\r\n\(headers)content-length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    private static func completion(usage value: String) -> String {
        #"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":\#(value),"completion_tokens":\#(value),"total_tokens":\#(value)}}"#
    }

    private static func stream(usage value: String) -> String {
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"ok\"},\"finish_reason\":\"stop\"}]}\n\n"
            + "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":\(value),\"completion_tokens\":\(value),\"total_tokens\":\(value)}}\n\n"
            + "data: [DONE]\n\n"
    }

    /// A gateway on `lane` whose route `raw` leads to an upstream answering `answer` on every
    /// connection, priced (gpt-4o-mini is in the built-in table), so the count is multiplied by a price
    /// too. `body` sends one chat completion and one Anthropic message (translated for the upstream),
    /// `chats` of which the lane serves (one more chat follows).
    private func withRawUpstream(_ answer: String, lane: Lane, chats: Int = 2, _ body: (GatewayFixture) async throws -> Void) async throws {
        let upstream = try await RawUpstream(answer: answer, closeAfterAnswer: true)
        let provider = ProviderSettings(id: "raw", kind: .openAICompatible, baseURL: "http://127.0.0.1:\(upstream.port)/v1")
        let fixture = try await GatewayFixture.start(
            extraProviders: [provider], extraRoutes: [RouteSettings(alias: "raw", targets: [RouteTarget(provider: "raw", model: "gpt-4o-mini")])], lane: lane
        )
        try await body(fixture)
        #expect(try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", TestClient.chat(model: "fast")).status == 200)
        try await fixture.expectServed(chats: chats + 1)
        await fixture.stop()
        await upstream.stop()
    }

    @Test(arguments: Lane.allCases, ["9223372036854775808", "9223372036854775807", "100000000000000000", "1e300"])
    func anUpstreamsHugeUsageIsClampedOnBothLanes(lane: Lane, value: String) async throws {
        try await self.withRawUpstream(Self.answer(Self.completion(usage: value)), lane: lane) { fixture in
            // An OpenAI client, then an Anthropic client (translated).
            let fast = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", TestClient.chat(model: "raw"))
            #expect(fast.status == 200)
            #expect(Double(fast.headers.first(name: "x-switchyard-cost-usd") ?? "") != nil)
            let translated = try await TestClient.post(
                "\(fixture.gateway.url)/v1/messages", #"{"model":"raw","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#,
                headers: [("anthropic-version", "2023-06-01")]
            )
            #expect(translated.status == 200)
            let usage = translated.json["usage"] as? [String: Any]
            #expect((usage?["output_tokens"] as? Int).map { $0 <= UntrustedNumber.tokenCeiling } == true)
        }
    }

    @Test(arguments: Lane.allCases, ["9223372036854775807", "100000000000000000"])
    func aStreamChunksHugeUsageIsClampedOnBothLanes(lane: Lane, value: String) async throws {
        try await self.withRawUpstream(Self.answer(Self.stream(usage: value), headers: "content-type: text/event-stream\r\n"), lane: lane) { fixture in
            let fast = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", TestClient.chat(model: "raw", stream: true))
            #expect(fast.status == 200)
            #expect(fast.events.last == "[DONE]")
            let translated = try await TestClient.post(
                "\(fixture.gateway.url)/v1/messages", #"{"model":"raw","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
                headers: [("anthropic-version", "2023-06-01")]
            )
            #expect(translated.status == 200)
            #expect(translated.body.contains("message_stop"))
        }
    }

    @Test(arguments: Lane.allCases, ["retry-after-ms: 1e300\r\n", "retry-after: 1e20\r\n", "retry-after-ms: inf\r\nretry-after: 99999999999999999999999\r\n"])
    func anUpstreamsHugeRetryAfterRestsTheTargetAnHourAtMost(lane: Lane, headers: String) async throws {
        let error = #"{"error":{"message":"slow down","type":"rate_limit_error"}}"#
        // The Anthropic client finds the target resting: unroutable, the framework's 503.
        try await self.withRawUpstream(Self.answer(error, status: "429 Too Many Requests", headers: "content-type: application/json\r\n" + headers), lane: lane, chats: 1) { fixture in
            let fast = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", TestClient.chat(model: "raw"))
            #expect([429, 503].contains(fast.status), "\(fast.status) \(fast.body)")
            if let retry = fast.headers.first(name: "retry-after") { #expect((Int(retry) ?? .max) <= 3_600) }
            let translated = try await TestClient.post(
                "\(fixture.gateway.url)/v1/messages", #"{"model":"raw","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#,
                headers: [("anthropic-version", "2023-06-01")]
            )
            #expect([429, 503].contains(translated.status), "\(translated.status) \(translated.body)")
            if let retry = translated.headers.first(name: "retry-after") { #expect((Int(retry) ?? .max) <= 3_600) }
        }
    }

    /// A ledger row written by an older build, before counts were bounded, must not keep the gateway
    /// from starting: the start-up spend query overflowed SQLite's integer SUM.
    @Test func aStoredRowOfHugeCountsDoesNotStopTheNextStart() async throws {
        let stateDir = RunningService.temporaryStateDir()
        try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true)
        let store = try Store(path: (stateDir as NSString).appendingPathComponent("switchyard.sqlite"))
        let now = Date().timeIntervalSince1970
        let row = LedgerRow(
            requestId: "req_huge", at: now, tenant: "acme", keyId: "key_x", route: "fast", provider: "sim", model: "m", outcome: "success",
            status: 200, inputTokens: 1 << 62, cachedTokens: 0, outputTokens: 1 << 62, reasoningTokens: 0, costUsd: 1e300, latencyMs: 1,
            ttftMs: nil, cache: "miss", attempts: 1
        )
        try await store.append([row, LedgerRow(
            requestId: "req_huge_2", at: now, tenant: "acme", keyId: "key_x", route: "fast", provider: "sim", model: "m", outcome: "success",
            status: 200, inputTokens: Int.max, cachedTokens: 0, outputTokens: Int.max, reasoningTokens: 0, costUsd: 1, latencyMs: 1,
            ttftMs: nil, cache: "miss", attempts: 1
        )][...])
        let spend = try await store.spend(since: now - 60, monthStart: now - 120)
        #expect(spend.first?.tokens == Int.max)
        let usage = try await store.usage(tenant: nil, since: now - 60)
        #expect(usage.first?.inputTokens == Int.max)

        let fixture = try await GatewayFixture.start { $0.server.stateDir = stateDir }
        #expect(try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", TestClient.chat(model: "fast")).status == 200)
        await fixture.stop()
    }

    @Test func theDatabaseIsTheOwnersAloneInAnOpenDirectory() async throws {
        let stateDir = RunningService.temporaryStateDir()
        try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        let path = (stateDir as NSString).appendingPathComponent("switchyard.sqlite")
        let store = try Store(path: path)
        try await store.audit(actor: "test", action: "probe", target: nil, detail: "", ok: true)
        let files = [path, path + "-wal", path + "-shm"]
        #expect(files.allSatisfy { FileManager.default.fileExists(atPath: $0) })
        for file in files {
            let mode = try #require(try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int)
            #expect(mode & 0o077 == 0, "\(file) has mode \(String(mode, radix: 8))")
        }
        withExtendedLifetime(store) {}
    }

    @Test func aKeysIdRevealsNothingOfItsSecret() {
        for _ in 0..<20 {
            let (key, record) = KeyRing.make(tenant: "t", name: "n", limits: LimitSettings(), models: [], expires: nil, now: 1_700_000_000)
            let secret = key.dropFirst(KeyRing.keyPrefix.count).lowercased()
            let id = record.id.dropFirst("key_".count)
            // No run of four or more of the id's characters appears in the secret beyond chance.
            let windows = (0...(id.count - 4)).map { id.dropFirst($0).prefix(4) }
            #expect(windows.filter { secret.contains($0) }.count <= 1, "\(record.id) against \(key)")
            #expect(!secret.hasSuffix(String(id.prefix(10))))
        }
    }
}
