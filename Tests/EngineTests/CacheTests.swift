import CVectorMath
@testable import Engine
import Foundation
import NIOCore
import Testing

struct CacheKeyTests {
    static func key(_ body: String, route: String = "r", scope: String = "anonymous") throws -> String {
        CacheKey.exact(body: try JSONValue.parse(body), dialect: "openai", route: route, scope: scope, namespace: nil)
    }

    static let base = #"{"model":"r","temperature":0,"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]}"#

    @Test func everythingThatCanChangeTheAnswerChangesTheKey() throws {
        let key = try Self.key(Self.base)
        let variants = [
            #"{"model":"r","temperature":0.5,"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]}"#,
            #"{"model":"r","temperature":0,"messages":[{"role":"system","content":"Be long."},{"role":"user","content":"Hi"}]}"#,
            #"{"model":"r","temperature":0,"stop":["x"],"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]}"#,
            #"{"model":"r","temperature":0,"seed":7,"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]}"#,
            #"{"model":"r","temperature":0,"tools":[{"type":"function","function":{"name":"f"}}],"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]}"#,
        ]
        for variant in variants { #expect(try Self.key(variant) != key, "\(variant)") }
        #expect(try Self.key(Self.base, route: "other") != key)
        #expect(try Self.key(Self.base, scope: "tenant:acme") != key)
        #expect(CacheKey.exact(body: try JSONValue.parse(Self.base), dialect: "anthropic", route: "r", scope: "anonymous", namespace: nil) != key)
        #expect(CacheKey.exact(body: try JSONValue.parse(Self.base), dialect: "openai", route: "r", scope: "anonymous", namespace: "ns") != key)
    }

    @Test func streamingMemberOrderAndTheModelNameDoNotMatter() throws {
        let key = try Self.key(Self.base)
        #expect(try Self.key(#"{"stream":true,"stream_options":{"include_usage":true},"messages":[{"content":"Be brief.","role":"system"},{"role":"user","content":"Hi"}],"temperature":0,"model":"alias-b"}"#) == key)
    }

    @Test func theSemanticPartitionIgnoresOnlyTheLastTurn() throws {
        func partition(_ body: String) throws -> String {
            CacheKey.partition(body: try JSONValue.parse(body), lastUserText: "", dialect: "openai", route: "r", scope: "s", namespace: nil)
        }
        let first = try partition(#"{"messages":[{"role":"user","content":"What is the capital of France?"}]}"#)
        #expect(try partition(#"{"messages":[{"role":"user","content":"capital of France, please?"}]}"#) == first)
        let earlier = #"{"messages":[{"role":"user","content":"A"},{"role":"assistant","content":"B"},{"role":"user","content":"Q"}]}"#
        let otherEarlier = #"{"messages":[{"role":"user","content":"X"},{"role":"assistant","content":"B"},{"role":"user","content":"Q"}]}"#
        #expect(try partition(earlier) != partition(otherEarlier))
    }
}

struct ResponseCacheTests {
    static func answer(_ text: String) -> CachedAnswer {
        CachedAnswer(
            response: ChatResponse(id: "id", model: "m", content: [.text(text)], stopReason: .endTurn, usage: Usage(inputTokens: 5, outputTokens: 7)),
            provider: "p", upstreamModel: "m"
        )
    }

    @Test func entriesExpireAfterTheirTTL() {
        var clock = FakeClock()
        var cache = ResponseCache(capacity: 1 << 20)
        cache.put("k", Self.answer("hello"), scope: "s", route: "r", ttl: .seconds(10), at: clock.now)
        #expect(cache.get("k", at: clock.now) == Self.answer("hello"))
        clock.advance(.seconds(10))
        #expect(cache.get("k", at: clock.now) == nil)
        #expect(cache.count == 0 && cache.bytes == 0)
    }

    @Test func theLeastRecentlyUsedGoWhenTheBytesRunOut() {
        let now = ContinuousClock.now
        let big = String(repeating: "x", count: 1_000)
        var cache = ResponseCache(capacity: 3_000)
        cache.put("a", Self.answer(big), scope: "s", route: "r", ttl: .seconds(60), at: now)
        cache.put("b", Self.answer(big), scope: "s", route: "r", ttl: .seconds(60), at: now)
        _ = cache.get("a", at: now)
        #expect(cache.put("c", Self.answer(big), scope: "s", route: "r", ttl: .seconds(60), at: now) == ["b"])
        // Refused, not evicted for: an answer bigger than the whole cache, or one with no time to live.
        #expect(cache.put("huge", Self.answer(String(repeating: "y", count: 4_000)), scope: "s", route: "r", ttl: .seconds(60), at: now) == nil)
        #expect(cache.put("d", Self.answer("x"), scope: "s", route: "r", ttl: .zero, at: now) == nil)
        #expect(cache.get("b", at: now) == nil)
        #expect(cache.get("a", at: now) != nil && cache.get("c", at: now) != nil)
        #expect(cache.bytes <= 3_000)
    }

    @Test func flushByScopeAndRoute() {
        let now = ContinuousClock.now
        var cache = ResponseCache(capacity: 1 << 20)
        cache.put("1", Self.answer("a"), scope: "tenant:acme", route: "r", ttl: .seconds(60), at: now)
        cache.put("2", Self.answer("b"), scope: "tenant:globex", route: "r", ttl: .seconds(60), at: now)
        cache.put("3", Self.answer("c"), scope: "tenant:acme", route: "other", ttl: .seconds(60), at: now)
        #expect(cache.flush(scope: "tenant:acme", route: "r") == ["1"])
        #expect(cache.flush(route: "other") == ["3"])
        #expect(cache.flush() == ["2"] && cache.count == 0)
    }

    @Test func aRecordedStreamReplaysAsTheSameAnswer() throws {
        let response = ChatResponse(
            id: "id", model: "m",
            content: [.text("Let me check."), .toolUse(id: "call_1", name: "weather", input: try JSONValue.parse(#"{"city":"Paris"}"#))],
            stopReason: .toolUse, usage: Usage(inputTokens: 12, outputTokens: 9)
        )
        let answer = CachedAnswer(response: response, provider: "p", upstreamModel: "m")
        var recording = StreamRecording()
        recording.record(answer.events)
        #expect(recording.response == response)
        var cut = StreamRecording()
        cut.record(Array(answer.events.dropLast()))
        #expect(cut.response == nil)
        var failed = StreamRecording()
        failed.record([.start(id: "i", model: "m"), .textDelta("par"), .failure(.streamInterrupted(provider: "p", detail: "cut")), .end])
        #expect(failed.response == nil)
    }
}

struct SemanticIndexTests {
    @Test func aRewordedQuestionIsCloseAndAnotherQuestionIsNot() async throws {
        let embedder = NGramEmbedder()
        let vectors = try await embedder.embed([
            "What is the capital of France?", "what's the capital of France", "How do I bake sourdough bread at home?",
        ])
        var index = SemanticIndex()
        index.insert(vectors[0], key: "france", partition: "p")
        #expect(index.nearest(vectors[1], partition: "p", threshold: 0.8)?.key == "france")
        #expect(index.nearest(vectors[2], partition: "p", threshold: 0.8) == nil)
        #expect(index.nearest(vectors[1], partition: "other", threshold: 0.1) == nil)
    }

    /// The vectorized dot product (AVX2 where the CPU has it) equals the plain sum at every length,
    /// tails included.
    @Test func theDotProductMatchesThePlainSum() {
        var random = SplitMix(seed: 3)
        for count in [0, 1, 7, 8, 9, 31, 32, 33, 383, 384, 385, 1_536] {
            let a = (0..<count).map { _ in Float.random(in: -1...1, using: &random) }
            let b = (0..<count).map { _ in Float.random(in: -1...1, using: &random) }
            let plain = zip(a, b).reduce(Double(0)) { $0 + Double($1.0) * Double($1.1) }
            #expect(abs(Double(SemanticIndex.dot(a, b)) - plain) < 1e-4, "length \(count)")
        }
    }

    /// Vectors at rest are half precision: the conversion rounds as Swift's `Float16` does (the
    /// vectorized body and the one-by-one tail alike, specials included), and the mixed and half-half
    /// dot products equal the plain sums of the rounded values.
    @Test func halfPrecisionRoundsLikeFloat16AndItsDotProductsAgree() {
        var random = SplitMix(seed: 5)
        let specials: [Float] = [0, -0.0, 1, -1, 0.333_333, 1e-5, -3e-7, 6.1e-5, 65_504, 70_000, -.infinity, 2049, 2051]
        for count in [specials.count, 16 + specials.count, 383] {
            var source = (0..<count).map { _ in Float.random(in: -1...1, using: &random) }
            source.replaceSubrange((count - specials.count)..<count, with: specials)
            var halves = [UInt16](repeating: 0, count: count)
            switchyard_to_half(source, &halves, count)
            #expect(halves == source.map { Float16($0).bitPattern }, "length \(count)")
            let finite = source.map { $0.isFinite && abs($0) < 60_000 ? $0 : 0.5 }
            var finiteHalves = [UInt16](repeating: 0, count: count)
            switchyard_to_half(finite, &finiteHalves, count)
            let rounded = finite.map { Double(Float(Float16($0))) }
            let mixed = zip(finite, rounded).reduce(Double(0)) { $0 + Double($1.0) * $1.1 }
            let both = rounded.reduce(Double(0)) { $0 + $1 * $1 }
            #expect(abs(Double(switchyard_dot_half(finite, finiteHalves, count)) - mixed) < 1e-2 * max(1, abs(mixed)))
            #expect(abs(Double(switchyard_dot_halves(finiteHalves, finiteHalves, count)) - both) < 1e-2 * max(1, abs(both)))
        }
    }

    /// An answer leaving the cache takes its vector along; a partition left empty goes too.
    @Test func removedKeysLeaveTheIndexAndEmptyPartitionsGo() async throws {
        let vectors = try await NGramEmbedder().embed(["What is the capital of France?", "what's the capital of France", "Bake bread"])
        var index = SemanticIndex()
        index.insert(vectors[0], key: "france", partition: "p")
        index.insert(vectors[2], key: "bread", partition: "q")
        #expect(index.partitionCount == 2)
        index.remove(key: "france")
        #expect(index.nearest(vectors[1], partition: "p", threshold: 0.5) == nil && index.partitionCount == 1)
        // A key filed again under another partition moves there.
        index.insert(vectors[2], key: "bread", partition: "r")
        #expect(index.count == 1 && index.nearest(vectors[2], partition: "q", threshold: 0.5) == nil)
        #expect(index.nearest(vectors[2], partition: "r", threshold: 0.5)?.key == "bread")
    }
}

struct ApproximateIndexTests {
    /// Past its threshold a partition moves to the HNSW graph: lookups still find the right entry.
    @Test func theGraphFindsNearNeighbours() {
        var random = SplitMix(seed: 11)
        func unit(_ vector: [Float]) -> [Float] {
            let norm = vector.reduce(0) { $0 + $1 * $1 }.squareRoot()
            return vector.map { $0 / norm }
        }
        let vectors = (0..<1_200).map { _ in unit((0..<32).map { _ in Float.random(in: -1...1, using: &random) }) }
        var index = SemanticIndex(partitionLimit: 10_000, approximateAbove: 300)
        for (number, vector) in vectors.enumerated() { index.insert(vector, key: "k\(number)", partition: "p") }
        var found = 0
        for number in stride(from: 0, to: 1_200, by: 12) {
            let query = unit(vectors[number].map { $0 + Float.random(in: -0.02...0.02, using: &random) })
            if index.nearest(query, partition: "p", threshold: 0.9)?.key == "k\(number)" { found += 1 }
        }
        #expect(found >= 95, "recall \(found)/100")
        // Unrelated queries stay below the threshold.
        let stranger = unit((0..<32).map { _ in Float.random(in: -1...1, using: &random) })
        #expect(index.nearest(stranger, partition: "p", threshold: 0.9) == nil)
        // A replaced key is found under its new vector only.
        index.insert(stranger, key: "k0", partition: "p")
        #expect(index.nearest(stranger, partition: "p", threshold: 0.9)?.key == "k0")
        #expect(index.count == 1_200)
    }

    /// A full partition evicts its oldest; in the graph their slots go to the newcomers, so churn
    /// does not grow it, and an evicted entry is never an answer.
    @Test func evictedEntriesLeaveTheGraphAndTheirSlotsAreReused() {
        var random = SplitMix(seed: 23)
        func unit() -> [Float] {
            let vector = (0..<32).map { _ in Float.random(in: -1...1, using: &random) }
            let norm = vector.reduce(0) { $0 + $1 * $1 }.squareRoot()
            return vector.map { $0 / norm }
        }
        var graph = HNSW()
        let first = (0..<500).map { _ in unit() }
        for (number, vector) in first.enumerated() { graph.insert(vector, key: "old\(number)") }
        for number in 0..<500 { graph.remove(key: "old\(number)") }
        let second = (0..<500).map { _ in unit() }
        for (number, vector) in second.enumerated() { graph.insert(vector, key: "new\(number)") }
        #expect(graph.count == 500 && graph.slots <= 501)
        var found = 0
        for (number, vector) in second.enumerated() where graph.nearest(vector)?.key == "new\(number)" { found += 1 }
        #expect(found >= 490, "recall \(found)/500")
        #expect(first.allSatisfy { graph.nearest($0)?.key.hasPrefix("new") == true })
    }
}

struct ReplayPacingTests {
    static let answer = CachedAnswer(
        response: ChatResponse(
            id: "r1", model: "m", content: [.text("one two three four five six seven eight")], stopReason: .endTurn,
            usage: Usage(inputTokens: 3, outputTokens: 8)
        ),
        provider: "sim", upstreamModel: "m", timing: AnswerTiming(firstToken: .milliseconds(400), total: .milliseconds(1_100))
    )

    /// The first token when the original's came, the rest evenly up to its end, the same text.
    @Test func stepsFollowTheOriginalsTiming() {
        let steps = Self.answer.pacedEvents()
        #expect(steps.first?.due == .milliseconds(400) && steps.last?.due == .milliseconds(1_100))
        // The opening with the first of 8 word pieces, 7 more, the closing.
        #expect(steps.count == 9)
        #expect(zip(steps, steps.dropFirst()).allSatisfy { $0.due <= $1.due })
        var recording = StreamRecording()
        for step in steps { recording.record(step.events) }
        #expect(recording.response == Self.answer.response)
        // At most `maxSteps` text pieces, whole words each.
        let coarse = Self.answer.pacedEvents(maxSteps: 3)
        let pieces = coarse.flatMap(\.events).compactMap { event -> String? in
            if case .textDelta(let text) = event { return text }
            return nil
        }
        #expect(pieces == ["one two three ", "four five six ", "seven eight"])
    }

    @Test func anAnswerWithoutTimingReplaysAtOnceAndTimingSurvivesThePersistentTier() {
        var untimed = Self.answer
        untimed.timing = nil
        #expect(untimed.pacedEvents().count == 1 && untimed.pacedEvents().first?.due == .zero)
        #expect(CachedAnswer(json: Self.answer.json) == Self.answer)
        var whole = Self.answer
        whole.timing = AnswerTiming(firstToken: nil, total: .milliseconds(900))
        #expect(CachedAnswer(json: whole.json) == whole)
        #expect(whole.pacedEvents().first?.due == .zero)
    }
}

struct EmbeddingAnswerTests {
    @Test func vectorsComeBackInInputOrderAtUnitLength() throws {
        let body = ByteBuffer(string: #"{"data":[{"index":1,"embedding":[0,3,4]},{"index":0,"embedding":[2,0,0]}]}"#)
        let vectors = try OpenAIEmbeddings.unitVectors(body, count: 2, provider: "p")
        #expect(vectors == [[1, 0, 0], [0, 0.6, 0.8]])
        #expect(OpenAIEmbeddings.request(model: "e", texts: ["a \"b\""]).string == #"{"model":"e","input":["a \"b\""]}"#)
    }

    /// A wordless language still replays in pieces.
    @Test func textWithoutSpacesIsCutByCharacters() {
        let pieces = CachedAnswer.pieces(of: "你好世界这是一个测试", count: 5)
        #expect(pieces == ["你好", "世界", "这是", "一个", "测试"])
    }

    @Test func vectorsSurviveTheirBytes() {
        let vector: [Float] = [1, -0.5, 0.333, .leastNonzeroMagnitude]
        #expect(OpenAIEmbeddings.littleEndianBytes([1]) == [0x00, 0x00, 0x80, 0x3F])
        #expect(OpenAIEmbeddings.vector(fromLittleEndian: OpenAIEmbeddings.littleEndianBytes(vector)) == vector)
    }

    @Test func aMissingZeroOrRaggedVectorIsMalformed() {
        for json in [
            #"{"data":[{"index":0,"embedding":[1,0]}]}"#,
            #"{"data":[{"index":0,"embedding":[0,0]},{"index":1,"embedding":[1,0]}]}"#,
            #"{"data":[{"index":0,"embedding":[1,0]},{"index":1,"embedding":[1,0,0]}]}"#,
            #"{"error":{"message":"x"}}"#,
        ] {
            #expect(throws: GatewayError.self) { try OpenAIEmbeddings.unitVectors(ByteBuffer(string: json), count: 2, provider: "p") }
        }
    }
}
