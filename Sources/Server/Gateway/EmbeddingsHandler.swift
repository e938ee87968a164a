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
        await self.state.respond(to: request, context: context, in: .openAI) { requestID, started in
            let body = try await self.state.body(of: request)
            let patch = try OpenAIRequestPatch(body: body)
            guard !patch.isStreaming else { throw GatewayError.invalidRequest("Embeddings cannot be streamed.", param: "stream") }
            let (target, upstream) = try self.state.target(for: patch.clientModel)
            let upstreamBody: ByteBuffer
            let path: String
            var translated: OllamaEmbeddings.Request?
            switch upstream.settings.wire {
            case .openAIChat:
                upstreamBody = patch.upstreamBody(model: target.upstreamModel)
                path = "/embeddings"
            case .ollamaChat:
                translated = try OllamaEmbeddings.encode(body, upstreamModel: target.upstreamModel)
                path = "/api/embed"
                upstreamBody = translated?.body ?? ByteBuffer()
            case .geminiGenerateContent:
                translated = try GeminiEmbeddings.encode(body, upstreamModel: target.upstreamModel)
                path = GeminiEmbeddings.path(model: target.upstreamModel)
                upstreamBody = translated?.body ?? ByteBuffer()
            case .anthropicMessages:
                throw GatewayError.invalidRequest("The model '\(target.alias)' is served by Anthropic, which offers no embeddings.", param: "model")
            }
            let sent = ContinuousClock.now
            let reply = try await self.state.disconnects.cancellingOnHangUp(connection: context.connection) {
                try await UpstreamCall.post(upstreamBody, path: path, model: target.upstreamModel, to: upstream, requestID: requestID, streaming: false, sent: sent)
            }
            let replied = ContinuousClock.now
            let overhead = (sent - started) + (ContinuousClock.now - replied)
            let exchange = ExchangeContext(requestID: requestID, target: target, upstream: upstream, logger: context.logger, sent: sent)
            guard reply.isSuccess, let responseBody = reply.body else {
                return reply.openAIErrorResponse(exchange, overhead: overhead)
            }
            var headers: HTTPFields = [.contentType: "application/json"]
            headers[.switchyardProvider] = target.provider
            headers.setGatewayHeaders(requestID: requestID, overhead: overhead)
            if let translated {
                let (json, usage) = upstream.settings.wire == .geminiGenerateContent
                    ? try GeminiEmbeddings.decode(responseBody, model: target.upstreamModel, request: translated, provider: target.provider)
                    : try OllamaEmbeddings.decode(responseBody, model: target.upstreamModel, base64: translated.wantsBase64, provider: target.provider)
                if upstream.settings.wire == .geminiGenerateContent { headers[.tokenEstimate] = "true" }
                exchange.logCompletion(usage: usage, finishReason: nil, streamed: false)
                return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: json)))
            }
            let usage = try OpenAIEmbeddingsSummary.read(responseBody, provider: target.provider)
            exchange.logCompletion(usage: usage, finishReason: nil, streamed: false)
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: responseBody))
        }
    }
}
