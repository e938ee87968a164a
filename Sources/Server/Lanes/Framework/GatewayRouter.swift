import Engine
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization

/// The public HTTP API.
enum GatewayRouter {
    static func build(_ state: GatewayState) -> Router<GatewayRequestContext> {
        let router = Router(context: GatewayRequestContext.self)
        router.add(middleware: DialectErrorMiddleware(identity: state.identity))
        let chat = ChatCompletionsHandler(state: state)
        router.post("/v1/chat/completions") { request, context in
            await chat.handle(request, context: context)
        }
        let messages = MessagesHandler(state: state)
        router.post("/v1/messages") { request, context in
            await messages.handle(request, context: context)
        }
        router.post("/v1/messages/count_tokens") { request, context in
            await messages.countTokens(request, context: context)
        }
        let responses = ResponsesHandler(state: state)
        router.post("/v1/responses") { request, context in
            await responses.create(request, context: context)
        }
        router.post("/v1/responses/input_tokens") { request, context in
            await responses.inputTokens(request, context: context)
        }
        router.get("/v1/responses/{id}") { request, context in
            await responses.retrieve(request, context: context)
        }
        router.delete("/v1/responses/{id}") { request, context in
            await responses.delete(request, context: context)
        }
        router.get("/v1/responses/{id}/input_items") { request, context in
            await responses.inputItems(request, context: context)
        }
        router.post("/v1/responses/{id}/cancel") { request, context in
            await responses.cancel(request, context: context)
        }
        let embeddings = EmbeddingsHandler(state: state)
        router.post("/v1/embeddings") { request, context in
            await embeddings.handle(request, context: context)
        }
        router.get("/v1/models") { request, _ in
            // Anthropic's SDKs say who they are; their model list has its own shape.
            request.headers[HTTPField.Name("anthropic-version")!] == nil
                ? Self.json(self.modelList(state.routing.routes.aliases))
                : Self.json(self.anthropicModelList(state.routing.routes.aliases))
        }
        // Prometheus text exposition.
        router.get("/metrics") { _, _ in
            let now = ContinuousClock.now
            let targets = state.health.withLock { $0.statuses(at: now) }
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: state.metrics.exposition(
                    targets: targets, clientConnections: state.clientConnections.load(ordering: .relaxed), upstreams: state.routing.upstreams.all,
                    sharedState: (state.quotas as? RedisQuotaStore)?.unavailableAdmissions, ledger: state.ledgerStatus
                )))
            )
        }
        router.get("/healthz") { _, _ in
            Self.json(#"{"status":"ok"}"#)
        }
        router.get("/readyz") { _, _ in
            state.isReady.load(ordering: .relaxed)
                ? Self.json(#"{"status":"ready"}"#)
                : Self.json(#"{"status":"not ready"}"#, status: .serviceUnavailable)
        }
        return router
    }

    static func modelList(_ aliases: [String]) -> String {
        var json = JSONWriter()
        json.openObject()
        json.field("object", "list")
        json.key("data")
        json.openArray()
        for alias in aliases {
            json.openObject()
            json.field("id", alias)
            json.field("object", "model")
            json.field("created", 0)
            json.field("owned_by", "switchyard")
            json.closeObject()
        }
        json.closeArray()
        json.closeObject()
        return json.output
    }

    static func anthropicModelList(_ aliases: [String]) -> String {
        var json = JSONWriter()
        json.openObject()
        json.key("data")
        json.openArray()
        for alias in aliases {
            json.openObject()
            json.field("type", "model")
            json.field("id", alias)
            json.field("display_name", alias)
            json.field("created_at", "1970-01-01T00:00:00Z")
            json.closeObject()
        }
        json.closeArray()
        json.field("has_more", false)
        json.field("first_id", aliases.first)
        json.field("last_id", aliases.last)
        json.closeObject()
        return json.output
    }

    static func json(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}

/// Hummingbird answers unknown paths and framework errors with an empty body; clients expect their
/// dialect's error envelope on every failure, so this renders them as `GatewayError`s: Anthropic's
/// under `/v1/messages`, OpenAI's elsewhere, and 405 (not 404) for a known path with the wrong method.
struct DialectErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let identity: RequestIdentity

    /// The public API's paths and the one method each takes.
    static var knownPaths: [String: String] {
        [
            "/v1/chat/completions": "POST", "/v1/messages": "POST", "/v1/messages/count_tokens": "POST",
            "/v1/embeddings": "POST", "/v1/models": "GET", "/healthz": "GET", "/readyz": "GET", "/metrics": "GET",
        ]
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError {
            let requestID = self.identity.make(clientSupplied: request.headers[.requestID])
            let path = request.uri.path
            let gatewayError: GatewayError
            switch error.status {
            case .notFound where Self.knownPaths[path] != nil, .methodNotAllowed:
                gatewayError = .methodNotAllowed(method: request.method.rawValue, path: path)
            case .notFound:
                gatewayError = .routeNotFound(method: request.method.rawValue, path: path)
            default:
                gatewayError = .invalidRequest(error.body ?? "The request could not be processed (HTTP \(error.status.code)).")
            }
            return path.hasPrefix("/v1/messages")
                ? gatewayError.anthropicResponse(requestID: requestID, overhead: .zero)
                : gatewayError.openAIResponse(requestID: requestID, overhead: .zero)
        }
    }
}
