import AsyncHTTPClient
import Engine
import Foundation
import NIOCore
import RedisTestSupport
import Testing
@testable import Server

/// The gateway started on a loopback port in front of the simulator, driven over real HTTP.
@Suite(.serialized)
struct GatewayTests {
    @Test(arguments: Lane.allCases)
    func nonStreamingChatRewritesTheAliasAndCarriesUsageAndHeaders(lane: Lane) async throws {
        let fixture = try await GatewayFixture.start(lane: lane)
        let reply = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", TestClient.chat(model: "fast"))
        #expect(reply.status == 200)
        #expect(reply.json["model"] as? String == "gpt-4o-mini-2024-07-18")
        let usage = try #require(reply.json["usage"] as? [String: Any])
        #expect(usage["prompt_tokens"] as? Int ?? 0 > 0)
        #expect(usage["completion_tokens"] as? Int ?? 0 > 0)
        #expect(reply.headers.first(name: "x-request-id")?.hasPrefix("req_") == true)
        #expect(Int(reply.headers.first(name: "x-switchyard-overhead-us") ?? "") != nil)
        #expect(reply.headers.first(name: "x-switchyard-provider") == "sim")
        try await fixture.expectServed(chats: 1)
        await fixture.stop()
    }

    @Test(arguments: Lane.allCases)
    func streamingChatEndsWithDoneAndStripsTheUsageChunkUnlessAsked(lane: Lane) async throws {
        let fixture = try await GatewayFixture.start(lane: lane)
        let url = "\(fixture.gateway.url)/v1/chat/completions"
        let plain = try await TestClient.post(url, TestClient.chat(model: "fast", stream: true))
        #expect(plain.status == 200)
        #expect(plain.headers.first(name: "content-type") == "text/event-stream")
        #expect(plain.events.last == "[DONE]")
        #expect(!plain.body.contains("\"usage\""))
        #expect(plain.events.dropLast().allSatisfy { $0.contains("\"model\":\"gpt-4o-mini-2024-07-18\"") })

        let withUsage = try await TestClient.post(url, TestClient.chat(model: "fast", stream: true, extra: #","stream_options":{"include_usage":true}"#))
        let usageEvent = try #require(withUsage.events.first { $0.contains("\"usage\"") })
        #expect(usageEvent.contains("\"choices\":[]"))

        // The streamed text is the non-streamed text: the simulator is deterministic and nothing is lost on the way.
        let whole = try await TestClient.post(url, TestClient.chat(model: "fast"))
        let message = (whole.json["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any]
        let streamed = plain.events.dropLast().compactMap { event -> String? in
            let chunk = try? JSONSerialization.jsonObject(with: Data(event.utf8)) as? [String: Any]
            let delta = ((chunk?["choices"] as? [[String: Any]])?.first)?["delta"] as? [String: Any]
            return delta?["content"] as? String
        }.joined()
        #expect(streamed == message?["content"] as? String)
        try await fixture.expectServed(chats: 3)
        await fixture.stop()
    }

    @Test(arguments: Lane.allCases)
    func aClientRequestIDIsKept(lane: Lane) async throws {
        let fixture = try await GatewayFixture.start(lane: lane)
        let reply = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", TestClient.chat(model: "fast"), headers: [("x-request-id", "trace-abc-123")])
        #expect(reply.headers.first(name: "x-request-id") == "trace-abc-123")
        try await fixture.expectServed(chats: 1)
        await fixture.stop()
    }

    @Test func listsModelsAndAnswersProbes() async throws {
        let fixture = try await GatewayFixture.start(routes: ["b-model": "x", "a-model": "y"])
        let models = try await TestClient.get("\(fixture.gateway.url)/v1/models")
        #expect((models.json["data"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == ["a-model", "b-model"])
        #expect(try await TestClient.get("\(fixture.gateway.url)/healthz").status == 200)
        #expect(try await TestClient.get("\(fixture.gateway.url)/readyz").status == 200)
        let unknown = try await TestClient.get("\(fixture.gateway.url)/v1/nothing")
        #expect(unknown.status == 404)
        #expect((unknown.json["error"] as? [String: Any])?["code"] as? String == "route_not_found")
        await fixture.stop()
    }

    /// `server.shutdown_delay`: between SIGTERM and closing, the listener still takes requests and
    /// `/readyz` says 503 (load balancers stop sending); a stream begun before finishes whole.
    @Test(arguments: Lane.allCases)
    func aStoppingGatewayIsNotReadyForItsDelayAndFinishesItsStreams(lane: Lane) async throws {
        let fixture = try await GatewayFixture.start(routes: ["slow": "gpt-4o-mini:ttft=1500ms"], lane: lane) { $0.server.shutdownDelay = .seconds(1) }
        let url = fixture.gateway.url
        let stream = Task {
            try await TestClient.post("\(url)/v1/chat/completions", #"{"model":"slow","stream":true,"messages":[{"role":"user","content":"hi"}]}"#)
        }
        #expect(try await eventually { fixture.simulatorRouter.activeRequests.current > 0 })
        let stopping = Task { await fixture.gateway.stop() }
        #expect(try await eventually { (try? await TestClient.get("\(url)/readyz"))?.status == 503 })
        let answer = try await stream.value
        #expect(answer.status == 200 && answer.body.contains("[DONE]"), "\(answer.body)")
        await stopping.value
        #expect(!Self.accepts(port: fixture.gateway.port), "the listener still takes connections after the stop")
        await fixture.simulator.stop()
    }

    /// Whether something listens on 127.0.0.1:`port` (one plain connect: an HTTP client retries a refusal).
    private static func accepts(port: Int) -> Bool {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    // MARK: Bad input

    @Test(arguments: Lane.allCases)
    func malformedJSONIsA400InTheOpenAIShape(lane: Lane) async throws {
        let fixture = try await GatewayFixture.start(lane: lane)
        let reply = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", #"{"model":"fast","messages":["#)
        #expect(reply.status == 400)
        let error = try #require(reply.json["error"] as? [String: Any])
        #expect(error["type"] as? String == "invalid_request_error")
        #expect(error["code"] as? String == "malformed_request")
        #expect(reply.headers.first(name: "x-request-id") != nil)
        try await fixture.expectServed(chats: 0, left: 1, because: .invalidBody)
        await fixture.stop()
    }

    @Test(arguments: Lane.allCases)
    func aBodyOverTheLimitIsA413(lane: Lane) async throws {
        let fixture = try await GatewayFixture.start(maxBody: 1024, lane: lane)
        let padding = String(repeating: "x", count: 4096)
        let reply = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", TestClient.chat(model: "fast", extra: #","pad":"\#(padding)""#))
        #expect(reply.status == 413)
        #expect((reply.json["error"] as? [String: Any])?["code"] as? String == "body_too_large")
        try await fixture.expectServed(chats: 0, left: 1, because: .bodyTooLarge)
        await fixture.stop()
    }

    @Test(arguments: Lane.allCases)
    func anUnknownModelIsA404ListingTheAliases(lane: Lane) async throws {
        let fixture = try await GatewayFixture.start(routes: ["fast": "m", "smart": "n"], lane: lane)
        let reply = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", TestClient.chat(model: "gpt-7"))
        #expect(reply.status == 404)
        let message = (reply.json["error"] as? [String: Any])?["message"] as? String ?? ""
        #expect(message.contains("'gpt-7'") && message.contains("fast, smart"))
        try await fixture.expectServed(chats: 0, left: 1, because: .unroutable)
        await fixture.stop()
    }

    @Test(arguments: Lane.allCases)
    func anUnreachableUpstreamIsA502(lane: Lane) async throws {
        let dead = ProviderSettings(id: "dead", kind: .openAICompatible, baseURL: "http://127.0.0.1:1/v1")
        let fixture = try await GatewayFixture.start(
            extraProviders: [dead], extraRoutes: [RouteSettings(alias: "gone", targets: [RouteTarget(provider: "dead", model: "m")])], lane: lane
        )
        let reply = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", TestClient.chat(model: "gone"))
        #expect(reply.status == 502)
        #expect((reply.json["error"] as? [String: Any])?["code"] as? String == "upstream_unreachable")
        try await fixture.expectServed(chats: 1)
        await fixture.stop()
    }

    // MARK: Timeouts

    @Test(arguments: Lane.allCases, UpstreamTransport.allCases)
    func theFirstByteTimeoutIsA504(lane: Lane, upstream: UpstreamTransport) async throws {
        let timeouts = UpstreamTimeouts(connect: .seconds(1), firstByte: .milliseconds(300), idle: .seconds(5), total: .seconds(10))
        let fixture = try await GatewayFixture.start(routes: ["stalls": "m:fault=stall:stall=1500ms"], timeouts: timeouts, lane: lane, upstream: upstream)
        let started = ContinuousClock.now
        let reply = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", TestClient.chat(model: "stalls"))
        #expect(reply.status == 504)
        let message = (reply.json["error"] as? [String: Any])?["message"] as? String ?? ""
        #expect(message.contains("first_byte"))
        #expect(ContinuousClock.now - started < .seconds(1.4))
        try await fixture.expectServed(chats: 1)
        await fixture.stop()
    }

    @Test(arguments: Lane.allCases, UpstreamTransport.allCases)
    func theIdleTimeoutEndsAStalledStreamWithAnErrorEvent(lane: Lane, upstream: UpstreamTransport) async throws {
        let timeouts = UpstreamTimeouts(connect: .seconds(1), firstByte: .seconds(5), idle: .milliseconds(300), total: .seconds(10))
        let fixture = try await GatewayFixture.start(routes: ["stalls": "m:fault=stall:stall=1500ms"], timeouts: timeouts, lane: lane, upstream: upstream)
        let reply = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", TestClient.chat(model: "stalls", stream: true))
        #expect(reply.status == 200)
        #expect(!reply.events.contains("[DONE]"))
        let last = try #require(reply.events.last)
        #expect(last.contains("\"error\"") && last.contains("upstream_timeout") && last.contains("idle"))
        try await fixture.expectServed(chats: 1)
        await fixture.stop()
    }

    @Test(arguments: Lane.allCases, UpstreamTransport.allCases)
    func theTotalTimeoutEndsASlowStream(lane: Lane, upstream: UpstreamTransport) async throws {
        let timeouts = UpstreamTimeouts(connect: .seconds(1), firstByte: .seconds(5), idle: .seconds(5), total: .milliseconds(400))
        let fixture = try await GatewayFixture.start(routes: ["slow": "m:tps=10"], timeouts: timeouts, lane: lane, upstream: upstream)
        let reply = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", TestClient.chat(model: "slow", stream: true))
        let last = try #require(reply.events.last)
        #expect(last.contains("upstream_timeout") && last.contains("total"))
        try await fixture.expectServed(chats: 1)
        await fixture.stop()
    }

    // MARK: Upstream failures

    @Test(arguments: Lane.allCases, UpstreamTransport.allCases)
    func anUpstreamRateLimitPassesThroughWithRetryAfter(lane: Lane, upstream: UpstreamTransport) async throws {
        let fixture = try await GatewayFixture.start(routes: ["limited": "m:fault=429"], lane: lane, upstream: upstream)
        let reply = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", TestClient.chat(model: "limited"))
        #expect(reply.status == 429)
        #expect(reply.headers.first(name: "retry-after") == "1")
        #expect((reply.json["error"] as? [String: Any])?["code"] as? String == "rate_limit_exceeded")
        try await fixture.expectServed(chats: 1)
        await fixture.stop()
    }

    @Test(arguments: Lane.allCases, UpstreamTransport.allCases)
    func anUpstreamServerErrorKeepsItsStatusAndBody(lane: Lane, upstream: UpstreamTransport) async throws {
        let fixture = try await GatewayFixture.start(routes: ["broken": "m:fault=500"], lane: lane, upstream: upstream)
        let reply = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", TestClient.chat(model: "broken"))
        #expect(reply.status == 500)
        #expect((reply.json["error"] as? [String: Any])?["type"] as? String == "server_error")
        try await fixture.expectServed(chats: 1)
        await fixture.stop()
    }

    @Test(arguments: Lane.allCases, UpstreamTransport.allCases)
    func aMalformedUpstreamBodyIsA502(lane: Lane, upstream: UpstreamTransport) async throws {
        let fixture = try await GatewayFixture.start(routes: ["garbage": "m:fault=malformed"], lane: lane, upstream: upstream)
        let reply = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", TestClient.chat(model: "garbage"))
        #expect(reply.status == 502)
        #expect((reply.json["error"] as? [String: Any])?["code"] as? String == "upstream_malformed")
        try await fixture.expectServed(chats: 1)
        await fixture.stop()
    }

    @Test(arguments: Lane.allCases, UpstreamTransport.allCases.flatMap { upstream in
        [("m:fault=cut", "upstream", upstream), ("m:fault=malformed", "upstream_malformed", upstream)]
    })
    func aBrokenStreamEndsWithAnErrorEventNeverWithDone(lane: Lane, _ broken: (model: String, expected: String, upstream: UpstreamTransport)) async throws {
        let (model, expected, upstream) = broken
        let fixture = try await GatewayFixture.start(routes: ["bad": model], lane: lane, upstream: upstream)
        let reply = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", TestClient.chat(model: "bad", stream: true))
        #expect(reply.status == 200)
        #expect(!reply.events.contains("[DONE]"))
        let last = try #require(reply.events.last)
        #expect(last.hasPrefix("{\"error\":") && last.contains(expected))
        // Every event before the error is whole, valid JSON.
        for event in reply.events.dropLast() {
            #expect((try? JSONSerialization.jsonObject(with: Data(event.utf8))) != nil)
        }
        try await fixture.expectServed(chats: 1)
        await fixture.stop()
    }

    @Test(arguments: Lane.allCases, UpstreamTransport.allCases)
    func anUpstreamErrorEventIsForwarded(lane: Lane, upstream: UpstreamTransport) async throws {
        let fixture = try await GatewayFixture.start(routes: ["flaky": "m:fault=stream-error"], lane: lane, upstream: upstream)
        let reply = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", TestClient.chat(model: "flaky", stream: true))
        let last = try #require(reply.events.last)
        #expect(last.contains("Overloaded (simulated)"))
        #expect(!reply.events.contains("[DONE]"))
        try await fixture.expectServed(chats: 1)
        await fixture.stop()
    }

    // MARK: Cancellation

    @Test(arguments: Lane.allCases, UpstreamTransport.allCases)
    func aClientThatDisconnectsCancelsTheUpstreamStream(lane: Lane, upstream: UpstreamTransport) async throws {
        let fixture = try await GatewayFixture.start(routes: ["slow": "m:tps=4"], lane: lane, upstream: upstream)
        let gauge = fixture.simulatorRouter.activeStreams
        let reader = Task {
            var request = HTTPClientRequest(url: "\(fixture.gateway.url)/v1/chat/completions")
            request.method = .POST
            request.body = .bytes(ByteBuffer(string: TestClient.chat(model: "slow", stream: true)))
            let response = try await TestClient.client.execute(request, timeout: .seconds(10))
            for try await _ in response.body {}
        }
        // Wait until the upstream stream is running, then hang up.
        for _ in 0..<100 where gauge.current == 0 { try await Task.sleep(for: .milliseconds(20)) }
        #expect(gauge.current == 1)
        reader.cancel()
        // The whole stream would take about 5 s at 4 tokens/s; cancellation must reach the simulator long before.
        for _ in 0..<100 where gauge.current > 0 { try await Task.sleep(for: .milliseconds(20)) }
        #expect(gauge.current == 0)
        try await fixture.expectServed(chats: 1)
        await fixture.stop()
    }
}

@Suite(.serialized)
struct OtherEndpointTests {
    @Test func embeddingsPassThroughWithTheModelRewritten() async throws {
        let fixture = try await GatewayFixture.start(routes: ["embed": "text-embedding-3-small"])
        let reply = try await TestClient.post("\(fixture.gateway.url)/v1/embeddings", #"{"model":"embed","input":["a b","c d"],"dimensions":16}"#)
        #expect(reply.status == 200)
        #expect(reply.json["model"] as? String == "text-embedding-3-small")
        #expect((reply.json["data"] as? [[String: Any]])?.count == 2)
        let unknown = try await TestClient.post("\(fixture.gateway.url)/v1/embeddings", #"{"model":"nope","input":"x"}"#)
        #expect(unknown.status == 404)
        await fixture.stop()
    }

    @Test func messagesErrorsComeInAnthropicsEnvelope() async throws {
        let fixture = try await GatewayFixture.start()
        let malformed = try await TestClient.post("\(fixture.gateway.url)/v1/messages", "{")
        #expect(malformed.status == 400)
        #expect(malformed.json["type"] as? String == "error")
        #expect((malformed.json["error"] as? [String: Any])?["type"] as? String == "invalid_request_error")
        #expect(malformed.headers.first(name: "request-id") != nil)
        let unknown = try await TestClient.post("\(fixture.gateway.url)/v1/messages", #"{"model":"nope","max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#)
        #expect(unknown.status == 404)
        #expect((unknown.json["error"] as? [String: Any])?["type"] as? String == "not_found_error")
        await fixture.stop()
    }

    @Test func countTokensIsAnEstimateSaidSo() async throws {
        let fixture = try await GatewayFixture.start()
        let reply = try await TestClient.post("\(fixture.gateway.url)/v1/messages/count_tokens", #"{"model":"fast","messages":[{"role":"user","content":"Hello there, how are you?"}]}"#)
        #expect(reply.status == 200)
        #expect(reply.json["input_tokens"] as? Int ?? 0 > 0)
        #expect(reply.headers.first(name: "x-switchyard-estimate") == "true")
        await fixture.stop()
    }
}

/// A gateway whose route `gpt` goes to an Azure provider (classic API) served by the simulator.
enum AzureSetup {
    static func start(apiKey: Secret?, deployment: String, lane: Lane = .fast) async throws -> (simulator: RunningService, gateway: RunningService) {
        // The base URL is the simulator's, known only once it runs: start it first, then point Azure at it.
        let simulator = try await RunningService.simulator(SimulatorRouter(settings: SimulatorSettings(timeToFirstToken: .zero, tokensPerSecond: 0)))
        var azure = ProviderSettings(id: "azure", kind: .azureOpenAI, baseURL: "\(simulator.url)/openai", apiKey: apiKey)
        azure.apiVersion = "2024-10-21"
        var config = GatewayConfig()
        config.server.fastLane = lane == .fast
        config.providers = [azure]
        config.routes = [RouteSettings(alias: "gpt", targets: [RouteTarget(provider: "azure", model: deployment)])]
        return (simulator, try await RunningService.gateway(config))
    }
}

@Suite(.serialized)
struct AzureTests {
    /// Azure's classic API on both lanes: the deployment in the path, the version in the query.
    @Test(arguments: Lane.allCases)
    func azureClassicURLsCarryTheDeploymentAndVersionAndTheKeyInItsHeader(lane: Lane) async throws {
        let (simulator, gateway) = try await AzureSetup.start(apiKey: Secret("azure-key-123"), deployment: "my-deployment", lane: lane)
        let reply = try await TestClient.post("\(gateway.url)/v1/chat/completions", TestClient.chat(model: "gpt"))
        #expect(reply.status == 200)
        #expect(reply.json["model"] as? String == "my-deployment")
        let stream = try await TestClient.post("\(gateway.url)/v1/chat/completions", TestClient.chat(model: "gpt", stream: true))
        #expect(stream.events.last == "[DONE]")
        try await GatewayOnLane(gateway: gateway, lane: lane).expectServed(chats: 2)
        await gateway.stop()
        await simulator.stop()
    }
}

/// Requests translated between dialects, whole and streamed, on both lanes: an OpenAI client to each
/// other upstream dialect, an Anthropic client to an OpenAI-compatible one. Usage and the end of the
/// stream come through in the client's dialect.
@Suite(.serialized)
struct TranslationLaneTests {
    @Test(arguments: Lane.allCases, [WireFormat.anthropicMessages, .geminiGenerateContent, .ollamaChat])
    func anOpenAIClientIsServedByEveryUpstreamDialect(lane: Lane, wire: WireFormat) async throws {
        let fixture = try await GatewayFixture.start(routes: ["m": "model-1"], wire: wire, lane: lane)
        let url = "\(fixture.gateway.url)/v1/chat/completions"
        let whole = try await TestClient.post(url, TestClient.chat(model: "m"))
        #expect(whole.status == 200, "\(whole.body)")
        #expect(((whole.json["usage"] as? [String: Any])?["completion_tokens"] as? Int ?? 0) > 0, "\(whole.body)")
        let stream = try await TestClient.post(url, TestClient.chat(model: "m", stream: true, extra: #","stream_options":{"include_usage":true}"#))
        #expect(stream.status == 200 && stream.events.last == "[DONE]", "\(stream.body.suffix(300))")
        #expect(stream.events.contains { $0.contains(#""usage":{"#) && $0.contains("completion_tokens") }, "\(stream.body.suffix(300))")
        try await fixture.expectServed(chats: 2)
        await fixture.stop()
    }

    @Test(arguments: Lane.allCases)
    func anAnthropicClientIsServedByAnOpenAIUpstream(lane: Lane) async throws {
        let fixture = try await GatewayFixture.start(routes: ["m": "gpt-4o-mini"], lane: lane)
        let url = "\(fixture.gateway.url)/v1/messages"
        let body = #"{"model":"m","max_tokens":32,"messages":[{"role":"user","content":"Hello there"}]}"#
        let whole = try await TestClient.post(url, body, headers: [("anthropic-version", "2023-06-01")])
        #expect(whole.status == 200 && whole.json["type"] as? String == "message", "\(whole.body)")
        #expect(((whole.json["usage"] as? [String: Any])?["output_tokens"] as? Int ?? 0) > 0)
        let stream = try await TestClient.post(url, body.replacingOccurrences(of: #""max_tokens":32"#, with: #""max_tokens":32,"stream":true"#))
        #expect(stream.status == 200 && stream.body.contains("event: message_stop"), "\(stream.body.suffix(300))")
        try await fixture.expectServed(chats: 2)
        await fixture.stop()
    }
}

@Suite(.serialized)
struct ImageURLTests {
    static func ask(imageURL: String) -> String {
        #"{"model":"local","messages":[{"role":"user","content":[{"type":"text","text":"What is this?"},{"type":"image_url","image_url":{"url":"\#(imageURL)"}}]}]}"#
    }

    /// Images to fetch are the framework lane's on either setting of the switch, which must not change the answer.
    @Test(arguments: Lane.allCases, [WireFormat.ollamaChat, .geminiGenerateContent])
    func imageURLsAreFetchedForInlineOnlyUpstreamsWhenAllowed(lane: Lane, _ wire: WireFormat) async throws {
        // The simulator listens on loopback, which only tests may allow.
        let fixture = try await GatewayFixture.start(routes: ["local": "m"], wire: wire, imagePolicy: AddressPolicy(allowsLoopback: true), lane: lane) {
            $0.server.fetchImageURLs = true
        }
        let reply = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", Self.ask(imageURL: "\(fixture.simulator.url)/images/pixel.png"))
        #expect(reply.status == 200)
        // The simulators count an inline image as 85 prompt tokens: the image reached the upstream.
        #expect((reply.json["usage"] as? [String: Any])?["prompt_tokens"] as? Int ?? 0 > 85)
        let notImage = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", Self.ask(imageURL: "\(fixture.simulator.url)/healthz"))
        #expect(notImage.status == 400)
        #expect((notImage.json["error"] as? [String: Any])?["message"] as? String == "Could not fetch image 1.")
        try await fixture.expectServed(chats: 0, left: 2, because: .fetchesImages)
        await fixture.stop()
    }

    @Test func withoutPermissionImageURLsAreRefusedWithTheWayOut() async throws {
        let fixture = try await GatewayFixture.start(routes: ["local": "m"], wire: .ollamaChat)
        let reply = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", Self.ask(imageURL: "\(fixture.simulator.url)/images/pixel.png"))
        #expect(reply.status == 400)
        #expect(((reply.json["error"] as? [String: Any])?["message"] as? String)?.contains("fetch_image_urls") == true)
        await fixture.stop()
    }
}

@Suite(.serialized)
struct RoutingErrorTests {
    @Test func wrongMethodsAre405AndAnthropicPathsAnswerInItsEnvelope() async throws {
        let fixture = try await GatewayFixture.start()
        let get = try await TestClient.get("\(fixture.gateway.url)/v1/chat/completions")
        #expect(get.status == 405)
        #expect((get.json["error"] as? [String: Any])?["code"] as? String == "method_not_allowed")
        var put = HTTPClientRequest(url: "\(fixture.gateway.url)/v1/messages")
        put.method = .PUT
        let anthropic = try await TestClient.send(put)
        #expect(anthropic.status == 405)
        #expect(anthropic.json["type"] as? String == "error")
        await fixture.stop()
    }
}

@Suite(.serialized)
struct UpstreamCredentialTests {
    @Test func anUpstreamThatRefusesTheGatewaysKeyIsA502NotTheClientsProblem() async throws {
        // The simulated Azure endpoint answers 401 without an `api-key`: this provider has none.
        let (simulator, gateway) = try await AzureSetup.start(apiKey: nil, deployment: "d")
        let openAI = try await TestClient.post("\(gateway.url)/v1/chat/completions", TestClient.chat(model: "gpt"))
        #expect(openAI.status == 502)
        #expect((openAI.json["error"] as? [String: Any])?["code"] as? String == "upstream_credentials")
        let anthropic = try await TestClient.post("\(gateway.url)/v1/messages", #"{"model":"gpt","max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#)
        #expect(anthropic.status == 502)
        #expect(((anthropic.json["error"] as? [String: Any])?["message"] as? String)?.contains("providers.azure.api_key") == true)
        await gateway.stop()
        await simulator.stop()
    }
}
