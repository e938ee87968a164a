import Engine
import HTTPTypes
import Hummingbird
import NIOCore

/// `POST /v1/embeddings` (OpenAI shape) to an OpenAI-compatible upstream: the body passes through
/// with only `model` rewritten, the answer comes back as sent once it is known to be an embeddings list.
struct EmbeddingsHandler: Sendable {
    let state: GatewayState

    func handle(_ request: Request, context: GatewayRequestContext) async -> Response {
        let started = ContinuousClock.now
        let requestID = self.state.identity.make(clientSupplied: request.headers[.requestID])
        do {
            let body: ByteBuffer
            do {
                body = try await request.body.collect(upTo: self.state.config.server.maxBodyBytes)
            } catch is NIOTooManyBytesError {
                throw GatewayError.bodyTooLarge(limit: self.state.config.server.maxBodyBytes)
            }
            let patch = try OpenAIRequestPatch(body: body)
            guard !patch.isStreaming else { throw GatewayError.invalidRequest("Embeddings cannot be streamed.", param: "stream") }
            let target = try self.state.routes.resolve(patch.clientModel)
            guard let upstream = self.state.upstreams[target.provider] else {
                throw GatewayError.internalFailure("route '\(target.alias)' names provider '\(target.provider)', which has no client")
            }
            let upstreamBody = patch.upstreamBody(model: target.upstreamModel)
            let sent = ContinuousClock.now
            let reply = try await self.state.disconnects.cancellingOnHangUp(connection: context.connection) {
                try await UpstreamCall.post(upstreamBody, path: "/embeddings", model: target.upstreamModel, to: upstream, requestID: requestID, streaming: false, sent: sent)
            }
            let replied = ContinuousClock.now
            let overhead = (sent - started) + (ContinuousClock.now - replied)
            let exchange = ExchangeContext(requestID: requestID, target: target, upstream: upstream, logger: context.logger, sent: sent)
            guard reply.isSuccess, let responseBody = reply.body else {
                return reply.openAIErrorResponse(exchange, overhead: overhead)
            }
            let usage = try OpenAIEmbeddingsSummary.read(responseBody, provider: target.provider)
            exchange.logCompletion(usage: usage, finishReason: nil, streamed: false)
            var headers: HTTPFields = [.contentType: "application/json"]
            headers[.switchyardProvider] = target.provider
            headers.setGatewayHeaders(requestID: requestID, overhead: overhead)
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: responseBody))
        } catch {
            let gatewayError = error as? GatewayError ?? .internalFailure("\(type(of: error))")
            ChatCompletionsHandler.log(gatewayError, requestID: requestID, logger: context.logger)
            return gatewayError.openAIResponse(requestID: requestID, overhead: ContinuousClock.now - started)
        }
    }
}
