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
            let routing = self.state.routing
            let features = routing.features(model: patch.clientModel, streaming: false, maxTokens: 0, body: body, of: request)
            let plan = try self.state.plan(features, in: routing)
            let admission = try await self.state.admit(caller, plan: plan, routing: routing, features: features, body: body)
            let outcome = try await self.state.forward(plan, in: routing, request: request, requestID: requestID, context: context) { target, upstream in
                try Self.upstreamRequest(body, patch: patch, target: target, upstream: upstream)
            }
            let target = outcome.target
            let upstream = outcome.upstream
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
            if upstream.settings.wire != .openAIChat {
                let translated = try Self.translated(body, target: target, upstream: upstream)
                let (json, usage) = upstream.settings.wire == .geminiGenerateContent
                    ? try GeminiEmbeddings.decode(responseBody, model: target.upstreamModel, request: translated, provider: target.provider)
                    : try OllamaEmbeddings.decode(responseBody, model: target.upstreamModel, base64: translated.wantsBase64, provider: target.provider)
                if upstream.settings.wire == .geminiGenerateContent { headers[.tokenEstimate] = "true" }
                exchange.logCompletion(usage: usage, finishReason: nil, streamed: false)
                exchange.setAccountingHeaders(&headers, usage: usage)
                return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: json)))
            }
            let usage = try OpenAIEmbeddingsSummary.read(responseBody, provider: target.provider)
            exchange.logCompletion(usage: usage, finishReason: nil, streamed: false)
            exchange.setAccountingHeaders(&headers, usage: usage)
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: responseBody))
        }
    }

    /// The embeddings request for one target: passed through with `model` rewritten to OpenAI-compatible
    /// upstreams, translated for Ollama's and Gemini's own APIs.
    private static func upstreamRequest(_ body: ByteBuffer, patch: OpenAIRequestPatch, target: PlannedTarget, upstream: UpstreamPool.Upstream) throws -> UpstreamRequest {
        switch upstream.settings.wire {
        case .openAIChat:
            return UpstreamRequest(body: patch.upstreamBody(model: target.upstreamModel), path: "/embeddings", streaming: false)
        case .ollamaChat, .geminiGenerateContent:
            let translated = try self.translated(body, target: target, upstream: upstream)
            let path = upstream.settings.wire == .ollamaChat ? "/api/embed" : GeminiEmbeddings.path(model: target.upstreamModel)
            return UpstreamRequest(body: translated.body, path: path, streaming: false)
        case .anthropicMessages:
            throw GatewayError.invalidRequest("The model '\(target.route)' is served by Anthropic, which offers no embeddings.", param: "model")
        }
    }

    private static func translated(_ body: ByteBuffer, target: PlannedTarget, upstream: UpstreamPool.Upstream) throws -> OllamaEmbeddings.Request {
        upstream.settings.wire == .ollamaChat
            ? try OllamaEmbeddings.encode(body, upstreamModel: target.upstreamModel)
            : try GeminiEmbeddings.encode(body, upstreamModel: target.upstreamModel)
    }
}
