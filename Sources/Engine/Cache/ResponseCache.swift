import Foundation

/// `routes.<alias>.cache:` — whether and how a route's answers are reused.
public struct CacheSettings: Sendable, Equatable {
    public var ttl: Duration
    /// Only requests with `temperature: 0` are cached unless `always`, or the request opts in with
    /// `x-switchyard-cache-ttl`.
    public var always = false
    /// Reuse answers to reworded last turns (same conversation before it, same parameters).
    public var semanticThreshold: Double?
    /// `semantic.threshold` when the config names none: with all-MiniLM-L6-v2 and the guard, no
    /// wrong answer on the benchmark's near misses and most paraphrases served (docs/caching.md).
    public static let defaultSemanticThreshold = 0.80
    /// Whose vectors the semantic index compares; nil = the built-in `NGramEmbedder` (named
    /// `embedder: ngram` in a config file, never a silent default).
    public var embedder: EmbedderSettings?
    /// A semantic match must pass `SemanticGuard` before it is served (`guard: false` turns it off).
    public var semanticGuard = true
    /// Replayed streams keep the pace of the original answer (its first-token wait, then its
    /// tokens spread over its generation time) instead of arriving at once.
    public var realisticReplay = false

    public init(ttl: Duration = .seconds(3_600)) {
        self.ttl = ttl
    }
}

/// `semantic: { embedder: { provider, model } }`: an embeddings model of a configured provider.
public struct EmbedderSettings: Sendable, Equatable {
    public var provider: String
    public var model: String

    public init(provider: String, model: String) {
        self.provider = provider
        self.model = model
    }

    /// Names the vector space, so vectors of different embedders never meet in one partition.
    public var identity: String { "\(self.provider)/\(self.model)" }
}

/// An answer as the cache keeps it: canonical, so it replays in either dialect, streamed or not.
public struct CachedAnswer: Sendable, Equatable {
    public var response: ChatResponse
    /// The route target that produced it, for the cost it saves.
    public var provider: String
    public var upstreamModel: String
    /// How long the original took, for a replay at its pace.
    public var timing: AnswerTiming?
    /// The last user turn it answered, when it is filed for semantic hits: what `SemanticGuard`
    /// compares a reworded question with.
    public var question: String?

    public init(response: ChatResponse, provider: String, upstreamModel: String, timing: AnswerTiming? = nil, question: String? = nil) {
        self.response = response
        self.provider = provider
        self.upstreamModel = upstreamModel
        self.timing = timing
        self.question = question
    }

    /// Roughly what it holds in memory: the LRU's unit.
    var size: Int {
        self.response.content.reduce(256) { total, part in
            switch part {
            case .text(let text): return total + text.utf8.count
            case .toolUse(let id, let name, let input): return total + id.utf8.count + name.utf8.count + input.jsonText.utf8.count
            default: return total + 64
            }
        }
    }

    /// The answer as a canonical stream, to replay to a streaming client.
    public var events: [StreamEvent] {
        var events: [StreamEvent] = [.start(id: self.response.id, model: self.response.model)]
        var toolIndex = 0
        for part in self.response.content {
            switch part {
            case .text(let text): events.append(.textDelta(text))
            case .toolUse(let id, let name, let input):
                events.append(.toolCallStart(index: toolIndex, id: id, name: name))
                events.append(.toolCallArguments(index: toolIndex, fragment: input.jsonText))
                toolIndex += 1
            default: continue
            }
        }
        return events + [.stop(self.response.stopReason), .usage(self.response.usage), .end]
    }

    /// The stream replayed at the original's pace: the first step when the original's first token
    /// came, the text cut into about one piece a token (at most `maxSteps`) spread evenly up to when
    /// it ended, the closing events then. Each step's events with when they are due, counted from the
    /// start of the replay; one step at once without a timing.
    public func pacedEvents(maxSteps: Int = 256) -> [(due: Duration, events: [StreamEvent])] {
        let events = self.events
        guard let timing = self.timing else { return [(.zero, events)] }
        var opening: [StreamEvent] = []
        var middle: [[StreamEvent]] = []
        var closing: [StreamEvent] = []
        let pieces = max(1, min(maxSteps, self.response.usage.outputTokens))
        for event in events {
            switch event {
            case .start: opening.append(event)
            case .textDelta(let text): middle += Self.pieces(of: text, count: pieces).map { [.textDelta($0)] }
            case .toolCallStart, .toolCallArguments: middle.append([event])
            default: closing.append(event)
            }
        }
        let first = min(timing.firstToken ?? .zero, timing.total)
        var steps: [(due: Duration, events: [StreamEvent])] = [(first, opening + (middle.first ?? []))]
        let rest = middle.dropFirst()
        for (offset, step) in rest.enumerated() {
            steps.append((first + (timing.total - first) * (Double(offset + 1) / Double(rest.count)), step))
        }
        steps.append((timing.total, closing))
        return steps
    }

    /// `text` cut after whitespace into at most `count` pieces of about as many words each (by
    /// characters when it has too little whitespace for that).
    static func pieces(of text: String, count: Int) -> [String] {
        var words: [Substring] = []
        var start = text.startIndex
        for index in text.indices where text[index].isWhitespace {
            let next = text.index(after: index)
            words.append(text[start..<next])
            start = next
        }
        if start < text.endIndex { words.append(text[start...]) }
        if words.count < count / 2 {
            // Little whitespace (Chinese, Japanese, one long token): cut by characters instead.
            let characters = Array(text)
            let perPiece = max(1, (characters.count + count - 1) / count)
            return stride(from: 0, to: characters.count, by: perPiece).map { String(characters[$0..<min($0 + perPiece, characters.count)]) }
        }
        guard words.count > count else { return words.map(String.init) }
        let perPiece = (words.count + count - 1) / count
        return stride(from: 0, to: words.count, by: perPiece).map { words[$0..<min($0 + perPiece, words.count)].joined() }
    }
}

/// How long an answer took to generate: the wait for its first token (known when it was streamed)
/// and the whole of it.
public struct AnswerTiming: Sendable, Equatable {
    public var firstToken: Duration?
    public var total: Duration

    public init(firstToken: Duration?, total: Duration) {
        self.firstToken = firstToken
        self.total = total
    }
}

/// Exact-match entries in a least-recently-used list bounded by bytes, each with its own expiry.
/// A value type over injected time: the server keeps it behind a lock, tests run it on a fake clock.
public struct ResponseCache: Sendable {
    public struct Entry: Sendable {
        public let answer: CachedAnswer
        /// `tenant:acme`, `anonymous`: who may read it.
        public let scope: String
        public let route: String
        let expires: ContinuousClock.Instant
        let size: Int
        fileprivate var lastUse: UInt64
    }

    public let capacity: Int
    public private(set) var bytes = 0
    private var entries: [String: Entry] = [:]
    private var clock: UInt64 = 0

    public init(capacity: Int) {
        self.capacity = max(0, capacity)
    }

    public var count: Int { self.entries.count }

    public mutating func get(_ key: String, at now: ContinuousClock.Instant) -> CachedAnswer? {
        guard var entry = self.entries[key] else { return nil }
        guard now < entry.expires else {
            self.remove(key)
            return nil
        }
        self.clock += 1
        entry.lastUse = self.clock
        self.entries[key] = entry
        return entry.answer
    }

    /// - Returns: the keys evicted to make room (what points at them, such as the semantic index,
    ///   can go too); nil when the answer was not kept (bigger than the whole cache, or no TTL).
    @discardableResult
    public mutating func put(
        _ key: String, _ answer: CachedAnswer, scope: String, route: String, ttl: Duration, at now: ContinuousClock.Instant
    ) -> [String]? {
        let size = answer.size + key.utf8.count
        guard size <= self.capacity, ttl > .zero else { return nil }
        self.remove(key)
        self.clock += 1
        self.entries[key] = Entry(answer: answer, scope: scope, route: route, expires: now + ttl, size: size, lastUse: self.clock)
        self.bytes += size
        // Evicts the least recently used until it fits (a linear pass: evictions are rare next to hits).
        var evicted: [String] = []
        while self.bytes > self.capacity, let oldest = self.entries.min(by: { $0.value.lastUse < $1.value.lastUse })?.key {
            self.remove(oldest)
            evicted.append(oldest)
        }
        return evicted
    }

    /// Removes entries by scope and/or route (nil = any).
    /// - Returns: the removed keys.
    @discardableResult
    public mutating func flush(scope: String? = nil, route: String? = nil) -> [String] {
        let doomed = self.entries.filter { (scope == nil || $0.value.scope == scope) && (route == nil || $0.value.route == route) }.map(\.key)
        for key in doomed { self.remove(key) }
        return doomed
    }

    private mutating func remove(_ key: String) {
        if let entry = self.entries.removeValue(forKey: key) { self.bytes -= entry.size }
    }
}

/// The cache key of a request: the route, the caller's scope, an optional namespace and everything
/// in the body that can change the answer, serialized canonically (keys sorted, `model`, `stream`
/// and `stream_options` left out: a streaming and a non-streaming client share an entry).
public enum CacheKey {
    /// Members that do not change the answer's content.
    /// Members that do not change the answer (`store`: whether it is kept, in Chat Completions and the Responses API).
    static let ignored: Set<String> = ["model", "stream", "stream_options", "user", "metadata", "store"]

    public static func exact(body: JSONValue, dialect: String, route: String, scope: String, namespace: String?) -> String {
        "exact|" + self.digest("\(dialect)|\(route)|\(scope)|\(namespace ?? "")|" + self.canonical(body, dropping: self.ignored))
    }

    /// The partition of the semantic index: everything but the text of the last user turn, so only
    /// requests with the same conversation before it and the same parameters can ever match.
    public static func partition(body: JSONValue, lastUserText: String, dialect: String, route: String, scope: String, namespace: String?) -> String {
        var trimmed = body
        // Chat's `messages`, or the Responses API's `input` (a string is one user turn).
        if case .object(var members) = body, let index = members.firstIndex(where: { $0.key == "messages" || $0.key == "input" }) {
            switch members[index].value {
            case .array(var messages) where !messages.isEmpty:
                messages[messages.count - 1] = .string("<last user turn>")
                members[index].value = .array(messages)
            default:
                members[index].value = .string("<last user turn>")
            }
            trimmed = .object(members)
        }
        return "semantic|" + self.digest("\(dialect)|\(route)|\(scope)|\(namespace ?? "")|" + self.canonical(trimmed, dropping: self.ignored))
    }

    /// Sorted keys at every level, so member order in the client's JSON does not matter.
    static func canonical(_ value: JSONValue, dropping: Set<String> = []) -> String {
        switch value {
        case .object(let members):
            let inner = members.filter { !dropping.contains($0.key) }.sorted { $0.key < $1.key }
                .map { JSONWriter.quoted($0.key) + ":" + self.canonical($0.value) }
            return "{" + inner.joined(separator: ",") + "}"
        case .array(let items):
            return "[" + items.map { self.canonical($0) }.joined(separator: ",") + "]"
        default:
            return value.jsonText
        }
    }

    /// FNV-1a 128 over the text, as two 64-bit halves in hex: a collision needs 2^64 keys.
    static func digest(_ text: String) -> String {
        var first: UInt64 = 0xcbf2_9ce4_8422_2325
        var second: UInt64 = 0x8422_2325_cbf2_9ce4
        for byte in text.utf8 {
            first = (first ^ UInt64(byte)) &* 0x100_0000_01b3
            second = (second ^ UInt64(byte)) &* 0x100_0000_01b3 &+ 0x9E37_79B9
        }
        return String(first, radix: 16) + String(second, radix: 16) + ":\(text.utf8.count)"
    }
}

/// Builds the canonical answer of a stream from its events; complete only at a clean end.
public struct StreamRecording: Sendable {
    private var id = ""
    private var model = ""
    private var text = ""
    private var tools: [Int: (id: String, name: String, arguments: String)] = [:]
    private var stopReason: StopReason = .endTurn
    private var usage = Usage()
    private var failed = false
    private var ended = false

    public init() {}

    public mutating func record(_ events: [StreamEvent]) {
        for event in events {
            switch event {
            case .start(let id, let model): (self.id, self.model) = (id, model)
            case .textDelta(let delta): self.text += delta
            case .toolCallStart(let index, let id, let name): self.tools[index] = (id, name, "")
            case .toolCallArguments(let index, let fragment): self.tools[index]?.arguments += fragment
            case .stop(let reason): self.stopReason = reason
            case .usage(let usage): self.usage = usage
            case .end: self.ended = true
            case .failure: self.failed = true
            }
        }
    }

    /// The answer, or nil when the stream failed or never ended properly: those are never cached.
    public var response: ChatResponse? {
        guard self.ended, !self.failed else { return nil }
        var content: [ContentPart] = self.text.isEmpty ? [] : [.text(self.text)]
        for index in self.tools.keys.sorted() {
            guard let tool = self.tools[index] else { continue }
            let input = (try? JSONValue.parse(tool.arguments.isEmpty ? "{}" : tool.arguments)) ?? .object([])
            content.append(.toolUse(id: tool.id, name: tool.name, input: input))
        }
        return ChatResponse(id: self.id, model: self.model, content: content, stopReason: self.stopReason, usage: self.usage)
    }
}

extension CachedAnswer {
    /// The answer as JSON, for the persistent tier.
    public var json: String {
        var json = JSONWriter()
        json.openObject()
        json.field("provider", self.provider)
        json.field("upstreamModel", self.upstreamModel)
        if let question = self.question { json.field("question", question) }
        json.field("id", self.response.id)
        json.field("model", self.response.model)
        json.field("stop", self.response.stopReason.rawValue)
        json.key("usage")
        json.openObject()
        json.field("input", self.response.usage.inputTokens)
        json.field("cached", self.response.usage.cachedInputTokens)
        json.field("cacheWrite", self.response.usage.cacheWriteInputTokens)
        json.field("output", self.response.usage.outputTokens)
        json.field("reasoning", self.response.usage.reasoningTokens)
        json.closeObject()
        json.key("content")
        json.openArray()
        for part in self.response.content {
            switch part {
            case .text(let text):
                json.openObject()
                json.field("text", text)
                json.closeObject()
            case .toolUse(let id, let name, let input):
                json.openObject()
                json.field("toolId", id)
                json.field("toolName", name)
                json.key("input")
                json.raw(input.jsonText)
                json.closeObject()
            default:
                continue
            }
        }
        json.closeArray()
        if let timing = self.timing {
            if let firstToken = timing.firstToken { json.field("firstTokenMs", Int(firstToken.milliseconds)) }
            json.field("totalMs", Int(timing.total.milliseconds))
        }
        json.closeObject()
        return json.output
    }

    /// A stored duration in milliseconds, bounded: a replay waits that long.
    private static func storedDuration(_ value: JSONValue?) -> Duration? {
        value?.double.flatMap { UntrustedNumber.duration(seconds: $0 / 1_000) }
    }

    /// Reads what `json` wrote; nil for anything else.
    public init?(json text: String) {
        guard let json = try? JSONValue.parse(text), let provider = json["provider"]?.string, let upstreamModel = json["upstreamModel"]?.string,
            let stop = json["stop"]?.string.flatMap(StopReason.init(rawValue:)), let parts = json["content"]?.array
        else { return nil }
        let usage = Usage(
            inputTokens: json["usage"]?["input"]?.tokenCount ?? 0, cachedInputTokens: json["usage"]?["cached"]?.tokenCount ?? 0,
            cacheWriteInputTokens: json["usage"]?["cacheWrite"]?.tokenCount ?? 0, outputTokens: json["usage"]?["output"]?.tokenCount ?? 0,
            reasoningTokens: json["usage"]?["reasoning"]?.tokenCount ?? 0
        )
        let content: [ContentPart] = parts.compactMap { part in
            if let text = part["text"]?.string { return .text(text) }
            guard let id = part["toolId"]?.string, let name = part["toolName"]?.string else { return nil }
            return .toolUse(id: id, name: name, input: part["input"] ?? .object([]))
        }
        self.init(
            response: ChatResponse(id: json["id"]?.string ?? "", model: json["model"]?.string ?? "", content: content, stopReason: stop, usage: usage),
            provider: provider, upstreamModel: upstreamModel,
            timing: Self.storedDuration(json["totalMs"]).map { AnswerTiming(firstToken: Self.storedDuration(json["firstTokenMs"]), total: $0) },
            question: json["question"]?.string
        )
    }
}
