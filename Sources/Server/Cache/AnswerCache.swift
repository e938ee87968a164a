import Engine
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization

/// How one request uses the cache: where its answer would be, and whether to look and to keep.
struct CachePlan: Sendable {
    let key: String
    let scope: String
    let route: String
    let ttl: Duration
    /// `Cache-Control: no-cache` skips the lookup (the answer is refreshed).
    let lookup: Bool
    /// `Cache-Control: no-store` keeps the answer out.
    let store: Bool
    /// For the semantic index: the partition and the last user turn's text.
    let semantic: SemanticPlan?
    /// The last user turn's vector, once embedded (nil when the embedder failed).
    var vector: [Float]?
    /// Why the semantic match was not served, when the guard refused it.
    var refusal: SemanticGuard.Refusal?
    /// Replayed streams keep the original's pace.
    let realisticReplay: Bool

    /// What the semantic index files for the answer: its partition and vector, once embedded.
    var filedVector: FiledVector? {
        guard let semantic = self.semantic, let vector = self.vector else { return nil }
        return (semantic.partition, vector)
    }
}

/// A last user turn's vector and the semantic partition it belongs to.
typealias FiledVector = (partition: String, vector: [Float])

struct SemanticPlan: Sendable {
    let partition: String
    let text: String
    let threshold: Double
    /// Nil = the built-in n-gram embedder.
    let embedder: EmbedderSettings?
    /// A match must pass `SemanticGuard`.
    let guarded: Bool
}

/// What the cache said about a request, for `x-switchyard-cache` and the ledger.
enum CacheOutcome: String, Sendable {
    case hit
    case semanticHit = "semantic-hit"
    case miss
    case bypass
}

/// The gateway's response cache: exact entries in a byte-bounded LRU, and a semantic index of last
/// user turns that points into it. Scoped by caller, so tenants never share entries.
final class AnswerCache: Sendable {
    private let entries: Mutex<ResponseCache>
    /// The semantic index in shards by partition: a lookup waits only for work on its own shard's
    /// partitions (an insert into a large partition's graph takes milliseconds).
    private let shards = (0..<16).map { _ in SemanticShard() }
    private let embedder = NGramEmbedder()
    private let counters = Mutex<[CacheOutcome: Int]>([:])
    /// Calls to a provider's embedder that failed or timed out.
    let embeddingFailures = Atomic<Int>(0)
    /// One breaker per embedder (`provider/model`), with its provider's breaker policy: an embedder
    /// that keeps failing is rested instead of costing every miss its deadline.
    private let embedderBreakers = Mutex<[String: CircuitBreaker]>([:])
    /// The persistent tier: written behind every store, read back once at start (never on a request).
    private let store: Store?
    /// The fleet's tier in Redis (`cache: { shared: true }`): looked up when memory misses.
    let shared: SharedAnswerCache?

    init(capacity: Int, persistentIn store: Store?, shared: SharedAnswerCache? = nil) {
        self.entries = Mutex(ResponseCache(capacity: capacity))
        self.store = store
        self.shared = shared
    }

    /// Loads the persistent tier's unexpired entries into memory, as many as fit, and their vectors
    /// back into the semantic index.
    func warm() async throws -> Int {
        guard let store = self.store else { return 0 }
        let wall = Date().timeIntervalSince1970
        let now = ContinuousClock.now
        var loaded = 0
        for row in try await store.cacheEntries(now: wall) {
            // A stored row's expiry is an untrusted number too (1e300 would trap `Duration.seconds`).
            guard let answer = CachedAnswer(json: row.answer),
                let ttl = UntrustedNumber.duration(seconds: row.expiresAt - wall, atMost: .seconds(Self.longestTTL))
            else { continue }
            guard let evicted = self.entries.withLock({ $0.put(row.key, answer, scope: row.scope, route: row.route, ttl: ttl, at: now) }) else { continue }
            self.file(row.key, semantic: row.semantic, evicted: evicted)
            loaded += 1
        }
        return loaded
    }

    static let ttlHeader = HTTPField.Name("x-switchyard-cache-ttl")!
    static let namespaceHeader = HTTPField.Name("x-switchyard-cache-namespace")!

    /// The request's cache plan, or nil when its route does not cache or the request may not be cached
    /// (a non-zero temperature without an opt-in).
    /// - Throws: `invalidRequest` for an `x-switchyard-cache-ttl` that is not a number of seconds
    ///   between 1 s and 30 days.
    /// - Parameters:
    ///   - format: the request's API (`openai`, `anthropic`, `responses`): part of its key, so the same
    ///     body in two APIs never shares an answer.
    ///   - header: the request's field of that name (`Cache-Control` and ours).
    func plan(route: RouteSettings, body: ByteBuffer, format: String, caller: Caller, header: (HTTPField.Name) -> String?) throws -> CachePlan? {
        guard let settings = route.cache, let json = JSONValue.parse(body) else { return nil }
        let requestTTL = try header(Self.ttlHeader).map(Self.ttl)
        let temperature = json["temperature"]?.double
        guard settings.always || temperature == 0 || requestTTL != nil else { return nil }
        let control = (header(.cacheControl) ?? "").lowercased()
        let scope = caller.tenant.map { "tenant:\($0)" } ?? "anonymous"
        let namespace = header(Self.namespaceHeader)
        var semantic: SemanticPlan?
        if let threshold = settings.semanticThreshold, let text = Self.lastUserText(json) {
            // The embedder names the partition too: vectors of two models are not comparable.
            let space = settings.embedder?.identity ?? "local"
            let partition = CacheKey.partition(body: json, lastUserText: text, dialect: format, route: route.alias, scope: scope, namespace: namespace)
            semantic = SemanticPlan(
                partition: space + "|" + partition, text: text, threshold: threshold, embedder: settings.embedder, guarded: settings.semanticGuard
            )
        }
        return CachePlan(
            key: CacheKey.exact(body: json, dialect: format, route: route.alias, scope: scope, namespace: namespace),
            scope: scope, route: route.alias, ttl: requestTTL ?? settings.ttl,
            lookup: !control.contains("no-cache"), store: !control.contains("no-store"), semantic: semantic,
            realisticReplay: settings.realisticReplay
        )
    }

    static let longestTTL: Double = 30 * 86_400

    static func ttl(_ header: String) throws -> Duration {
        guard let seconds = Double(header.trimmingCharacters(in: .whitespaces)), seconds >= 1, seconds <= Self.longestTTL else {
            throw GatewayError.invalidRequest("x-switchyard-cache-ttl must be a number of seconds from 1 to \(Int(Self.longestTTL)) (30 days); got '\(header)'.")
        }
        return .milliseconds(Int64(seconds * 1000))
    }

    /// The answer stored under the request's exact key.
    func exactMatch(_ plan: CachePlan) -> CachedAnswer? {
        let now = ContinuousClock.now
        guard let answer = self.entries.withLock({ $0.get(plan.key, at: now) }) else {
            // If it had expired, its vector goes too (it lives in this request's own partition).
            if let semantic = plan.semantic { self.shard(semantic.partition).index.withLock { $0.remove(key: plan.key) } }
            return nil
        }
        self.count(.hit)
        return answer
    }

    /// The answer another replica stored in the fleet's tier, copied into memory for the time it has left.
    func sharedMatch(_ plan: CachePlan) async -> CachedAnswer? {
        guard let shared = self.shared, let (answer, ttl) = await shared.answer(for: plan) else { return nil }
        if let evicted = self.entries.withLock({ $0.put(plan.key, answer, scope: plan.scope, route: plan.route, ttl: ttl, at: .now) }) {
            self.file(plan.key, semantic: nil, evicted: evicted)
        }
        return answer
    }

    /// What the semantic index has for a request.
    enum SemanticMatch {
        case hit(CachedAnswer)
        /// The closest answer passed the threshold, and the guard refused it.
        case refused(SemanticGuard.Refusal)
        case none
    }

    /// The answer to the closest reworded last turn, once the plan's vector is known, if it passes
    /// the guard (`SemanticGuard`): a question the threshold finds close may still ask another
    /// thing. A match whose answer has expired is forgotten and the next closest tried (a few times
    /// at most).
    func semanticMatch(_ plan: CachePlan) -> SemanticMatch {
        guard let semantic = plan.semantic, let vector = plan.vector else { return .none }
        let shard = self.shard(semantic.partition)
        for _ in 0..<3 {
            guard let match = shard.index.withLock({ $0.nearest(vector, partition: semantic.partition, threshold: semantic.threshold) }) else { return .none }
            if let answer = self.entries.withLock({ $0.get(match.key, at: ContinuousClock.now) }) {
                if semantic.guarded {
                    let refusal = answer.question.map { SemanticGuard.refusal(cached: $0, asked: semantic.text) } ?? .unverifiable
                    if let refusal { return .refused(refusal) }
                }
                self.count(.semanticHit)
                return .hit(answer)
            }
            shard.index.withLock { $0.remove(key: match.key) }
        }
        return .none
    }

    private func shard(_ partition: String) -> SemanticShard {
        self.shards[Int(UInt(bitPattern: partition.hashValue) % UInt(self.shards.count))]
    }

    /// Files an answer's vector, and drops the vectors of the answers its arrival evicted.
    private func file(_ key: String, semantic: FiledVector?, evicted: [String]) {
        if !evicted.isEmpty {
            for shard in self.shards { shard.index.withLock { index in for gone in evicted { index.remove(key: gone) } } }
        }
        if let semantic { self.shard(semantic.partition).index.withLock { $0.insert(semantic.vector, key: key, partition: semantic.partition) } }
    }

    /// Whether the embedder may be called now (nil: it is resting after failures).
    func admitEmbedding(_ embedder: EmbedderSettings, policy: BreakerPolicy, at now: ContinuousClock.Instant) -> CircuitBreaker.Admission? {
        self.embedderBreakers.withLock { breakers in
            var breaker = breakers.removeValue(forKey: embedder.identity) ?? CircuitBreaker(policy: policy)
            defer { breakers[embedder.identity] = breaker }
            return breaker.admit(at: now)
        }
    }

    /// How the admitted call went: true, false, or nil when nobody waited for it (the client left).
    /// - Returns: whether this failure opened the breaker.
    @discardableResult
    func settleEmbedding(_ embedder: EmbedderSettings, _ admission: CircuitBreaker.Admission, succeeded: Bool?, at now: ContinuousClock.Instant) -> Bool {
        self.embedderBreakers.withLock { breakers in
            guard var breaker = breakers.removeValue(forKey: embedder.identity) else { return false }
            defer { breakers[embedder.identity] = breaker }
            let before = breaker.state
            switch succeeded {
            case true?: breaker.recordSuccess(admission, at: now)
            case false?: breaker.recordFailure(admission, at: now)
            case nil: breaker.release(admission)
            }
            guard case .open = breaker.state else { return false }
            return breaker.state != before
        }
    }

    /// The built-in embedder's vector: no I/O, so it runs inline.
    func localVector(_ text: String) -> [Float] {
        self.embedder.vector(text)
    }

    func store(_ answer: CachedAnswer, plan: CachePlan) {
        guard plan.store else { return }
        var answer = answer
        // The question it answered goes with it, for the guard of later semantic matches.
        answer.question = plan.semantic?.text
        let now = ContinuousClock.now
        // Refused (bigger than the whole cache): then neither kept on disk nor indexed.
        guard let evicted = self.entries.withLock({ $0.put(plan.key, answer, scope: plan.scope, route: plan.route, ttl: plan.ttl, at: now) }) else { return }
        self.shared?.store(answer, plan: plan)
        if let store = self.store {
            let row = Store.CacheRow(
                key: plan.key, scope: plan.scope, route: plan.route, expiresAt: Date().timeIntervalSince1970 + plan.ttl.seconds,
                answer: answer.json, semantic: plan.filedVector
            )
            Task { try? await store.putCacheEntry(row) }
        }
        self.file(plan.key, semantic: plan.filedVector, evicted: evicted)
    }

    /// - Returns: how many entries went.
    func flush(tenant: String?, route: String?) -> Int {
        let scope = tenant.map { "tenant:\($0)" }
        let removed = self.entries.withLock { $0.flush(scope: scope, route: route) }
        if let store = self.store { Task { try? await store.deleteCacheEntries(scope: scope, route: route) } }
        for shard in self.shards {
            shard.index.withLock { index in
                if tenant == nil && route == nil { index.removeAll() } else { for key in removed { index.remove(key: key) } }
            }
        }
        return removed.count
    }

    func count(_ outcome: CacheOutcome) {
        self.counters.withLock { $0[outcome, default: 0] += 1 }
    }

    var stats: AdminCache {
        let (entries, bytes) = self.entries.withLock { ($0.count, $0.bytes) }
        let counts = self.counters.withLock { $0 }
        let looked = Double(max(1, (counts[.hit] ?? 0) + (counts[.semanticHit] ?? 0) + (counts[.miss] ?? 0)))
        let (vectors, partitions) = self.shards.reduce((0, 0)) { total, shard in
            shard.index.withLock { (total.0 + $0.count, total.1 + $0.partitionCount) }
        }
        return AdminCache(
            entries: entries, bytes: bytes, hitRate: Double(counts[.hit] ?? 0) / looked,
            semanticHitRate: Double(counts[.semanticHit] ?? 0) / looked, missRate: Double(counts[.miss] ?? 0) / looked,
            vectors: vectors, partitions: partitions, embeddingFailures: self.embeddingFailures.load(ordering: .relaxed)
        )
    }

    /// The text of the last turn when it is the user's and only text: chat's last message (OpenAI or
    /// Anthropic shape), or the Responses API's `input` (a string, or its last item). A turn with an
    /// image, a file or a tool result has no semantic lookup: two such turns with the same words are
    /// not the same question.
    static func lastUserText(_ json: JSONValue) -> String? {
        if let input = json["input"]?.string { return input }
        guard let last = (json["messages"] ?? json["input"])?.array?.last, last["role"]?.string == "user" else { return nil }
        if let text = last["content"]?.string { return text }
        guard let parts = last["content"]?.array, !parts.isEmpty, parts.allSatisfy({ ["text", "input_text"].contains($0["type"]?.string) }) else { return nil }
        return parts.compactMap { $0["text"]?.string }.joined(separator: "\n")
    }
}

/// One lock's worth of the semantic index.
private final class SemanticShard: Sendable {
    let index = Mutex(SemanticIndex())
}

extension GatewayState {
    /// Answers from the cache in the client's dialect, streamed if asked: a replay of the canonical
    /// answer, with no upstream call and no upstream cost.
    /// - Parameter responses: set for a Responses API client: the Response it gets (and its events).
    func answerFromCache(
        _ cached: CachedAnswer, outcome: CacheOutcome, dialect: ClientDialect, streaming: Bool, includeUsage: Bool, realisticReplay: Bool,
        route: String, admission: Admission, requestID: String, started: ContinuousClock.Instant, routing: RoutingSnapshot,
        responses: ResponsesAnswer? = nil
    ) -> Response {
        var answer = cached
        answer.response.id = requestID
        let response = answer.response
        let created = Int(Date().timeIntervalSince1970)
        var headers: HTTPFields = [:]
        headers[.cacheStatus] = outcome.rawValue
        headers[.switchyardProvider] = cached.provider
        headers.setRateLimitHeaders(admission.ticket?.report)
        headers.setCost(0)
        headers.setGatewayHeaders(requestID: requestID, overhead: ContinuousClock.now - started)
        let body: ResponseBody
        if streaming {
            headers[.contentType] = "text/event-stream"
            headers[.cacheControl] = "no-cache"
            let model = cached.upstreamModel
            let encoder = { @Sendable () -> any StreamEncoder in
                if let responses { return responses.streamEncoder(model: model) }
                return dialect == .openAI
                    ? OpenAIStreamEncoder(model: model, created: created, includeUsage: includeUsage, fallbackID: requestID)
                    : AnthropicStreamEncoder(model: model, fallbackID: requestID)
            }
            if realisticReplay, answer.timing != nil {
                let steps = answer.pacedEvents()
                let replayed = ContinuousClock.now
                body = ResponseBody { writer in
                    var paced = encoder()
                    for step in steps {
                        try await Task.sleep(until: replayed + step.due, clock: .continuous)
                        try await writer.write(ByteBuffer(string: paced.encode(step.events)))
                    }
                    try await writer.finish(nil)
                }
            } else {
                var whole = encoder()
                body = ResponseBody(byteBuffer: ByteBuffer(string: whole.encode(answer.events)))
            }
        } else {
            headers[.contentType] = "application/json"
            let text = if let responses {
                responses.object(response, model: cached.upstreamModel)
            } else if dialect == .openAI {
                OpenAIResponseEncoder.completion(response, model: cached.upstreamModel, created: created)
            } else {
                AnthropicResponseEncoder.message(response, model: cached.upstreamModel)
            }
            body = ResponseBody(byteBuffer: ByteBuffer(string: text))
        }
        // The route's own target, with its price: what the answer would have cost.
        let target = routing.routes.routes[route]?.targets.first { $0.provider == cached.provider && $0.model == cached.upstreamModel }
            ?? RouteTarget(provider: cached.provider, model: cached.upstreamModel)
        var summary = RequestSummary(
            requestID: requestID, operation: responses == nil ? "chat" : "responses", route: route, target: target.key, status: 200, failure: nil, message: nil,
            latency: ContinuousClock.now - started, usage: response.usage
        )
        summary.caller = admission.caller
        summary.admission = admission
        summary.cache = outcome.rawValue
        summary.costSavedUSD = routing.price(of: target).map { $0.cost(response.usage) } ?? 0
        summary.finishReason = OpenAIResponseEncoder.finishReason(response.stopReason)
        summary.trace = RequestTrace.current
        self.finish(summary)
        return Response(status: .ok, headers: headers, body: body)
    }
}

extension HTTPField.Name {
    /// hit | semantic-hit | miss | bypass
    static let cacheStatus = HTTPField.Name("x-switchyard-cache")!
    /// On a miss: why the guard refused the semantic match (`SemanticGuard.Refusal`).
    static let cacheRefused = HTTPField.Name("x-switchyard-cache-refused")!
}

/// Decodes a relayed stream's bytes on the side into a canonical answer, for the cache.
struct StreamRecorder {
    private var decoder: any StreamDecoder
    private var recording = StreamRecording()

    init(_ decoder: any StreamDecoder) {
        self.decoder = decoder
    }

    mutating func feed(_ chunk: ByteBuffer) {
        self.recording.record(self.decoder.feed(chunk))
    }

    mutating func record(_ events: [StreamEvent]) {
        self.recording.record(events)
    }

    /// The complete answer, or nil when the stream did not end cleanly.
    mutating func finish() -> ChatResponse? {
        if let response = self.recording.response { return response }
        self.recording.record(self.decoder.finish())
        return self.recording.response
    }
}
