import AsyncHTTPClient
import Engine
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization
import Testing
@testable import Server

/// A loopback server of images and of the answers an image URL must not be trusted with; it counts requests.
struct ImageServer {
    let service: RunningService
    private let counts: Counts

    final class Counts: Sendable {
        let requests = Atomic<Int>(0)
        let redirectTargets = Atomic<Int>(0)
    }

    /// `/image/N` (N bytes, with a length), `/stream/N` (N bytes in 1 KiB chunks, no length),
    /// `/status/N`, `/text`, `/redirect` (to `/redirected`), `/stall` (an image after 3 s).
    static func start() async throws -> ImageServer {
        let counts = Counts()
        let router = Router()
        router.middlewares.add(CountingMiddleware(counts: counts))
        router.get("/image/{bytes}") { _, context in
            let bytes = context.parameters.get("bytes", as: Int.self) ?? 0
            return Response(status: .ok, headers: [.contentType: "image/png"], body: ResponseBody(byteBuffer: ByteBuffer(repeating: 0x89, count: bytes)))
        }
        router.get("/stream/{bytes}") { _, context in
            let bytes = context.parameters.get("bytes", as: Int.self) ?? 0
            return Response(status: .ok, headers: [.contentType: "image/png"], body: ResponseBody { writer in
                for start in stride(from: 0, to: bytes, by: 1024) {
                    try await writer.write(ByteBuffer(repeating: 0x89, count: min(1024, bytes - start)))
                }
                try await writer.finish(nil)
            })
        }
        router.get("/status/{code}") { _, context in
            let code = context.parameters.get("code", as: Int.self) ?? 500
            return Response(status: .init(code: code), headers: [.contentType: "image/png"], body: ResponseBody(byteBuffer: ByteBuffer(string: "internal-secret-body")))
        }
        router.get("/text") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain"], body: ResponseBody(byteBuffer: ByteBuffer(string: "internal-secret-body")))
        }
        router.get("/redirect") { _, _ in
            Response(status: .found, headers: [.location: "/redirected"])
        }
        router.get("/redirected") { _, _ in
            counts.redirectTargets.add(1, ordering: .relaxed)
            return Response(status: .ok, headers: [.contentType: "image/png"], body: ResponseBody(byteBuffer: ByteBuffer(repeating: 0x89, count: 10)))
        }
        router.get("/stall") { _, _ in
            try await Task.sleep(for: .seconds(3))
            return Response(status: .ok, headers: [.contentType: "image/png"], body: ResponseBody(byteBuffer: ByteBuffer(repeating: 0x89, count: 10)))
        }
        let service = try await RunningService.serving(router)
        return ImageServer(service: service, counts: counts)
    }

    var port: Int { self.service.port }
    var url: String { self.service.url }
    var requests: Int { self.counts.requests.load(ordering: .relaxed) }
    var redirectTargets: Int { self.counts.redirectTargets.load(ordering: .relaxed) }

    func stop() async {
        await self.service.stop()
    }

    struct CountingMiddleware<Context: RequestContext>: RouterMiddleware {
        let counts: Counts

        func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
            self.counts.requests.add(1, ordering: .relaxed)
            return try await next(request, context)
        }
    }
}

/// Image URLs fetched for inline-only upstreams (finding 6 of issue 15): no way into the gateway's
/// own network, bounded in size, count and time, and every failure told the same way.
@Suite(.serialized)
struct ImageFetchTests {
    static let loopbackAllowed = AddressPolicy(allowsLoopback: true)

    /// An OpenAI request whose images are `urls`, in order.
    static func openAI(_ urls: [String]) -> String {
        let parts = urls.map { #"{"type":"image_url","image_url":{"url":"\#($0)"}}"# }.joined(separator: ",")
        return #"{"model":"local","messages":[{"role":"user","content":[{"type":"text","text":"What is this?"},\#(parts)]}]}"#
    }

    static func anthropic(_ url: String) -> String {
        #"{"model":"local","max_tokens":16,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"url","url":"\#(url)"}},{"type":"text","text":"What is this?"}]}]}"#
    }

    static func message(_ reply: Exchange) -> String? {
        (reply.json["error"] as? [String: Any])?["message"] as? String
    }

    static func gateway(policy: AddressPolicy = .publicOnly, limits: (inout ImageFetchLimits) -> Void = { _ in }) async throws -> GatewayFixture {
        try await GatewayFixture.start(routes: ["local": "m"], wire: .ollamaChat, imagePolicy: policy) { config in
            config.server.fetchImageURLs = true
            limits(&config.server.imageLimits)
        }
    }

    /// Every spelling of this machine: the refusal comes before any connection, so the server never hears of it.
    @Test func theDefaultPolicyRefusesEveryNameOfThisMachineBeforeConnecting() async throws {
        let images = try await ImageServer.start()
        let fixture = try await Self.gateway()
        let port = images.port
        let hosts = [
            "127.0.0.1", "localhost", "[::1]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "2130706433", "0177.0.0.1", "0x7f.0.0.1",
            "127.1", "0.0.0.0", "0", "[0:0:0:0:0:0:0:1]",
        ]
        for host in hosts {
            let url = "http://\(host):\(port)/image/10"
            let reply = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", Self.openAI([url]))
            #expect(reply.status == 400, "\(url): \(reply.body)")
            #expect(Self.message(reply) == "Could not fetch image 1.", "\(url): \(reply.body)")
            #expect((reply.json["error"] as? [String: Any])?["type"] as? String == "invalid_request_error", "\(url)")
        }
        let anthropic = try await TestClient.post("\(fixture.gateway.url)/v1/messages", Self.anthropic("http://127.0.0.1:\(port)/image/10"))
        #expect(anthropic.status == 400, "\(anthropic.body)")
        #expect(anthropic.json["type"] as? String == "error")
        #expect(Self.message(anthropic) == "Could not fetch image 1.", "\(anthropic.body)")
        #expect(images.requests == 0)
        await fixture.stop()
        await images.stop()
    }

    /// Statuses, bodies, content types, redirects and closed ports all read the same: nothing to scan ports or read pages with.
    @Test func everyFailureReadsTheSameAndRedirectsAreNotFollowed() async throws {
        let images = try await ImageServer.start()
        // A refused connection is retried by the client until the timeout: keep it short.
        let fixture = try await Self.gateway(policy: Self.loopbackAllowed) { $0.timeout = .seconds(2) }
        // A port nobody listens on: bound, then closed.
        let closed = try await ImageServer.start()
        let closedPort = closed.port
        await closed.stop()
        let failing = [
            "\(images.url)/status/404", "\(images.url)/status/500", "\(images.url)/status/204", "\(images.url)/text", "\(images.url)/redirect",
            "http://127.0.0.1:\(closedPort)/image/10",
        ]
        var bodies = Set<String>()
        for url in failing {
            let reply = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", Self.openAI([url]))
            #expect(reply.status == 400, "\(url): \(reply.body)")
            bodies.insert(reply.body)
            #expect(Self.message(reply) == "Could not fetch image 1.", "\(url): \(reply.body)")
        }
        // Byte for byte the same answer (an OpenAI error body carries no request id), whatever went wrong.
        #expect(bodies.count == 1, "\(bodies)")
        #expect(images.redirectTargets == 0)
        #expect(images.requests == 5)
        // Other schemes are never fetched; the upstream's adapter refuses the URL.
        let ftp = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", Self.openAI(["ftp://127.0.0.1:\(images.port)/image/10"]))
        #expect(ftp.status == 400, "\(ftp.body)")
        #expect(images.requests == 5)
        await fixture.stop()
        await images.stop()
    }

    @Test func eachImageIsCappedWhetherItDeclaresItsLengthOrNot() async throws {
        let images = try await ImageServer.start()
        let fixture = try await Self.gateway(policy: Self.loopbackAllowed) { $0.perImage = 4096 }
        let fits = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", Self.openAI(["\(images.url)/image/4096", "\(images.url)/stream/4096"]))
        #expect(fits.status == 200, "\(fits.body)")
        for url in ["\(images.url)/image/4097", "\(images.url)/stream/5000", "\(images.url)/stream/\(1 << 20)"] {
            let reply = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", Self.openAI([url]))
            #expect(reply.status == 400, "\(url): \(reply.body)")
            #expect(Self.message(reply) == "Could not fetch image 1.", "\(url)")
        }
        await fixture.stop()
        await images.stop()
    }

    /// The request's total is capped too, and the number in the error counts inline images as the client does.
    @Test func aRequestsImagesTogetherAreCapped() async throws {
        let images = try await ImageServer.start()
        let fixture = try await Self.gateway(policy: Self.loopbackAllowed) { limits in
            limits.perImage = 1000
            limits.perRequest = 2500
        }
        let inline = "data:image/png;base64,iVBORw0KGgo="
        let two = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", Self.openAI([inline, "\(images.url)/image/1000", "\(images.url)/image/1000"]))
        #expect(two.status == 200, "\(two.body)")
        let three = try await TestClient.post(
            "\(fixture.gateway.url)/v1/chat/completions", Self.openAI([inline, "\(images.url)/image/1000", "\(images.url)/image/1000", "\(images.url)/image/1000"])
        )
        #expect(three.status == 400, "\(three.body)")
        #expect(Self.message(three) == "Could not fetch image 4.", "\(three.body)")
        await fixture.stop()
        await images.stop()
    }

    /// Too many image URLs are refused before any is fetched: 24 references cannot cost 24 downloads.
    @Test func tooManyImageURLsAreRefusedBeforeAnyFetch() async throws {
        let images = try await ImageServer.start()
        let fixture = try await Self.gateway(policy: Self.loopbackAllowed) { $0.count = 2 }
        let three = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", Self.openAI(Array(repeating: "\(images.url)/image/10", count: 3)))
        #expect(three.status == 400, "\(three.body)")
        #expect(Self.message(three)?.contains("at most 2") == true, "\(three.body)")
        #expect(images.requests == 0)
        let two = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", Self.openAI(Array(repeating: "\(images.url)/image/10", count: 2)))
        #expect(two.status == 200, "\(two.body)")
        #expect(images.requests == 2)
        await fixture.stop()
        await images.stop()
    }

    /// Retries, failover and hedges reuse the request's images: the per-request caps bound the request, not each attempt.
    @Test func imagesAreFetchedOnceForEveryAttempt() async throws {
        let images = try await ImageServer.start()
        let routes = ["local": "m:fault=503", "backup": "m"]
        let fixture = try await GatewayFixture.start(routes: routes, wire: .ollamaChat, imagePolicy: Self.loopbackAllowed) { config in
            config.server.fetchImageURLs = true
            for index in config.routes.indices where config.routes[index].alias == "local" {
                config.routes[index].retry = RetryPolicy(attempts: 3, backoff: .milliseconds(1), maxBackoff: .milliseconds(2))
                config.routes[index].fallbacks = ["backup"]
            }
        }
        let reply = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", Self.openAI(["\(images.url)/image/10"]))
        #expect(reply.status == 200, "\(reply.body)")
        // Two attempts at least (the failing target, then the fallback), each needing the image inline.
        #expect(reply.attempts ?? 0 >= 2, "\(reply.headers)")
        #expect(images.requests == 1)
        await fixture.stop()
        await images.stop()
    }

    @Test func aSlowImageRunsIntoTheTimeout() async throws {
        let images = try await ImageServer.start()
        let fixture = try await Self.gateway(policy: Self.loopbackAllowed) { $0.timeout = .milliseconds(300) }
        let reply = try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", Self.openAI(["\(images.url)/stall"]))
        #expect(reply.status == 400, "\(reply.body)")
        #expect(Self.message(reply) == "Could not fetch image 1.", "\(reply.body)")
        await fixture.stop()
        await images.stop()
    }

    /// The resolver reads every numeric spelling as the system does; the policy then sees the real address.
    @Test func oddNumericHostsResolveToTheAddressTheyMean() async throws {
        for host in ["2130706433", "0177.0.0.1", "0x7f000001", "127.1", "localhost"] {
            let addresses = try await ImageFetcher.resolve(host)
            #expect(!addresses.isEmpty, "\(host)")
            #expect(addresses.allSatisfy { AddressPolicy.scope(of: $0) == .loopback }, "\(host): \(addresses)")
        }
    }
}
