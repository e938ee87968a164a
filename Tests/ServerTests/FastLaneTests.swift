#if canImport(Glibc)
import Glibc
#endif
import AsyncHTTPClient
import Engine
import Foundation
import NIOCore
import Testing
@testable import Server

/// The fast lane: plain chat completions answered on the event loop, everything else by the framework,
/// in order on each connection, over the loop's own upstream connections.
@Suite(.serialized)
struct FastLaneTests {
    @Test func theFastLaneTakesPlainChatAndLeavesTheRestToTheFramework() async throws {
        let fixture = try await GatewayFixture.start()
        let url = "\(fixture.gateway.url)/v1/chat/completions"
        let plain = try await TestClient.post(url, TestClient.chat(model: "fast"))
        #expect(plain.status == 200)
        #expect(plain.headers.first(name: "x-switchyard-attempts") == "1")
        #expect(plain.headers.first(name: "content-length") == String(plain.body.utf8.count))
        #expect(try await fixture.laneCounts().fast == 1)

        let stream = try await TestClient.post(url, TestClient.chat(model: "fast", stream: true))
        #expect(stream.headers.first(name: "content-type") == "text/event-stream")
        #expect(stream.events.last == "[DONE]")
        #expect(try await fixture.laneCounts().fast == 2)

        // A broken body, an unknown model and an embedding are the framework's: the same answers as ever.
        let malformed = try await TestClient.post(url, #"{"model":"fast","messages":["#)
        #expect(malformed.status == 400)
        let unknown = try await TestClient.post(url, TestClient.chat(model: "nope"))
        #expect(unknown.status == 404)
        let message = (unknown.json["error"] as? [String: Any])?["message"] as? String
        #expect(message?.contains("fast") == true)
        let embedding = try await TestClient.post("\(fixture.gateway.url)/v1/embeddings", #"{"model":"fast","input":"hi"}"#)
        #expect(embedding.status == 200)
        #expect(try await fixture.laneCounts().fast == 2)
        await fixture.stop()
    }

    @Test(arguments: Lane.allCases)
    func pipelinedRequestsAreAnsweredInOrderAcrossBothLanes(lane: Lane) async throws {
        let fixture = try await GatewayFixture.start(lane: lane)
        let chat = TestClient.chat(model: "fast")
        let post = { (id: String) in
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-request-id: \(id)\r\ncontent-length: \(chat.utf8.count)\r\n\r\n\(chat)"
        }
        let connection = try RawConnection(port: fixture.gateway.port)
        try connection.send(post("first") + "GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n" + post("third") + "GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        var answers: [RawConnection.Response] = []
        for _ in 0..<4 { answers.append(try await connection.readResponse()) }
        #expect(answers.map(\.status) == [200, 200, 200, 200])
        #expect(answers[0].headers["x-request-id"] == "first" && answers[0].body.contains("chat.completion"))
        #expect(answers[1].body.contains(#""object":"list""#))
        #expect(answers[2].headers["x-request-id"] == "third" && answers[2].body.contains("chat.completion"))
        #expect(answers[3].body.contains(#""status":"ok""#))

        // Two fast requests back to back (the second waits behind the first), then one more later:
        // the connection is still read.
        try connection.send(post("fifth") + post("sixth"))
        #expect(try await connection.readResponse().headers["x-request-id"] == "fifth")
        #expect(try await connection.readResponse().headers["x-request-id"] == "sixth")
        try connection.send(post("seventh"))
        #expect(try await connection.readResponse().headers["x-request-id"] == "seventh")
        // Five chat completions: the third may wait behind the framework's answer to the second.
        try await fixture.expectServed(chats: 5, someLeftBecause: .behindFrameworkAnswer)
        await fixture.stop()
    }

    @Test(arguments: Lane.allCases)
    func pastItsConnectionLimitAnUpstreamIsWaitedFor(lane: Lane) async throws {
        let upstream = try await ScriptedUpstream(.init(answerAfter: .milliseconds(50)))
        var provider = ProviderSettings(id: "small", kind: .openAICompatible, baseURL: "http://127.0.0.1:\(upstream.port)/v1")
        provider.maxConnections = 1
        let fixture = try await GatewayFixture.start(
            extraProviders: [provider], extraRoutes: [RouteSettings(alias: "small", targets: [RouteTarget(provider: "small", model: "m")])], lane: lane
        )
        let url = "\(fixture.gateway.url)/v1/chat/completions"
        let replies = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<8 { group.addTask { try await TestClient.post(url, TestClient.chat(model: "small")).status } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(replies == Array(repeating: 200, count: 8))
        // The event loops' shares add up to the limit (one connection); a request arriving on a loop
        // without a share is the framework lane's, which calls over a loop with one: one connection in all.
        #expect(upstream.peakConnections == 1)
        #expect(upstream.answers == 8)
        try await fixture.expectServed(chats: 8, someLeftBecause: .noConnectionShare)
        await fixture.stop()
        await upstream.stop()
    }

    /// The regression: a POST the upstream read on a reused connection and then dropped without
    /// answering was sent again (it may have acted on it). It fails over under the retry matrix
    /// instead, which never sends it to the same target twice; this route has no other.
    @Test(arguments: Lane.allCases, ["/v1/chat/completions", "/v1/messages"])
    func aRequestTheUpstreamReadAndDroppedIsNotSentAgain(lane: Lane, _ path: String) async throws {
        // The upstream closes each connection 1 s after answering on it and ignores what arrives
        // meanwhile: long enough for the second request to arrive in that window on a busy machine.
        let upstream = try await ScriptedUpstream(.init(closeAfterAnswer: .seconds(1)))
        let provider = ProviderSettings(id: "brief", kind: .openAICompatible, baseURL: "http://127.0.0.1:\(upstream.port)/v1")
        let fixture = try await GatewayFixture.start(
            extraProviders: [provider], extraRoutes: [RouteSettings(alias: "brief", targets: [RouteTarget(provider: "brief", model: "m")])], lane: lane
        )
        let body = path == "/v1/messages" ? #"{"model":"brief","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"# : TestClient.chat(model: "brief")
        let post = "POST \(path) HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: \(body.utf8.count)\r\n\r\n\(body)"
        // One client connection, so both requests are served by one event loop and its pool.
        let connection = try RawConnection(port: fixture.gateway.port)
        try connection.send(post)
        #expect(try await connection.readResponse().status == 200)
        try connection.send(post)
        let second = try await connection.readResponse()
        #expect(second.status == 502, "\(second.body)")
        #expect(second.body.contains("could not be reached") || second.body.contains("upstream_unreachable"), "\(second.body)")
        #expect(upstream.requests == 2, "the dropped request was sent \(upstream.requests - 1) times")
        #expect(upstream.answers == 1)
        try await fixture.expectServed(chats: 2)
        await fixture.stop()
        await upstream.stop()
    }

    /// The fast lane frames upstream answers itself: every framing RFC 9112 allows is relayed whole, and
    /// what is not HTTP is the upstream's fault (502).
    @Test(arguments: Lane.allCases, [
        ("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n\(ScriptedUpstream.answer)", true, 200),
        ("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n10;x=y\r\n\(ScriptedUpstream.answer.prefix(16))\r\n"
            + "\(String(ScriptedUpstream.answer.utf8.count - 16, radix: 16))\r\n\(ScriptedUpstream.answer.dropFirst(16))\r\n0\r\nx-trailer: 1\r\n\r\n", false, 200),
        ("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: \(ScriptedUpstream.answer.utf8.count)\r\n\r\n\(ScriptedUpstream.answer)", false, 200),
        ("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!", true, 502),
        ("SSH-2.0-OpenSSH_9.2\r\n\r\n", true, 502),
    ] as [(answer: String, closes: Bool, status: Int)])
    func upstreamAnswersAreFramedAsRFC9112Says(lane: Lane, _ framed: (answer: String, closes: Bool, status: Int)) async throws {
        let (answer, closes, status) = framed
        let upstream = try await RawUpstream(answer: answer, closeAfterAnswer: closes)
        let provider = ProviderSettings(id: "raw", kind: .openAICompatible, baseURL: "http://127.0.0.1:\(upstream.port)/v1")
        let fixture = try await GatewayFixture.start(
            extraProviders: [provider], extraRoutes: [RouteSettings(alias: "raw", targets: [RouteTarget(provider: "raw", model: "m")])], lane: lane
        )
        for _ in 0..<2 {
            let reply = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", TestClient.chat(model: "raw"))
            #expect(reply.status == status)
            if status == 200 {
                #expect(reply.body == ScriptedUpstream.answer)
                #expect(reply.headers.first(name: "x-switchyard-cost-usd") != nil)
            } else {
                #expect((reply.json["error"] as? [String: Any])?["code"] as? String == "upstream_malformed")
            }
        }
        try await fixture.expectServed(chats: 2)
        await fixture.stop()
        await upstream.stop()
    }

    /// Bytes the fast lane will not frame make the connection Hummingbird's for good, which answers them
    /// and everything after them on that connection.
    @Test func aChunkedRequestBodyHandsTheConnectionToTheFramework() async throws {
        let fixture = try await GatewayFixture.start()
        let chat = TestClient.chat(model: "fast")
        let connection = try RawConnection(port: fixture.gateway.port)
        let half = chat.utf8.count / 2
        let first = String(chat.prefix(half)), second = String(chat.dropFirst(half))
        try connection.send(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
                + "\(String(first.utf8.count, radix: 16))\r\n\(first)\r\n\(String(second.utf8.count, radix: 16))\r\n\(second)\r\n0\r\n\r\n"
        )
        let answer = try await connection.readResponse()
        #expect(answer.status == 200 && answer.body.contains("chat.completion"))
        try connection.send("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: \(chat.utf8.count)\r\n\r\n\(chat)")
        #expect(try await connection.readResponse().status == 200)
        #expect(try await fixture.laneCounts().fast == 0)
        await fixture.stop()
    }

    @Test(arguments: Lane.allCases)
    func aRequestArrivingInPiecesIsCollected(lane: Lane) async throws {
        let fixture = try await GatewayFixture.start(lane: lane)
        let chat = TestClient.chat(model: "fast")
        let request = "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-request-id: pieces\r\ncontent-length: \(chat.utf8.count)\r\n\r\n\(chat)"
        let connection = try RawConnection(port: fixture.gateway.port)
        // The blank line split in two, then the body in two: four reads on the gateway's side.
        let cuts = [request.utf8.count - chat.utf8.count - 2, request.utf8.count - chat.utf8.count / 2]
        var sent = request.startIndex
        for cut in cuts + [request.utf8.count] {
            let end = request.utf8.index(request.startIndex, offsetBy: cut)
            try connection.send(String(request[sent..<end]))
            sent = end
            try await Task.sleep(for: .milliseconds(30))
        }
        let answer = try await connection.readResponse()
        #expect(answer.status == 200 && answer.headers["x-request-id"] == "pieces")
        try await fixture.expectServed(chats: 1)
        await fixture.stop()
    }

    @Test(arguments: Lane.allCases)
    func aLastEventWithoutItsBlankLineStillReachesTheClient(lane: Lane) async throws {
        // SSE allows the last event to end with the body, without its blank line.
        let chunk = #"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":"stop"}]}"#
        let upstream = try await ScriptedUpstream(.init(events: "data: \(chunk)\n\ndata: [DONE]"))
        let provider = ProviderSettings(id: "terse", kind: .openAICompatible, baseURL: "http://127.0.0.1:\(upstream.port)/v1")
        let fixture = try await GatewayFixture.start(
            extraProviders: [provider], extraRoutes: [RouteSettings(alias: "terse", targets: [RouteTarget(provider: "terse", model: "m")])], lane: lane
        )
        let reply = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", TestClient.chat(model: "terse", stream: true))
        #expect(reply.status == 200)
        #expect(reply.events.last == "[DONE]")
        try await fixture.expectServed(chats: 1)
        await fixture.stop()
        await upstream.stop()
    }

    @Test(arguments: Lane.allCases, [false, true])
    func aGracefulStopLetsTheLaneFinishWhatItServes(lane: Lane, _ stream: Bool) async throws {
        let fixture = try await GatewayFixture.start(routes: ["slow": "m:ttft=600ms"], lane: lane)
        let reply = Task { try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", TestClient.chat(model: "slow", stream: stream)) }
        for _ in 0..<100 where fixture.simulatorRouter.activeRequests.current == 0 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(fixture.simulatorRouter.activeRequests.current == 1)
        try await fixture.expectServed(chats: 1)
        await fixture.gateway.stop()
        let answer = try await reply.value
        #expect(answer.status == 200)
        #expect(stream ? answer.events.last == "[DONE]" : answer.body.contains("chat.completion"))
        await fixture.simulator.stop()
    }

    @Test(arguments: Lane.allCases)
    func aKeyedCallerIsAdmittedAndRefused(lane: Lane) async throws {
        let fixture = try await TenancyFixture.start(lane: lane) { config in
            var tenant = TenantSettings(name: "acme")
            tenant.limits.requestsPerMinute = 1
            config.tenants = [tenant]
        }
        defer { Task { await fixture.stop() } }
        let key = try await fixture.key(KeyRequest(tenant: "acme", name: "ci"))
        let first = try await fixture.chat(key: key)
        #expect(first.status == 200)
        #expect(first.headers.first(name: "x-ratelimit-remaining-requests") == "0")
        let second = try await fixture.chat(key: key)
        #expect(second.status == 429)
        #expect((second.json["error"] as? [String: Any])?["code"] as? String == "rate_limited")
        #expect(second.headers.first(name: "x-ratelimit-limit-requests") == "1")
        try await fixture.expectServed(chats: 2)
        // The refusal is counted once (the framework did not admit the request a second time).
        let tenant = await fixture.control.tenants(fixture.control.state.routing.config).first { $0.name == "acme" }
        #expect(tenant?.limitRejections == 1 && tenant?.requestsToday == 1)
    }

    @Test(arguments: Lane.allCases)
    func aClientThatHangsUpMidStreamLeavesItsLedgerRow(lane: Lane) async throws {
        // A slow stream, hung up on after its first bytes: OpenAI to an OpenAI-compatible upstream, and
        // Anthropic, translated for it (both the lane's).
        let fixture = try await TenancyFixture.start(anonymous: true, lane: lane) { config in
            config.routes.append(RouteSettings(alias: "slow", targets: [RouteTarget(provider: "sim", model: "m:tps=5")]))
        }
        let requests = [
            ("/v1/chat/completions", TestClient.chat(model: "slow", stream: true), "hangup-chat"),
            ("/v1/messages", #"{"model":"slow","max_tokens":200,"stream":true,"messages":[{"role":"user","content":"Hello there"}]}"#, "hangup-messages"),
        ]
        for (path, body, id) in requests {
            var request = HTTPClientRequest(url: "\(fixture.gateway.url)\(path)")
            request.method = .POST
            request.headers.add(name: "content-type", value: "application/json")
            request.headers.add(name: "x-request-id", value: id)
            request.body = .bytes(ByteBuffer(string: body))
            let reader = Task {
                let response = try await TestClient.client.execute(request, timeout: .seconds(10))
                for try await _ in response.body { break }
            }
            _ = await reader.result
        }
        try await fixture.expectServed(chats: 2)
        await fixture.stop()
        let store = try Store(path: fixture.stateDir + "/switchyard.sqlite")
        let rows = try await store.pool.read { db in try LedgerRow.fetchAll(db) }
        for id in ["hangup-chat", "hangup-messages"] {
            let row = rows.first { $0.requestId == id }
            #expect(row?.status == 499 && row?.outcome == FaultDomain.caller.rawValue, "\(id): \(String(describing: row))")
        }
    }
}

/// One blocking HTTP/1.1 connection on loopback, for what a pooled client would hide: pipelining and
/// the reuse of one connection. Reads give up after 10 s, and block a thread of their own, never one of
/// the concurrency pool the gateway under test runs on (two tests blocked in reads at once would
/// otherwise stall every gateway in the process until the reads time out).
/// `@unchecked Sendable`: one test uses it at a time.
final class RawConnection: @unchecked Sendable {
    struct Response: Sendable {
        let status: Int
        let headers: [String: String]
        let body: String
    }

    private let socket: Int32
    private var buffer: [UInt8] = []

    init(port: Int) throws {
        self.socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(self.socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(self.socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        try #require(connected == 0, "could not connect to 127.0.0.1:\(port)")
    }

    deinit {
        close(self.socket)
    }

    /// Closes the connection from this side (the descriptor stays until deinit).
    func hangUp() {
        shutdown(self.socket, Int32(SHUT_RDWR))
    }

    func send(_ text: String) throws {
        try #require(self.trySend(text), "send failed")
    }

    /// Whether all of `text` went out (false once the gateway closed the connection; no SIGPIPE).
    func trySend(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { Glibc.send(self.socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { return false }
            sent += count
        }
        return true
    }

    /// Everything the gateway sends until it closes the connection (an end of file or a reset), or nil
    /// when it is still open after the 10 s read timeout.
    func readToClose() async -> String? {
        (try? await Self.offPool { self.readToCloseBlocking() }) ?? nil
    }

    private func readToCloseBlocking() -> String? {
        var chunk = [UInt8](repeating: 0, count: 16_384)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(self.socket, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                self.buffer += chunk[..<count]
                continue
            }
            if count == 0 || errno == ECONNRESET { return String(decoding: self.buffer, as: UTF8.self) }
            return nil
        }
    }

    /// The next response, which must carry a `content-length`.
    func readResponse() async throws -> Response {
        try await Self.offPool { try self.readResponseBlocking() }
    }

    /// Runs blocking socket work on a thread outside the concurrency pool.
    private static func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        let result: Result<T, any Error> = await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: Result { try work() }) }
        }
        return try result.get()
    }

    private func readResponseBlocking() throws -> Response {
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        var headEnd = self.find(separator)
        while headEnd == nil {
            try self.fill()
            headEnd = self.find(separator)
        }
        let head = String(decoding: self.buffer[..<headEnd!], as: UTF8.self).components(separatedBy: "\r\n")
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let length = try #require(headers["content-length"].flatMap { Int($0) }, "no content-length in \(head)")
        let bodyStart = headEnd! + separator.count
        while self.buffer.count < bodyStart + length { try self.fill() }
        let body = String(decoding: self.buffer[bodyStart..<(bodyStart + length)], as: UTF8.self)
        self.buffer.removeFirst(bodyStart + length)
        let status = Int(head.first?.split(separator: " ").dropFirst().first ?? "") ?? 0
        return Response(status: status, headers: headers, body: body)
    }

    private func find(_ needle: [UInt8]) -> Int? {
        guard self.buffer.count >= needle.count else { return nil }
        return (0...(self.buffer.count - needle.count)).first { self.buffer[$0..<($0 + needle.count)].elementsEqual(needle) }
    }

    private func fill() throws {
        var chunk = [UInt8](repeating: 0, count: 16_384)
        let count = chunk.withUnsafeMutableBytes { recv(self.socket, $0.baseAddress, $0.count, 0) }
        try #require(count > 0, "the connection closed or timed out")
        self.buffer += chunk[..<count]
    }
}
