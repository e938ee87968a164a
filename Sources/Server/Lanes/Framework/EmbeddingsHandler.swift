import Engine
import HTTPTypes
import Hummingbird
import NIOCore

/// `POST /v1/embeddings` (OpenAI shape). To an OpenAI-compatible upstream the body passes through with
/// only `model` rewritten and the answer comes back as sent; to Ollama's native API it is translated
/// to `/api/embed` and back.
struct EmbeddingsHandler: Sendable {
    let state: GatewayState

    func handle(_ request: Request, context: GatewayRequestContext) async -> Response {
        await self.state.respond(to: request, context: context, in: .openAI) { requestID, started, caller in
            let body = try await self.state.body(of: request)
            let patch = try OpenAIRequestPatch(body: body)
            guard !patch.isStreaming else { throw GatewayError.invalidRequest("Embeddings cannot be streamed.", param: "stream") }
            RequestTrace.current?.requested(model: patch.clientModel, streaming: false, lane: "framework", operation: "embeddings")
            let routing = self.state.routing
            let features = routing.features(model: patch.clientModel, streaming: false, maxTokens: 0, body: body, of: request)
            let plan = try self.state.plan(features, in: routing)
            let admission = try await self.state.admit(caller, plan: plan, routing: routing, features: features, body: body)
            return try await admission.guarding {
                try await self.forward(
                    patch, body: body, plan: plan, routing: routing, admission: admission, request: request, requestID: requestID, started: started,
                    context: context
                )
            }
        }
    }

    private func forward(
        _ patch: OpenAIRequestPatch, body: ByteBuffer, plan: FailoverPlan, routing: RoutingSnapshot, admission: Admission, request: Request,
        requestID: String, started: ContinuousClock.Instant, context: GatewayRequestContext
    ) async throws -> Response {
        let outcome = try await self.state.forward(plan, in: routing, request: request, requestID: requestID, context: context) { target, upstream in
            try Self.upstreamRequest(patch.upstreamBody(model: target.upstreamModel), model: target.upstreamModel, route: target.route, upstream: upstream)
        }
        let target = outcome.target
        let overhead = outcome.overhead(since: started)
        var exchange = ExchangeContext(
            state: self.state, routing: routing, admission: admission, requestID: requestID, outcome: outcome, logger: context.logger, started: started
        )
        exchange.operation = "embeddings"
        let reply = outcome.reply
        guard reply.isSuccess, let responseBody = reply.body else {
            return reply.openAIErrorResponse(exchange, overhead: overhead)
        }
        var headers: HTTPFields = [.contentType: "application/json"]
        headers.setRoutingHeaders(outcome)
        headers.setGatewayHeaders(requestID: requestID, overhead: overhead)
        let answer = try Self.openAIAnswer(responseBody, request: body, model: target.upstreamModel, upstream: outcome.upstream)
        if answer.estimated { headers[.tokenEstimate] = "true" }
        exchange.logCompletion(usage: answer.usage, finishReason: nil, streamed: false)
        exchange.setAccountingHeaders(&headers, usage: answer.usage)
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: answer.body))
    }

    /// The embeddings request (`body` in OpenAI's shape, for `model`) as `upstream` takes it: passed
    /// through to OpenAI-compatible upstreams, translated for Ollama's and Gemini's own APIs.
    /// - Parameter route: what the client asked for, to name in the error Anthropic gets.
    static func upstreamRequest(_ body: ByteBuffer, model: String, route: String, upstream: UpstreamPool.Upstream) throws -> UpstreamRequest {
        switch upstream.settings.wire {
        case .openAIChat:
            return UpstreamRequest(body: body, path: "/embeddings", streaming: false)
        case .ollamaChat, .geminiGenerateContent:
            let translated = try self.translated(body, model: model, upstream: upstream)
            let path = upstream.settings.wire == .ollamaChat ? "/api/embed" : GeminiEmbeddings.path(model: model)
            return UpstreamRequest(body: translated.body, path: path, streaming: false)
        case .anthropicMessages:
            throw GatewayError.invalidRequest("The model '\(route)' is served by Anthropic, which offers no embeddings.", param: "model")
        }
    }

    /// The upstream's answer in OpenAI's shape, with its usage (`estimated` when the upstream reports
    /// none and the tokens were counted here).
    static func openAIAnswer(
        _ responseBody: ByteBuffer, request body: ByteBuffer, model: String, upstream: UpstreamPool.Upstream
    ) throws -> (body: ByteBuffer, usage: Usage, estimated: Bool) {
        let provider = upstream.settings.id
        switch upstream.settings.wire {
        case .ollamaChat, .geminiGenerateContent:
            let translated = try self.translated(body, model: model, upstream: upstream)
            let (json, usage) = upstream.settings.wire == .geminiGenerateContent
                ? try GeminiEmbeddings.decode(responseBody, model: model, request: translated, provider: provider)
                : try OllamaEmbeddings.decode(responseBody, model: model, base64: translated.wantsBase64, provider: provider)
            return (ByteBuffer(string: json), usage, upstream.settings.wire == .geminiGenerateContent)
        case .openAIChat, .anthropicMessages:
            return (responseBody, try OpenAIEmbeddingsSummary.read(responseBody, provider: provider), false)
        }
    }

    private static func translated(_ body: ByteBuffer, model: String, upstream: UpstreamPool.Upstream) throws -> OllamaEmbeddings.Request {
        upstream.settings.wire == .ollamaChat
            ? try OllamaEmbeddings.encode(body, upstreamModel: model)
            : try GeminiEmbeddings.encode(body, upstreamModel: model)
    }
}
