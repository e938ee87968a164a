import Engine
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization

/// The built-in simulated providers: OpenAI-, Anthropic-, Ollama-, Gemini- and Azure-shaped endpoints
/// on one server.
///
/// Deterministic text (the same prompt gives the same answer), token-by-token streaming with a latency
/// model, exact usage, tool calls when tools are offered, and faults on demand. It is the test double
/// of every gateway test and the zero-key demo's upstream. It writes its answers with its own code,
/// after the recorded fixtures, not with the gateway's encoders: a double built from the code under
/// test would agree with it by construction.
public struct SimulatorRouter: Sendable {
    let settings: SimulatorSettings
    /// Request ids are a counter, so recorded output stays deterministic apart from `created`.
    private let sequence = RequestCounter()
    /// Tells this simulator's ids from another's (two of them never answer with the same response id, as OpenAI's never do).
    private let instance = String(UInt32.random(in: 0...UInt32.max), radix: 16)
    /// Streams being written right now: how a test sees that a cancelled client cancelled us too.
    public let activeStreams = StreamGauge()
    /// Chat requests being answered, streams or not: the load `/metrics` reports as vLLM does.
    public let activeRequests = StreamGauge()
    /// Models asked for so far, which `/api/ps` reports as loaded, as Ollama would after serving them.
    private let warmModels = ModelSet()
    /// Responses kept for `previous_response_id`, as OpenAI keeps them.
    private let shelf = ResponseShelf()

    public init(settings: SimulatorSettings) {
        self.settings = settings
    }

    public func build() -> Router<BasicRequestContext> {
        let router = Router()
        router.post("/v1/chat/completions") { request, context in
            try await self.chat(request, dialect: OpenAISimulatorDialect.self, parse: SimulatorRequestParser.openAI)
        }
        router.post("/chat/completions") { request, context in
            try await self.chat(request, dialect: OpenAISimulatorDialect.self, parse: SimulatorRequestParser.openAI)
        }
        // Azure OpenAI's classic API: the deployment in the path names the model, `api-version` is required.
        router.post("/openai/deployments/{deployment}/chat/completions") { request, context in
            guard request.uri.queryParameters["api-version"] != nil else {
                return Self.json(404, #"{"error":{"code":"404","message":"Resource not found"}}"#)
            }
            guard request.headers[HTTPField.Name("api-key")!] != nil else {
                return Self.json(401, #"{"error":{"code":"401","message":"Access denied due to invalid subscription key."}}"#)
            }
            let deployment = context.parameters.get("deployment") ?? "deployment"
            return try await self.chat(request, dialect: OpenAISimulatorDialect.self) { json throws(SimulatorRequestParser.Failure) in
                var json = json
                json["model"] = deployment
                return try SimulatorRequestParser.openAI(json)
            }
        }
        // The Responses API, with its state: a follow-up continues the kept conversation.
        for path in ["/v1/responses", "/responses"] {
            router.post(RouterPath(path)) { request, context in try await self.respond(request) }
        }
        router.get("/v1/responses/{id}") { _, context in
            let id = context.parameters.get("id") ?? ""
            guard let kept = self.shelf.find(id) else { return Self.error(Self.responseNotFound(id, param: nil)) }
            return Self.json(200, kept.response)
        }
        router.delete("/v1/responses/{id}") { _, context in
            let id = context.parameters.get("id") ?? ""
            guard self.shelf.remove(id) else { return Self.error(Self.responseNotFound(id, param: nil)) }
            var json = JSONWriter()
            json.openObject()
            json.field("id", id)
            json.field("object", "response")
            json.field("deleted", true)
            json.closeObject()
            return Self.json(200, json.output)
        }
        // What OpenAI lists of a kept conversation (its texts, as input messages, newest first).
        router.get("/v1/responses/{id}/input_items") { _, context in
            let id = context.parameters.get("id") ?? ""
            guard let kept = self.shelf.find(id) else { return Self.error(Self.responseNotFound(id, param: nil)) }
            let items = kept.inputs.enumerated().reversed().map { index, text -> JSONValue in
                let part = JSONValue.object([(key: "type", value: .string("input_text")), (key: "text", value: .string(text))])
                return .object([
                    (key: "id", value: .string("msg_\(id)_\(index)")), (key: "type", value: .string("message")), (key: "role", value: .string("user")),
                    (key: "content", value: .array([part])),
                ])
            }
            var json = JSONWriter()
            json.openObject()
            json.field("object", "list")
            json.key("data")
            json.raw(JSONValue.array(items).jsonText)
            json.field("has_more", false)
            json.closeObject()
            return Self.json(200, json.output)
        }
        // Only background responses can be cancelled, and the simulator answers none in the background.
        router.post("/v1/responses/{id}/cancel") { _, context in
            let id = context.parameters.get("id") ?? ""
            guard self.shelf.find(id) != nil else { return Self.error(Self.responseNotFound(id, param: nil)) }
            let body = ErrorEnvelope.openAI(message: "Cannot cancel a response that was not created with background=true.", type: "invalid_request_error", param: nil, code: nil)
            return Self.error(SimulatedError(status: 400, body: body, headers: []))
        }
        router.post("/v1/messages") { request, context in
            try await self.chat(request, dialect: AnthropicSimulatorDialect.self, parse: SimulatorRequestParser.anthropic)
        }
        // Gemini puts the model and the mode in one path segment: `models/{model}:generateContent`.
        router.post("/v1beta/models/{call}") { request, context in
            let call = context.parameters.get("call") ?? ""
            if call.hasSuffix(":batchEmbedContents") {
                return try await self.geminiEmbeddings(request)
            }
            guard let colon = call.lastIndex(of: ":"), ["generateContent", "streamGenerateContent"].contains(call[call.index(after: colon)...]) else {
                return Self.error(GeminiSimulatorDialect.invalidRequest("unknown method \(call)", requestID: ""))
            }
            let model = String(call[..<colon])
            let stream = call.hasSuffix(":streamGenerateContent")
            return try await self.chat(request, dialect: GeminiSimulatorDialect.self) { json throws(SimulatorRequestParser.Failure) in
                try SimulatorRequestParser.gemini(json, model: model, stream: stream)
            }
        }
        router.post("/api/chat") { request, context in
            try await self.chat(request, dialect: OllamaSimulatorDialect.self, parse: SimulatorRequestParser.ollama)
        }
        router.post("/v1/embeddings") { request, context in
            try await self.embeddings(request, ollama: false)
        }
        router.post("/api/embed") { request, context in
            try await self.embeddings(request, ollama: true)
        }
        router.get("/v1/models") { _, _ in
            Self.json(200, #"{"object":"list","data":[{"id":"simulated","object":"model","created":0,"owned_by":"switchyard-simulator"}]}"#)
        }
        router.get("/api/tags") { _, _ in
            Self.json(200, #"{"models":[{"name":"simulated","model":"simulated","size":0}]}"#)
        }
        router.get("/healthz") { _, _ in Self.json(200, #"{"status":"ok"}"#) }
        // vLLM's Prometheus counters of its queue, which load-aware routing reads.
        router.get("/metrics") { _, _ in
            let running = self.activeRequests.current
            let text = """
                # HELP vllm:num_requests_running Number of requests in model execution batches.
                # TYPE vllm:num_requests_running gauge
                vllm:num_requests_running{model_name="simulated"} \(Double(running))
                # HELP vllm:num_requests_waiting Number of requests waiting to be processed.
                # TYPE vllm:num_requests_waiting gauge
                vllm:num_requests_waiting{model_name="simulated"} 0.0
                # HELP switchyard_simulator_requests_running_peak The most chat requests answered at once since the simulator started.
                # TYPE switchyard_simulator_requests_running_peak gauge
                switchyard_simulator_requests_running_peak \(Double(self.activeRequests.peak))

                """
            return Self.json(200, text, contentType: "text/plain; version=0.0.4")
        }
        // Ollama's list of models in memory.
        router.get("/api/ps") { _, _ in
            var json = JSONWriter()
            json.openObject()
            json.key("models")
            json.openArray()
            for name in self.warmModels.sorted {
                json.openObject()
                json.field("name", name)
                json.field("model", name)
                json.field("size", 0)
                json.closeObject()
            }
            json.closeArray()
            json.closeObject()
            return Self.json(200, json.output)
        }
        // A 1×1 PNG, for clients and tests that send image URLs.
        router.get("/images/pixel.png") { _, _ in
            Response(
                status: .ok,
                headers: [.contentType: "image/png"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: Data(base64Encoded: Self.pixelPNG) ?? Data()))
            )
        }
        return router
    }

    // MARK: Chat

    /// `POST /v1/responses`: the conversation of `previous_response_id` (unknown: OpenAI's 400), then
    /// this input; the answer is kept unless `store` is false.
    private func respond(_ request: Request) async throws -> Response {
        try await self.chat(request, dialect: ResponsesSimulatorDialect.self) { json throws(SimulatorRequestParser.Failure) in
            var history: [String] = []
            if let previous = json["previous_response_id"] as? String {
                guard let kept = self.shelf.find(previous) else { throw .refused(Self.responseNotFound(previous, param: "previous_response_id")) }
                history = kept.texts
            }
            return try SimulatorRequestParser.responses(json, history: history)
        } keep: { prompt, turn, id, created in
            guard prompt.kept else { return }
            let answer = turn.toolCalls.isEmpty ? turn.text : turn.toolCalls.map(\.arguments).joined(separator: "\n")
            let response = ResponsesSimulatorDialect.body(turn, model: prompt.model, id: id, created: created)
            self.shelf.put(ResponsesSimulatorDialect.responseID(id), ResponseShelf.Kept(inputs: prompt.messageTexts, texts: prompt.messageTexts + [answer], response: response))
        }
    }

    /// OpenAI's words for an id it does not hold (as reported by its users; not in its reference).
    private static func responseNotFound(_ id: String, param: String?) -> SimulatedError {
        let body = ErrorEnvelope.openAI(
            message: "Previous response with id '\(id)' not found.", type: "invalid_request_error", param: param,
            code: param == nil ? nil : "previous_response_not_found"
        )
        return SimulatedError(status: param == nil ? 404 : 400, body: body, headers: [])
    }

    /// - Parameter keep: told of an answer about to be sent, to keep it (the Responses API).
    private func chat<D: SimulatorDialect>(
        _ request: Request,
        dialect: D.Type,
        parse: ([String: Any]) throws(SimulatorRequestParser.Failure) -> SimulatorPrompt,
        keep: ((SimulatorPrompt, SimulatedTurn, _ id: String, _ created: Int) -> Void)? = nil
    ) async throws -> Response {
        let number = self.sequence.next()
        let id = "sim" + self.instance + String(format: "%016d", number)
        let body = try await request.body.collect(upTo: 64 << 20)
        var prompt: SimulatorPrompt
        do {
            prompt = try parse(try SimulatorRequestParser.object(Data(body.readableBytesView)))
        } catch .invalid(let message) {
            return Self.error(D.invalidRequest(message, requestID: id))
        } catch .refused(let error) {
            return Self.error(error)
        }
        let (behaviour, model) = SimulatorBehaviour.parse(
            model: prompt.model,
            header: { name in request.headers[HTTPField.Name(name)!] },
            defaults: self.settings
        )
        prompt.model = model
        self.warmModels.insert(model)
        let turn = SimulatedTurn(prompt: prompt)
        let created = Int(Date().timeIntervalSince1970)

        let requests = self.activeRequests
        requests.enter()
        if let fault = behaviour.fault, D.faultStatus(fault) != 200 {
            defer { requests.leave() }
            try await Task.sleep(for: behaviour.timeToFirstToken)
            var error = D.error(fault, requestID: id)
            if fault == .rateLimited {
                let seconds = behaviour.retryAfterSeconds
                error = SimulatedError(
                    status: error.status, body: error.body,
                    headers: [("retry-after", "\(Int(seconds.rounded(.up)))"), ("retry-after-ms", "\(Int(seconds * 1000))")]
                )
            }
            return Self.error(error)
        }

        // A stream the simulator breaks on purpose is not kept: its response failed.
        if behaviour.fault == nil { keep?(prompt, turn, id, created) }
        guard prompt.stream else {
            defer { requests.leave() }
            let text = D.body(turn, model: model, id: id, created: created)
            return try await self.completeBody(text, contentType: D.contentType, behaviour: behaviour, tokens: turn.completionTokens)
        }
        let events = D.stream(turn, model: model, id: id, created: created, includeUsage: prompt.includeUsage)
        let gauge = self.activeStreams
        return Response(
            status: .ok,
            headers: [.contentType: D.streamContentType, .cacheControl: "no-cache"],
            body: ResponseBody { writer in
                gauge.enter()
                defer {
                    gauge.leave()
                    requests.leave()
                }
                try await Self.play(events, behaviour: behaviour, streamError: D.streamError, writer: &writer)
            }
        )
    }

    /// A non-streaming answer arrives after the whole generation: TTFT plus every token's time.
    private func completeBody(_ text: String, contentType: String, behaviour: SimulatorBehaviour, tokens: Int) async throws -> Response {
        var wait = behaviour.timeToFirstToken
        if behaviour.tokensPerSecond > 0 { wait += .milliseconds(Int64(Double(tokens) * 1000 / behaviour.tokensPerSecond)) }
        switch behaviour.fault {
        case .stall:
            try await Task.sleep(for: behaviour.stall)
        case .malformed:
            return Self.json(200, String(text.prefix(text.count / 2)) + "<<not json")
        case .cut:
            let half = ByteBuffer(string: String(text.prefix(text.count / 2)))
            return Response(
                status: .ok,
                headers: [.contentType: contentType],
                body: ResponseBody(contentLength: text.utf8.count) { writer in
                    try await writer.write(half)
                    throw SimulatedCut()
                }
            )
        default:
            if wait > .zero { try await Task.sleep(for: wait) }
        }
        return Self.json(200, text, contentType: contentType)
    }

    /// Sends the events with their pacing, injecting a stream fault half-way when asked.
    private static func play(
        _ events: [SimulatedEvent],
        behaviour: SimulatorBehaviour,
        streamError: (String) -> String,
        writer: inout any ResponseBodyWriter
    ) async throws {
        let faultAt = events.count / 2
        var tokenIndex = 0
        if behaviour.timeToFirstToken > .zero { try await Task.sleep(for: behaviour.timeToFirstToken) }
        for (index, event) in events.enumerated() {
            if index == faultAt, let fault = behaviour.fault {
                switch fault {
                case .cut:
                    throw SimulatedCut()
                case .stall:
                    try await Task.sleep(for: behaviour.stall)
                case .malformed:
                    try await writer.write(ByteBuffer(string: "data: {\"choices\":[{\"delta\":{\"content\":\"broken\n\n"))
                case .streamError:
                    // What providers do when they fail after the 200: an error event, then the end.
                    try await writer.write(ByteBuffer(string: streamError("Overloaded (simulated)")))
                    try await writer.finish(nil)
                    return
                default:
                    break
                }
            }
            if event.paced {
                let delay = behaviour.delay(beforeToken: tokenIndex)
                tokenIndex += 1
                if delay > .zero { try await Task.sleep(for: delay) }
            }
            try await writer.write(ByteBuffer(string: event.text))
        }
        try await writer.finish(nil)
    }

    // MARK: Embeddings

    private func embeddings(_ request: Request, ollama: Bool) async throws -> Response {
        let body = try await request.body.collect(upTo: 64 << 20)
        guard let json = try? SimulatorRequestParser.object(Data(body.readableBytesView)) else {
            return ollama
                ? Self.error(OllamaSimulatorDialect.invalidRequest("invalid JSON", requestID: ""))
                : Self.error(OpenAISimulatorDialect.invalidRequest("invalid JSON", requestID: ""))
        }
        let model = json["model"] as? String ?? "simulated"
        let inputs: [String]
        if let single = json["input"] as? String {
            inputs = [single]
        } else if let many = json["input"] as? [String] {
            inputs = many
        } else {
            let message = "'input' must be a string or an array of strings"
            return Self.error(ollama ? OllamaSimulatorDialect.invalidRequest(message, requestID: "") : OpenAISimulatorDialect.invalidRequest(message, requestID: ""))
        }
        let dimensions = json["dimensions"] as? Int ?? 256
        let vectors = inputs.map { SimulatedEmbedding.vector(for: $0, dimensions: dimensions) }
        let tokens = inputs.reduce(0) { $0 + max(1, ($1.utf8.count + 3) / 4) }
        var output = JSONWriter()
        output.openObject()
        if ollama {
            output.field("model", model)
            output.key("embeddings")
            output.openArray()
            for vector in vectors { output.raw(SimulatedEmbedding.json(vector)) }
            output.closeArray()
            output.field("prompt_eval_count", tokens)
        } else {
            output.field("object", "list")
            output.key("data")
            output.openArray()
            let base64 = json["encoding_format"] as? String == "base64"
            for (index, vector) in vectors.enumerated() {
                output.openObject()
                output.field("object", "embedding")
                output.field("index", index)
                output.key("embedding")
                if base64 { output.value(SimulatedEmbedding.base64(vector)) } else { output.raw(SimulatedEmbedding.json(vector)) }
                output.closeObject()
            }
            output.closeArray()
            output.field("model", model)
            output.key("usage")
            output.openObject()
            output.field("prompt_tokens", tokens)
            output.field("total_tokens", tokens)
            output.closeObject()
        }
        output.closeObject()
        return Self.json(200, output.output)
    }

    /// Gemini's `batchEmbedContents`: one vector a request, no usage (as Gemini reports none).
    private func geminiEmbeddings(_ request: Request) async throws -> Response {
        let body = try await request.body.collect(upTo: 64 << 20)
        guard let json = try? SimulatorRequestParser.object(Data(body.readableBytesView)),
            let requests = json["requests"] as? [[String: Any]], !requests.isEmpty
        else {
            return Self.error(GeminiSimulatorDialect.invalidRequest("requests must be a non-empty list", requestID: ""))
        }
        var output = JSONWriter()
        output.openObject()
        output.key("embeddings")
        output.openArray()
        for item in requests {
            let parts = (item["content"] as? [String: Any])?["parts"] as? [[String: Any]] ?? []
            let text = parts.compactMap { $0["text"] as? String }.joined(separator: "\n")
            output.openObject()
            output.key("values")
            output.raw(SimulatedEmbedding.json(SimulatedEmbedding.vector(for: text, dimensions: item["outputDimensionality"] as? Int ?? 256)))
            output.closeObject()
        }
        output.closeArray()
        output.closeObject()
        return Self.json(200, output.output)
    }

    // MARK: Helpers

    static let pixelPNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="

    static func json(_ status: Int, _ body: String, contentType: String = "application/json") -> Response {
        Response(
            status: HTTPResponse.Status(code: status),
            headers: [.contentType: contentType],
            body: ResponseBody(byteBuffer: ByteBuffer(string: body))
        )
    }

    static func error(_ error: SimulatedError) -> Response {
        var response = self.json(error.status, error.body)
        for (name, value) in error.headers {
            if let field = HTTPField.Name(name) { response.headers[field] = value }
        }
        return response
    }
}

/// Thrown inside a response body to drop the connection mid-response, as a crashed upstream would.
struct SimulatedCut: Error {}

/// How many of something are under way, and the most there have been at once: the peak is how a
/// fleet test sees, at the one upstream, that a concurrency limit held across replicas.
public final class StreamGauge: Sendable {
    private let value = Atomic<Int>(0)
    private let highest = Atomic<Int>(0)

    public var current: Int { self.value.load(ordering: .relaxed) }
    public var peak: Int { self.highest.load(ordering: .relaxed) }

    func enter() {
        let now = self.value.add(1, ordering: .relaxed).newValue
        var seen = self.highest.load(ordering: .relaxed)
        while now > seen {
            let (exchanged, original) = self.highest.compareExchange(expected: seen, desired: now, ordering: .relaxed)
            if exchanged { break }
            seen = original
        }
    }

    func leave() {
        self.value.subtract(1, ordering: .relaxed)
    }
}

final class ModelSet: Sendable {
    private let names = Mutex<Set<String>>([])

    func insert(_ name: String) {
        self.names.withLock { _ = $0.insert(name) }
    }

    var sorted: [String] { self.names.withLock { $0.sorted() } }
}

/// The simulator's kept Responses: the conversation's texts (what the next turn's answer depends on)
/// and the Response object. The oldest go past `capacity`, so a long demo does not grow without end.
final class ResponseShelf: Sendable {
    struct Kept {
        /// The conversation's texts up to the answer (what `input_items` lists).
        let inputs: [String]
        /// With the answer: what a follow-up continues.
        let texts: [String]
        let response: String
    }

    private let kept = Mutex<(entries: [String: Kept], order: [String])>(([:], []))
    private let capacity = 10_000

    func put(_ id: String, _ entry: Kept) {
        self.kept.withLock { shelf in
            if shelf.entries.updateValue(entry, forKey: id) == nil { shelf.order.append(id) }
            while shelf.order.count > self.capacity { shelf.entries[shelf.order.removeFirst()] = nil }
        }
    }

    func find(_ id: String) -> Kept? {
        self.kept.withLock { $0.entries[id] }
    }

    func remove(_ id: String) -> Bool {
        self.kept.withLock { shelf in
            guard shelf.entries.removeValue(forKey: id) != nil else { return false }
            shelf.order.removeAll { $0 == id }
            return true
        }
    }
}

final class RequestCounter: Sendable {
    private let value = Atomic<Int>(0)

    func next() -> Int {
        self.value.add(1, ordering: .relaxed).newValue
    }
}

/// Deterministic embeddings: the gateway's own hashed character-trigram embedder, so similar texts
/// get similar vectors with no model to load.
enum SimulatedEmbedding {
    static func vector(for text: String, dimensions: Int) -> [Float] {
        NGramEmbedder(dimensions: min(dimensions, 4096)).vector(text)
    }

    static func json(_ vector: [Float]) -> String {
        "[" + vector.map { String($0) }.joined(separator: ",") + "]"
    }

    /// OpenAI's `encoding_format: base64`: little-endian float32s.
    static func base64(_ vector: [Float]) -> String {
        Data(OpenAIEmbeddings.littleEndianBytes(vector)).base64EncodedString()
    }
}
