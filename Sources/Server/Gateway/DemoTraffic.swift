import AsyncHTTPClient
import Engine
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// Synthetic traffic for a demo (`switchyard serve --demo` or `--demo-traffic`): three clients of
/// the gateway's own address, at a rate that rises and falls over two minutes (a request every
/// 0.2–2 s each), as the config's tenants (their declared keys) and anonymously when allowed, over
/// its routes (cached routes most, with repeated and reworded questions), a third of them streamed.
/// So the console has traffic, costs, budgets, cache hits and breakers to show without a curl loop.
/// Never on unless asked; it stops with the gateway.
struct DemoTraffic: Sendable {
    let address: String
    /// Declared keys, and nil for anonymous calls when the server allows them.
    let callers: [String?]
    /// Route aliases, cached ones listed several times so that they are asked most.
    let routes: [String]
    let logger: Logger

    init(address: String, config: GatewayConfig, logger: Logger) {
        self.address = address
        var callers: [String?] = config.tenants.flatMap { $0.keys.map { Optional($0.secret.exposedValue) } }
        if config.server.anonymous || callers.isEmpty { callers.append(nil) }
        self.callers = callers
        self.routes = config.routes.flatMap { route in Array(repeating: route.alias, count: route.cache == nil ? 1 : 4) }
        self.logger = logger
    }

    /// Questions a support desk gets, each with a rewording a little apart (semantic hits) and asked
    /// again as it is (exact hits).
    static let questions = [
        ("How do I reset my password?", "how do I reset my password"),
        ("What are your opening hours?", "What are your opening hours"),
        ("Can I change the email on my account?", "Can I change the e-mail on my account?"),
        ("How do I cancel my subscription?", "how do i cancel my subscription?"),
        ("Where can I download my invoices?", "Where can I download my invoices"),
        ("Do you ship to Canada?", "Do you ship to Canada ?"),
        ("Write a haiku about gateways.", "Write a haiku about gateways"),
        ("Summarize the benefits of caching in one sentence.", "Summarize the benefits of caching in one sentence"),
    ]

    func run() async {
        guard !self.routes.isEmpty else { return }
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(timeout: .init(connect: .seconds(2), read: .seconds(60))))
        self.logger.info("demo traffic: 3 clients of \(self.address), \(self.callers.count) callers, \(Set(self.routes).count) routes")
        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<3 { group.addTask { await self.work(worker, client) } }
        }
        try? await client.shutdown()
    }

    private func work(_ worker: Int, _ client: HTTPClient) async {
        let start = ContinuousClock.now
        var random = SystemRandomNumberGenerator()
        while !Task.isCancelled {
            let phase = (ContinuousClock.now - start).seconds / 120 * 2 * Double.pi + Double(worker)
            do {
                try await Task.sleep(for: .milliseconds(Int64(200 + 900 * (1 + sin(phase)))))
            } catch {
                return
            }
            let route = self.routes.randomElement(using: &random) ?? ""
            let question = Self.questions.randomElement(using: &random) ?? ("Hello", "Hello")
            let text = Bool.random(using: &random) ? question.0 : question.1
            let streaming = Int.random(in: 0..<3, using: &random) == 0
            let body = #"{"model":\#(JSONWriter.quoted(route)),"stream":\#(streaming),"max_tokens":160,"messages":[{"role":"user","content":\#(JSONWriter.quoted(text))}]}"#
            var request = HTTPClientRequest(url: self.address + "/v1/chat/completions")
            request.method = .POST
            request.headers.add(name: "content-type", value: "application/json")
            if let key = self.callers.randomElement(using: &random) ?? nil { request.headers.add(name: "authorization", value: "Bearer \(key)") }
            request.body = .bytes(ByteBuffer(string: body))
            do {
                let response = try await client.execute(request, timeout: .seconds(60))
                _ = try await response.body.collect(upTo: 4 << 20)
            } catch {
                // A refused or failed request is part of the show (budgets run out, breakers open).
                self.logger.debug("demo traffic: \(error)")
            }
        }
    }
}
