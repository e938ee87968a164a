import AsyncHTTPClient
import Engine
import Foundation
import Hummingbird
import NIOCore
import Synchronization
import Testing
@testable import Server

struct CacheTests {
    /// Routes over one simulator: `cached` (temperature 0 only), `always` (every request), `semantic`,
    /// `faulty` (a 500 every time) and `cut` (streams that die half-way), all caching.
    static func start(configure: (inout GatewayConfig) -> Void = { _ in }) async throws -> TenancyFixture {
        try await TenancyFixture.start(anonymous: true) { config in
            func route(_ alias: String, _ model: String, _ change: (inout CacheSettings) -> Void = { _ in }) -> RouteSettings {
                var route = RouteSettings(alias: alias, targets: [RouteTarget(provider: "sim", model: model, price: TokenPrice(input: 0.15, output: 0.6))])
                var settings = CacheSettings(ttl: .seconds(60))
                change(&settings)
                route.cache = settings
                route.retry.attempts = 1
                return route
            }
            config.routes += [
                route("cached", "gpt-4o-mini"),
                route("always", "gpt-4o-mini") { $0.always = true },
                route("semantic", "gpt-4o-mini") {
                    $0.always = true
                    $0.semanticThreshold = 0.8
                },
                route("faulty", "m:fault=500") { $0.always = true },
                route("cut", "m:fault=cut") { $0.always = true },
            ]
            configure(&config)
        }
    }

    static func body(_ route: String, _ question: String = "Hello there", temperature: Double = 0, stream: Bool = false, history: String = "") -> String {
        #"{"model":"\#(route)","temperature":\#(temperature),"stream":\#(stream),"messages":[\#(history){"role":"user","content":"\#(question)"}]}"#
    }

    static func post(_ fixture: TenancyFixture, _ body: String, headers: [(String, String)] = []) async throws -> Exchange {
        try await TestClient.post("\(fixture.gateway.url)/v1/chat/completions", body, headers: headers)
    }

    @Test func aRepeatIsAHitWithTheSameAnswerAndNoUpstreamCost() async throws {
        let fixture = try await Self.start()
        defer { Task { await fixture.stop() } }
        let first = try await Self.post(fixture, Self.body("cached"))
        #expect(first.status == 200 && first.headers.first(name: "x-switchyard-cache") == "miss")
        let second = try await Self.post(fixture, Self.body("cached"))
        #expect(second.headers.first(name: "x-switchyard-cache") == "hit" && second.headers.first(name: "x-switchyard-cost-usd") == "0.00000000")
        let answer = { (exchange: Exchange) in ((exchange.json["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String }
        #expect(answer(first) != nil && answer(first) == answer(second))
        #expect((second.json["usage"] as? [String: Any])?["completion_tokens"] as? Int == (first.json["usage"] as? [String: Any])?["completion_tokens"] as? Int)

        // A streaming client shares the entry: the answer replays as a stream.
        let streamed = try await Self.post(fixture, Self.body("cached", stream: true))
        #expect(streamed.headers.first(name: "x-switchyard-cache") == "hit" && streamed.events.last == "[DONE]")
        let text = streamed.events.dropLast().compactMap { event -> String? in
            let json = try? JSONSerialization.jsonObject(with: Data(event.utf8)) as? [String: Any]
            return ((json?["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any])?["content"] as? String
        }.joined()
        #expect(text == answer(first))

        // Prometheus: what the miss cost and what the two hits saved.
        let metrics = try await TestClient.get("\(fixture.gateway.url)/metrics").body
        #expect(metrics.contains(#"switchyard_cost_usd_total{route="cached",provider="sim"}"#))
        #expect(metrics.contains(#"switchyard_cache_saved_usd_total{route="cached"}"#))
        #expect(metrics.contains(#"switchyard_cache_lookups_total{route="cached",result="hit"} 2"#))

        // The ledger: a hit costs nothing and says what it saved.
        await fixture.stop()
        let store = try Store(path: fixture.stateDir + "/switchyard.sqlite")
        let rows = try await store.pool.read { db in try LedgerRow.fetchAll(db) }
        let hits = rows.filter { $0.cache == "hit" }
        #expect(hits.count == 2 && hits.allSatisfy { $0.costUsd == 0 && $0.costSavedUsd > 0 })
        #expect(rows.filter { $0.cache == "miss" }.allSatisfy { $0.costUsd > 0 })
        #expect(rows.filter { $0.cache == "miss" }.count == 1)
    }

    @Test func aStreamedAnswerIsRecordedAndServesANonStreamingClient() async throws {
        let fixture = try await Self.start()
        defer { Task { await fixture.stop() } }
        let streamed = try await Self.post(fixture, Self.body("always", "Stream me", stream: true))
        #expect(streamed.headers.first(name: "x-switchyard-cache") == "miss" && streamed.events.last == "[DONE]")
        let plain = try await Self.post(fixture, Self.body("always", "Stream me"))
        #expect(plain.headers.first(name: "x-switchyard-cache") == "hit")
        #expect(((plain.json["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String != nil)
        // The Anthropic dialect keeps its own entries.
        let anthropic = try await TestClient.post(
            "\(fixture.gateway.url)/v1/messages", #"{"model":"always","max_tokens":50,"messages":[{"role":"user","content":"Stream me"}]}"#
        )
        #expect(anthropic.status == 200 && anthropic.headers.first(name: "x-switchyard-cache") == "miss")
        let again = try await TestClient.post(
            "\(fixture.gateway.url)/v1/messages", #"{"model":"always","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"Stream me"}]}"#
        )
        #expect(again.headers.first(name: "x-switchyard-cache") == "hit" && again.body.contains("event: message_stop"))
    }

    @Test func onlyDeterministicRequestsAreCachedUnlessTheRouteOrTheRequestOptsIn() async throws {
        let fixture = try await Self.start()
        defer { Task { await fixture.stop() } }
        for _ in 0..<2 {
            #expect(try await Self.post(fixture, Self.body("cached", temperature: 0.7)).headers.first(name: "x-switchyard-cache") == "bypass")
        }
        _ = try await Self.post(fixture, Self.body("cached", temperature: 0.7), headers: [("x-switchyard-cache-ttl", "30")])
        #expect(try await Self.post(fixture, Self.body("cached", temperature: 0.7), headers: [("x-switchyard-cache-ttl", "30")]).headers.first(name: "x-switchyard-cache") == "hit")
        #expect(try await Self.post(fixture, Self.body("r")).headers.first(name: "x-switchyard-cache") == "bypass", "a route without cache")
    }

    @Test func cacheControlSkipsTheLookupOrTheStore() async throws {
        let fixture = try await Self.start()
        defer { Task { await fixture.stop() } }
        _ = try await Self.post(fixture, Self.body("always", "one"), headers: [("cache-control", "no-store")])
        #expect(try await Self.post(fixture, Self.body("always", "one")).headers.first(name: "x-switchyard-cache") == "miss")
        #expect(try await Self.post(fixture, Self.body("always", "one"), headers: [("cache-control", "no-cache")]).headers.first(name: "x-switchyard-cache") == "bypass")
        #expect(try await Self.post(fixture, Self.body("always", "one")).headers.first(name: "x-switchyard-cache") == "hit")
        // A namespace is a separate cache.
        #expect(try await Self.post(fixture, Self.body("always", "one"), headers: [("x-switchyard-cache-namespace", "eval")]).headers.first(name: "x-switchyard-cache") == "miss")
    }

    @Test func errorsAndCutStreamsAreNeverStored() async throws {
        let fixture = try await Self.start()
        defer { Task { await fixture.stop() } }
        for _ in 0..<2 {
            let failed = try await Self.post(fixture, Self.body("faulty"))
            // The simulator's 500 in OpenAI's envelope passes through as sent; it is never kept.
            #expect(failed.status == 500 && failed.headers.first(name: "x-switchyard-cache") == "miss")
        }
        for _ in 0..<2 {
            let cut = try await Self.post(fixture, Self.body("cut", stream: true))
            #expect(cut.headers.first(name: "x-switchyard-cache") == "miss" && cut.events.last?.contains("error") == true)
        }
    }

    @Test func tenantsNeverShareEntries() async throws {
        let fixture = try await Self.start()
        defer { Task { await fixture.stop() } }
        let acme = try await fixture.key(KeyRequest(tenant: "acme"))
        let globex = try await fixture.key(KeyRequest(tenant: "globex"))
        _ = try await Self.post(fixture, Self.body("always", "secret plans"), headers: [("authorization", "Bearer \(acme)")])
        #expect(try await Self.post(fixture, Self.body("always", "secret plans"), headers: [("authorization", "Bearer \(acme)")]).headers.first(name: "x-switchyard-cache") == "hit")
        #expect(try await Self.post(fixture, Self.body("always", "secret plans"), headers: [("authorization", "Bearer \(globex)")]).headers.first(name: "x-switchyard-cache") == "miss")
        #expect(try await Self.post(fixture, Self.body("always", "secret plans")).headers.first(name: "x-switchyard-cache") == "miss")
    }

    @Test func aRewordedLastTurnIsASemanticHitButADifferentEarlierTurnIsNot() async throws {
        let fixture = try await Self.start()
        defer { Task { await fixture.stop() } }
        let history = #"{"role":"user","content":"We talk about geography."},{"role":"assistant","content":"Sure."},"#
        _ = try await Self.post(fixture, Self.body("semantic", "What is the capital of France?", history: history))
        let reworded = try await Self.post(fixture, Self.body("semantic", "what's the capital of France", history: history))
        #expect(reworded.headers.first(name: "x-switchyard-cache") == "semantic-hit")
        let otherHistory = #"{"role":"user","content":"We talk about cooking."},{"role":"assistant","content":"Sure."},"#
        #expect(try await Self.post(fixture, Self.body("semantic", "what's the capital of France", history: otherHistory)).headers.first(name: "x-switchyard-cache") == "miss")
        #expect(try await Self.post(fixture, Self.body("semantic", "How do I bake sourdough bread?", history: history)).headers.first(name: "x-switchyard-cache") == "miss")
    }

    /// The route's embedder is a provider's embeddings model (here a loopback server that knows two
    /// topics): questions that share no words but mean the same are a semantic hit, where the built-in
    /// n-gram embedder sees nothing alike; a failing embedder costs the lookup, not the request.
    @Test func aProviderEmbedderFindsParaphrasesTheLocalOneCannot() async throws {
        let embeddings = try await TopicEmbeddings.start()
        defer { Task { await embeddings.service.stop() } }
        let fixture = try await Self.start { config in
            var topics = ProviderSettings(id: "topics", kind: .openAICompatible, baseURL: "\(embeddings.service.url)/v1")
            topics.breaker = BreakerPolicy(consecutiveFailures: 2, openDuration: .seconds(60))
            config.providers.append(topics)
            config.prices = PriceTable(["topic-1": ModelPrice(input: 0.02, output: 0, checked: "test")])
            for (alias, embedder) in [("by-topic", EmbedderSettings(provider: "topics", model: "topic-1")), ("by-ngram", nil), ("broken", EmbedderSettings(provider: "topics", model: "fail"))] {
                var route = RouteSettings(alias: alias, targets: [RouteTarget(provider: "sim", model: "gpt-4o-mini")])
                route.cache = CacheSettings(ttl: .seconds(60))
                route.cache?.always = true
                route.cache?.semanticThreshold = 0.9
                route.cache?.embedder = embedder
                config.routes.append(route)
            }
        }
        defer { Task { await fixture.stop() } }
        let (asked, reworded) = ("How do I get a refund?", "Can I have my money back")
        for route in ["by-topic", "by-ngram", "broken"] {
            #expect(try await Self.post(fixture, Self.body(route, asked)).headers.first(name: "x-switchyard-cache") == "miss")
        }
        #expect(try await Self.post(fixture, Self.body("by-topic", reworded)).headers.first(name: "x-switchyard-cache") == "semantic-hit")
        #expect(try await Self.post(fixture, Self.body("by-topic", "What is the weather today?")).headers.first(name: "x-switchyard-cache") == "miss")
        #expect(try await Self.post(fixture, Self.body("by-ngram", reworded)).headers.first(name: "x-switchyard-cache") == "miss")
        let broken = try await Self.post(fixture, Self.body("broken", reworded))
        #expect(broken.status == 200 && broken.headers.first(name: "x-switchyard-cache") == "miss")
        #expect(try await Self.post(fixture, Self.body("broken", asked)).headers.first(name: "x-switchyard-cache") == "hit")
        // One call for each request that missed exactly (its vector then files the answer too), none
        // for the n-gram route or an exact hit.
        #expect(embeddings.calls == 5)
        // Two failures in a row rest the broken embedder (the provider's breaker policy): the next
        // miss does not wait for it.
        #expect(try await Self.post(fixture, Self.body("broken", "Something else entirely")).headers.first(name: "x-switchyard-cache") == "miss")
        #expect(embeddings.calls == 5)
        // The admin snapshot counts the failures, and the vectors of the misses that were filed (one
        // partition a route: only the last question differs): by topic the refund and the weather,
        // by n-gram both wordings.
        let stats = try #require(await fixture.control.snapshot().cache)
        #expect(stats.embeddingFailures == 2)
        #expect(stats.vectors == 4 && stats.partitions == 2)
        let metrics = try await TestClient.get("\(fixture.gateway.url)/metrics").body
        #expect(metrics.contains(#"switchyard_cache_lookups_total{route="by-topic",result="semantic-hit"} 1"#))
        #expect(metrics.contains(#"switchyard_cache_lookups_total{route="by-topic",result="miss"} 2"#))
        #expect(metrics.contains(#"switchyard_cache_embedding_failures_total{route="broken",provider="topics"} 2"#))
        let lint = try Promtool.check(metrics)
        #expect(lint.ok, "promtool: \(lint.report)")

        // Each call has its own ledger row beside its request's, priced at the embedding model's price.
        await fixture.stop()
        let store = try Store(path: fixture.stateDir + "/switchyard.sqlite")
        let rows = try await store.pool.read { db in try LedgerRow.fetchAll(db) }
        let calls = rows.filter { $0.operation == "cache-embedding" }
        #expect(rows.filter { $0.operation == "chat" }.count == 9 && calls.count == 5)
        let answered = calls.filter { $0.outcome == "success" }
        #expect(answered.count == 3 && answered.allSatisfy { $0.provider == "topics" && $0.inputTokens == 3 && $0.costUsd > 0 })
        #expect(calls.filter { $0.outcome == "provider" }.count == 2)
        #expect(Set(calls.map(\.requestId)).isSubset(of: Set(rows.filter { $0.operation == "chat" }.map(\.requestId))))
    }

    /// A semantic match the guard refuses (the embedder finds "refund for order 1234" and "for order
    /// 5678" the same topic) is a miss: the upstream answers, the refusal is in the header, the
    /// ledger and the metrics, and the new answer is filed under its own question. A route with
    /// `guard: false` serves the match.
    @Test func aMatchTheGuardRefusesIsAMissRecordedWithItsReason() async throws {
        let embeddings = try await TopicEmbeddings.start()
        defer { Task { await embeddings.service.stop() } }
        let fixture = try await Self.start { config in
            config.providers.append(ProviderSettings(id: "topics", kind: .openAICompatible, baseURL: "\(embeddings.service.url)/v1"))
            for (alias, guarded) in [("guarded", true), ("unguarded", false)] {
                var route = RouteSettings(alias: alias, targets: [RouteTarget(provider: "sim", model: "gpt-4o-mini")])
                route.cache = CacheSettings(ttl: .seconds(60))
                route.cache?.always = true
                route.cache?.semanticThreshold = 0.9
                route.cache?.embedder = EmbedderSettings(provider: "topics", model: "topic-1")
                route.cache?.semanticGuard = guarded
                config.routes.append(route)
            }
        }
        defer { Task { await fixture.stop() } }
        let (first, second) = ("How do I get a refund for order 1234?", "How do I get a refund for order 5678?")
        for route in ["guarded", "unguarded"] {
            #expect(try await Self.post(fixture, Self.body(route, first)).headers.first(name: "x-switchyard-cache") == "miss")
        }
        let refused = try await Self.post(fixture, Self.body("guarded", second))
        #expect(refused.status == 200 && refused.headers.first(name: "x-switchyard-cache") == "miss")
        #expect(refused.headers.first(name: "x-switchyard-cache-refused") == "number")
        #expect(refused.headers.first(name: "x-switchyard-provider") == "sim")
        // The new answer was filed: asked again, its own question is an exact hit.
        #expect(try await Self.post(fixture, Self.body("guarded", second)).headers.first(name: "x-switchyard-cache") == "hit")
        // A reworded question with the same order number still gets the first answer.
        let reworded = try await Self.post(fixture, Self.body("guarded", "Can I have my money back for order 1234?"))
        #expect(reworded.headers.first(name: "x-switchyard-cache") == "semantic-hit")
        #expect(try await Self.post(fixture, Self.body("unguarded", second)).headers.first(name: "x-switchyard-cache") == "semantic-hit")

        let metrics = try await TestClient.get("\(fixture.gateway.url)/metrics").body
        #expect(metrics.contains(#"switchyard_cache_guard_refusals_total{route="guarded",reason="number"} 1"#))
        #expect(metrics.contains(#"switchyard_cache_lookups_total{route="guarded",result="miss"} 2"#))
        let lint = try Promtool.check(metrics)
        #expect(lint.ok, "promtool: \(lint.report)")
        await fixture.stop()
        let store = try Store(path: fixture.stateDir + "/switchyard.sqlite")
        let rows = try await store.pool.read { db in try LedgerRow.fetchAll(db) }.filter { $0.operation == "chat" }
        #expect(rows.filter { $0.cacheRefusal == "number" }.count == 1)
        #expect(rows.filter { $0.cacheRefusal != nil }.allSatisfy { $0.cache == "miss" && $0.route == "guarded" && $0.outputTokens > 0 })
    }

    /// Ollama's and Gemini's own embeddings APIs serve as embedders too (their simulators embed by
    /// character trigrams, so a little rewording stays close).
    @Test func ollamaAndGeminiEmbeddersServeTheSemanticCache() async throws {
        let fixture = try await Self.start { config in
            let root = config.providers[0].baseURL!.replacingOccurrences(of: "/v1", with: "")
            config.providers += [
                ProviderSettings(id: "ollama", kind: .ollama, baseURL: root),
                ProviderSettings(id: "gemini", kind: .gemini, baseURL: root + "/v1beta"),
            ]
            for provider in ["ollama", "gemini"] {
                var route = RouteSettings(alias: "via-\(provider)", targets: [RouteTarget(provider: "sim", model: "gpt-4o-mini")])
                route.cache = CacheSettings(ttl: .seconds(60))
                route.cache?.always = true
                route.cache?.semanticThreshold = 0.8
                route.cache?.embedder = EmbedderSettings(provider: provider, model: "embed")
                config.routes.append(route)
            }
        }
        defer { Task { await fixture.stop() } }
        for route in ["via-ollama", "via-gemini"] {
            #expect(try await Self.post(fixture, Self.body(route, "What is the capital of France?")).headers.first(name: "x-switchyard-cache") == "miss")
            #expect(try await Self.post(fixture, Self.body(route, "what's the capital of France")).headers.first(name: "x-switchyard-cache") == "semantic-hit")
        }
    }

    /// With `replay: realistic` a replayed stream takes about as long as the original did (first
    /// token after the original's wait, text spread out); without it, it comes at once.
    @Test func aRealisticReplayKeepsTheOriginalsPace() async throws {
        let fixture = try await Self.start { config in
            for (alias, realistic) in [("paced", true), ("instant", false)] {
                var route = RouteSettings(alias: alias, targets: [RouteTarget(provider: "sim", model: "gpt-4o-mini:ttft=800ms:tps=40")])
                route.cache = CacheSettings(ttl: .seconds(60))
                route.cache?.always = true
                route.cache?.realisticReplay = realistic
                config.routes.append(route)
            }
        }
        defer { Task { await fixture.stop() } }
        let body = { (route: String) in #"{"model":"\#(route)","stream":true,"max_tokens":20,"messages":[{"role":"user","content":"pace me"}]}"# }
        let original = try await Self.post(fixture, body("paced"))
        _ = try await Self.post(fixture, body("instant"))
        let started = ContinuousClock.now
        let paced = try await Self.post(fixture, body("paced"))
        let pacedTime = ContinuousClock.now - started
        #expect(paced.headers.first(name: "x-switchyard-cache") == "hit")
        #expect(paced.events.last == "[DONE]")
        let text = { (exchange: Exchange) in
            exchange.events.dropLast().compactMap { event -> String? in
                let json = try? JSONSerialization.jsonObject(with: Data(event.utf8)) as? [String: Any]
                return ((json?["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any])?["content"] as? String
            }.joined()
        }
        #expect(!text(paced).isEmpty && text(paced) == text(original))
        // The original waited 800 ms for its first token and then streamed 20 tokens at 40 a second:
        // about 1.3 s in all, which the replay keeps (the first-token wait alone would not do).
        #expect(pacedTime >= .milliseconds(1_200))
        #expect(paced.events.count > 5)
        let instantStarted = ContinuousClock.now
        let instant = try await Self.post(fixture, body("instant"))
        #expect(instant.headers.first(name: "x-switchyard-cache") == "hit" && ContinuousClock.now - instantStarted < .milliseconds(800))
    }

    /// A cache TTL header that is not a sane number of seconds is the caller's mistake: 400 in its
    /// dialect, before anything is reserved (and never a crash: `nan` and `1e30` once were).
    @Test func aBadCacheTTLHeaderIsA400() async throws {
        let fixture = try await Self.start()
        defer { Task { await fixture.stop() } }
        for value in ["nan", "inf", "1e30", "0", "-5", "soon"] {
            let reply = try await Self.post(fixture, Self.body("always", "ttl \(value)"), headers: [("x-switchyard-cache-ttl", value)])
            #expect(reply.status == 400, "\(value)")
            #expect(((reply.json["error"] as? [String: Any])?["message"] as? String)?.contains("x-switchyard-cache-ttl") == true)
        }
        let anthropic = try await TestClient.post(
            "\(fixture.gateway.url)/v1/messages", #"{"model":"always","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#,
            headers: [("x-switchyard-cache-ttl", "nan")]
        )
        #expect(anthropic.status == 400 && anthropic.json["type"] as? String == "error")
        #expect(try await Self.post(fixture, Self.body("always", "still up")).status == 200)
    }

    /// A last turn with an image is never a semantic match for the same words with another image.
    @Test func aTurnWithAnImageHasNoSemanticMatch() async throws {
        let fixture = try await Self.start()
        defer { Task { await fixture.stop() } }
        let turn = { (image: String) in
            #"{"model":"semantic","temperature":0,"messages":[{"role":"user","content":[{"type":"text","text":"What is in this picture?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,\#(image)"}}]}]}"#
        }
        #expect(try await Self.post(fixture, turn("iVBORw0KGgoAAAA")).headers.first(name: "x-switchyard-cache") == "miss")
        #expect(try await Self.post(fixture, turn("iVBORw0KGgoBBBB")).headers.first(name: "x-switchyard-cache") == "miss")
        #expect(try await Self.post(fixture, turn("iVBORw0KGgoAAAA")).headers.first(name: "x-switchyard-cache") == "hit")
    }

    @Test func flushEmptiesTheCache() async throws {
        let fixture = try await Self.start()
        defer { Task { await fixture.stop() } }
        _ = try await Self.post(fixture, Self.body("always", "x"))
        #expect(try await Self.post(fixture, Self.body("always", "x")).headers.first(name: "x-switchyard-cache") == "hit")
        #expect(fixture.control.state.cache.flush(tenant: nil, route: "always") == 1)
        #expect(try await Self.post(fixture, Self.body("always", "x")).headers.first(name: "x-switchyard-cache") == "miss")
        let stats = try #require(await fixture.control.snapshot().cache)
        #expect(stats.entries == 1 && stats.hitRate > 0 && stats.missRate > 0)
    }
}

struct PersistentCacheTests {
    @Test func thePersistentTierSurvivesARestart() async throws {
        let simulator = try await RunningService.simulator(SimulatorRouter(settings: SimulatorSettings(timeToFirstToken: .zero, tokensPerSecond: 0)))
        defer { Task { await simulator.stop() } }
        var config = GatewayConfig()
        config.server.stateDir = RunningService.temporaryStateDir()
        config.cachePersistent = true
        config.providers = [ProviderSettings(id: "sim", kind: .simulator, baseURL: "\(simulator.url)/v1")]
        var route = RouteSettings(alias: "always", targets: [RouteTarget(provider: "sim", model: "gpt-4o-mini")])
        route.cache = CacheSettings(ttl: .seconds(600))
        route.cache?.always = true
        route.cache?.semanticThreshold = 0.8
        config.routes = [route]
        let body = CacheTests.body("always", "Remember me")

        let first = try await RunningService.gateway(config)
        let miss = try await TestClient.post("\(first.url)/v1/chat/completions", body)
        #expect(miss.headers.first(name: "x-switchyard-cache") == "miss")
        try await Task.sleep(for: .milliseconds(100))
        await first.stop()

        let second = try await RunningService.gateway(config)
        defer { Task { await second.stop() } }
        let hit = try await TestClient.post("\(second.url)/v1/chat/completions", body)
        #expect(hit.headers.first(name: "x-switchyard-cache") == "hit")
        let content = { (exchange: Exchange) in ((exchange.json["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String }
        #expect(content(hit) != nil && content(hit) == content(miss))
        // The answer's vector came back too: a reworded question is a semantic hit after the restart.
        let reworded = try await TestClient.post("\(second.url)/v1/chat/completions", CacheTests.body("always", "remember me!"))
        #expect(reworded.headers.first(name: "x-switchyard-cache") == "semantic-hit" && content(reworded) == content(miss))
    }
}

/// An OpenAI-compatible embeddings server that knows two topics: texts about refunds get one vector,
/// everything else another; model `fail` answers 500. Counts its calls.
final class TopicEmbeddings: Sendable {
    let service: RunningService
    private let counter: Counter

    private init(service: RunningService, counter: Counter) {
        self.service = service
        self.counter = counter
    }

    var calls: Int { self.counter.value.load(ordering: .relaxed) }

    static func start() async throws -> TopicEmbeddings {
        let counter = Counter()
        let router = Router()
        router.post("/v1/embeddings") { request, _ -> Response in
            counter.value.add(1, ordering: .relaxed)
            let json = JSONValue.parse(try await request.body.collect(upTo: 1 << 20))
            guard json?["model"]?.string != "fail" else {
                return Response(status: .internalServerError, body: .init(byteBuffer: ByteBuffer(string: #"{"error":{"message":"down","type":"server_error"}}"#)))
            }
            let inputs = json?["input"]?.array?.compactMap(\.string) ?? [json?["input"]?.string ?? ""]
            let items = inputs.enumerated().map { index, text in
                let lowered = text.lowercased()
                let vector = lowered.contains("refund") || lowered.contains("money back") ? "[0.6,0.8,0]" : "[0,0.6,0.8]"
                return #"{"object":"embedding","index":\#(index),"embedding":\#(vector)}"#
            }
            let answer = #"{"object":"list","model":"topic-1","data":[\#(items.joined(separator: ","))],"usage":{"prompt_tokens":3,"total_tokens":3}}"#
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: answer)))
        }
        let service = try await RunningService.serving(router)
        return TopicEmbeddings(service: service, counter: counter)
    }

    private final class Counter: Sendable {
        let value = Atomic<Int>(0)
    }
}
