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
    /// Set for a Responses API client: answered with Response objects and their event stream (its
    /// errors are OpenAI's, `client` `.openAI`).
    var responses: ResponsesAnswer?

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
        let reply = outcome.reply
        guard reply.isSuccess else { return self.failure(exchange, overhead: outcome.overhead(since: started)).response }
        var headers: HTTPFields = [:]
        guard let responseBody = reply.body else {
            self.streamHeaders(exchange, dropped: dropped, overhead: outcome.overhead(since: started), fields: &headers)
            guard let stream = reply.stream else { throw GatewayError.internalFailure("a successful reply with neither body nor stream") }
            let translation = self
            return Response(status: .ok, headers: headers, body: UpstreamCall.relayedStream(stream, exchange) { translation.streamRelay(exchange) })
        }
        let text = try self.answer(responseBody, exchange, dropped: dropped, fields: &headers)
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: text))
    }

    /// The upstream's failed reply in the client's envelope, with the upstream's status; accounted.
    func failure(_ exchange: ExchangeContext, overhead: Duration) -> WholeResponse {
        let error = exchange.outcome.reply.error(provider: exchange.target.provider)
        error.log(requestID: exchange.requestID, logger: exchange.logger)
        exchange.answeredWithFailure(error, status: error.httpStatus)
        return self.client == .openAI
            ? error.openAIWholeResponse(requestID: exchange.requestID, overhead: overhead)
            : error.anthropicWholeResponse(requestID: exchange.requestID, overhead: overhead)
    }

    /// A successful whole answer in the client's dialect, its fields into `headers`; accounted, and
    /// kept when the route caches.
    func answer<Fields: ResponseFields>(
        _ responseBody: ByteBuffer, _ exchange: ExchangeContext, dropped: [String], fields headers: inout Fields
    ) throws -> ByteBuffer {
        try self.decodedAnswer(responseBody, exchange, dropped: dropped, fields: &headers).text
    }

    /// `answer`, with the canonical answer it was written from.
    func decodedAnswer<Fields: ResponseFields>(
        _ responseBody: ByteBuffer, _ exchange: ExchangeContext, dropped: [String], fields headers: inout Fields
    ) throws -> (text: ByteBuffer, answer: ChatResponse) {
        let outcome = exchange.outcome
        let target = outcome.target
        var response = try ProviderAdapters.adapter(for: outcome.upstream.settings.wire).decode(responseBody, provider: target.provider)
        if response.id.isEmpty { response.id = exchange.requestID }
        exchange.remember(response)
        exchange.logCompletion(usage: response.usage, finishReason: OpenAIResponseEncoder.finishReason(response.stopReason), streamed: false)
        exchange.setAnswerHeaders(&headers, usage: response.usage)
        if !dropped.isEmpty { headers.set(.droppedFields, dropped.joined(separator: ",")) }
        let model = target.upstreamModel
        if let responses = self.responses { return (ByteBuffer(string: responses.object(response, model: model)), response) }
        return (ByteBuffer(string: self.client == .openAI
            ? OpenAIResponseEncoder.completion(response, model: model, created: Int(Date().timeIntervalSince1970))
            : AnthropicResponseEncoder.message(response, model: model)), response)
    }

    /// The head fields of a translated stream.
    func streamHeaders<Fields: ResponseFields>(_ exchange: ExchangeContext, dropped: [String], overhead: Duration, fields headers: inout Fields) {
        headers.set(.contentType, "text/event-stream")
        headers.set(.cacheControl, "no-cache")
        headers.setRoutingHeaders(exchange.outcome)
        exchange.setAccountingHeaders(&headers, usage: nil)
        if !dropped.isEmpty { headers.set(.droppedFields, dropped.joined(separator: ",")) }
        headers.setGatewayHeaders(requestID: exchange.requestID, overhead: overhead)
    }

    /// The relay of a translated stream from `exchange`'s upstream to this client.
    func streamRelay(_ exchange: ExchangeContext) -> TranslatedStreamRelay {
        let target = exchange.target
        return TranslatedStreamRelay(
            decoder: ProviderAdapters.adapter(for: exchange.upstream.settings.wire).makeStreamDecoder(provider: target.provider),
            encoder: self.responses?.streamEncoder(model: target.upstreamModel)
                ?? Self.streamEncoder(for: self.client, model: target.upstreamModel, includeUsage: self.includeUsage, requestID: exchange.requestID),
            records: exchange.recordsAnswer
        )
    }

    private static func streamEncoder(for client: ClientDialect, model: String, includeUsage: Bool, requestID: String) -> any StreamEncoder {
        switch client {
        case .openAI:
            OpenAIStreamEncoder(model: model, created: Int(Date().timeIntervalSince1970), includeUsage: includeUsage, fallbackID: requestID)
        case .anthropic:
            AnthropicStreamEncoder(model: model, fallbackID: requestID)
        }
    }
}
