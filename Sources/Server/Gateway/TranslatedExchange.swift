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
    let client: ClientDialect
    /// OpenAI clients get the trailing usage chunk only when they asked for it.
    var includeUsage = false

    /// The upstream request for one target, image URLs inlined when the upstream takes no URLs.
    static func prepare(_ request: ChatRequest, target: PlannedTarget, upstream: UpstreamPool.Upstream, images: ImageInlining?) async throws -> UpstreamRequest {
        let adapter = ProviderAdapters.adapter(for: upstream.settings.wire)
        var inlined = request
        if let images, ImageFetcher.isNeeded(for: upstream.settings.wire) {
            inlined = try await images.inlined()
        }
        let body = try adapter.encode(inlined, upstreamModel: target.upstreamModel, settings: upstream.settings)
        return UpstreamRequest(body: body, path: adapter.path(model: target.upstreamModel, streaming: request.stream), streaming: request.stream)
    }

    /// The client's answer from the attempt that ended the request.
    func respond(_ exchange: ExchangeContext, request: ChatRequest, dropped: [String], started: ContinuousClock.Instant) throws -> Response {
        let outcome = exchange.outcome
        let target = outcome.target
        let requestID = exchange.requestID
        let overhead = outcome.overhead(since: started)
        let reply = outcome.reply
        guard reply.isSuccess else {
            let error = reply.error(provider: target.provider)
            error.log(requestID: requestID, logger: exchange.logger)
            exchange.answeredWithFailure(error, status: error.httpStatus)
            return self.client == .openAI
                ? error.openAIResponse(requestID: requestID, overhead: overhead)
                : error.anthropicResponse(requestID: requestID, overhead: overhead)
        }

        let adapter = ProviderAdapters.adapter(for: outcome.upstream.settings.wire)
        var headers: HTTPFields = [:]
        headers.setRoutingHeaders(outcome)
        exchange.setAccountingHeaders(&headers, usage: nil)
        if !dropped.isEmpty { headers[.droppedFields] = dropped.joined(separator: ",") }
        headers.setGatewayHeaders(requestID: requestID, overhead: overhead)
        let model = target.upstreamModel
        let created = Int(Date().timeIntervalSince1970)
        guard let responseBody = reply.body else {
            headers[.contentType] = "text/event-stream"
            headers[.cacheControl] = "no-cache"
            guard let stream = reply.stream else { throw GatewayError.internalFailure("a successful reply with neither body nor stream") }
            let decoder: @Sendable () -> any StreamDecoder = { adapter.makeStreamDecoder(provider: target.provider) }
            let body: ResponseBody
            switch self.client {
            case .openAI:
                let includeUsage = self.includeUsage
                body = UpstreamCall.translatedStream(stream, exchange, decoder: decoder) {
                    OpenAIStreamEncoder(model: model, created: created, includeUsage: includeUsage, fallbackID: requestID)
                }
            case .anthropic:
                body = UpstreamCall.translatedStream(stream, exchange, decoder: decoder) {
                    AnthropicStreamEncoder(model: model, fallbackID: requestID)
                }
            }
            return Response(status: .ok, headers: headers, body: body)
        }
        var response = try adapter.decode(responseBody, provider: target.provider)
        if response.id.isEmpty { response.id = requestID }
        exchange.logCompletion(usage: response.usage, finishReason: "\(response.stopReason)", streamed: false)
        exchange.remember(response)
        headers.setCost(exchange.cost(of: response.usage))
        headers[.contentType] = "application/json"
        let text = self.client == .openAI
            ? OpenAIResponseEncoder.completion(response, model: model, created: created)
            : AnthropicResponseEncoder.message(response, model: model)
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}
