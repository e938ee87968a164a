import AsyncHTTPClient
import Engine
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTP1

/// A request from a client of one dialect to an upstream of another, through the canonical model:
/// the upstream's adapter encodes and decodes, the client's encoders answer, errors come in the
/// client's envelope with the upstream's status.
struct TranslatedExchange {
    let state: GatewayState
    let client: ClientDialect
    /// OpenAI clients get the trailing usage chunk only when they asked for it.
    var includeUsage = false

    func run(
        _ request: ChatRequest,
        dropped: [String],
        target: RouteTable.Resolved,
        upstream: UpstreamPool.Upstream,
        requestID: String,
        started: ContinuousClock.Instant,
        context: GatewayRequestContext
    ) async throws -> Response {
        let adapter = ProviderAdapters.adapter(for: upstream.settings.wire)
        var inlined = request
        if let images = self.state.images, ImageFetcher.isNeeded(for: upstream.settings.wire) {
            inlined = try await images.inline(request)
        }
        let request = inlined
        let upstreamBody = try adapter.encode(request, upstreamModel: target.upstreamModel, settings: upstream.settings)
        let path = adapter.path(model: target.upstreamModel, streaming: request.stream)
        let sent = ContinuousClock.now
        let reply = try await self.state.disconnects.cancellingOnHangUp(connection: context.connection) {
            try await UpstreamCall.post(upstreamBody, path: path, model: target.upstreamModel, to: upstream, requestID: requestID, streaming: request.stream, sent: sent)
        }
        let replied = ContinuousClock.now
        let overhead = (sent - started) + (ContinuousClock.now - replied)
        let exchange = ExchangeContext(requestID: requestID, target: target, upstream: upstream, logger: context.logger, sent: sent)
        guard reply.isSuccess else {
            let error = reply.error(provider: target.provider)
            error.log(requestID: requestID, logger: context.logger)
            return self.client == .openAI
                ? error.openAIResponse(requestID: requestID, overhead: overhead)
                : error.anthropicResponse(requestID: requestID, overhead: overhead)
        }

        var headers: HTTPFields = [:]
        headers[.switchyardProvider] = target.provider
        if !dropped.isEmpty { headers[.droppedFields] = dropped.joined(separator: ",") }
        headers.setGatewayHeaders(requestID: requestID, overhead: overhead)
        let model = target.upstreamModel
        let created = Int(Date().timeIntervalSince1970)
        guard let responseBody = reply.body else {
            headers[.contentType] = "text/event-stream"
            headers[.cacheControl] = "no-cache"
            let decoder: @Sendable () -> any StreamDecoder = { adapter.makeStreamDecoder(provider: target.provider) }
            let body: ResponseBody
            switch self.client {
            case .openAI:
                let includeUsage = self.includeUsage
                body = UpstreamCall.translatedStream(reply.response, exchange, decoder: decoder) {
                    OpenAIStreamEncoder(model: model, created: created, includeUsage: includeUsage, fallbackID: requestID)
                }
            case .anthropic:
                body = UpstreamCall.translatedStream(reply.response, exchange, decoder: decoder) {
                    AnthropicStreamEncoder(model: model, fallbackID: requestID)
                }
            }
            return Response(status: .ok, headers: headers, body: body)
        }
        var response = try adapter.decode(responseBody, provider: target.provider)
        if response.id.isEmpty { response.id = requestID }
        exchange.logCompletion(usage: response.usage, finishReason: "\(response.stopReason)", streamed: false)
        headers[.contentType] = "application/json"
        let text = self.client == .openAI
            ? OpenAIResponseEncoder.completion(response, model: model, created: created)
            : AnthropicResponseEncoder.message(response, model: model)
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}
