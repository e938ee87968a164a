import AsyncHTTPClient
import Engine
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1

/// `POST /v1/chat/completions` from an OpenAI client. To an OpenAI-compatible upstream it takes the
/// fast path; to any other upstream it is translated through the canonical model and back.
///
/// On the fast path the body is validated and patched in place (`model`, `stream_options.include_usage`), never
/// re-encoded; the response streams back byte for byte in whole events while usage is read on the way.
/// Failures before the first byte get an OpenAI error with the right status; after it, an error event.
struct ChatCompletionsHandler: Sendable {
    let state: GatewayState

    func handle(_ request: Request, context: GatewayRequestContext) async -> Response {
        await self.state.respond(to: request, context: context, in: .openAI) { requestID, started, caller in
            try await self.forward(request, requestID: requestID, started: started, caller: caller, context: context)
        }
    }

    private func forward(_ request: Request, requestID: String, started: ContinuousClock.Instant, caller: Caller, context: GatewayRequestContext) async throws -> Response {
        let intake: ChatIntake
        switch try await self.state.intake(request, caller: caller, dialect: .openAI, requestID: requestID, started: started, logger: context.logger) {
        case .answered(let response): return response
        case .forward(let forwarded): intake = forwarded
        }
        return try await intake.admission.guarding {
            try await self.forward(intake, request: request, requestID: requestID, started: started, context: context)
        }
    }

    private func forward(
        _ intake: ChatIntake, request: Request, requestID: String, started: ContinuousClock.Instant, context: GatewayRequestContext
    ) async throws -> Response {
        let (body, patch, routing, plan) = (intake.body, intake.patch, intake.routing, intake.plan)
        // Decoded only when some target needs a translation, and then once, before any attempt.
        let decoded = try plan.everyCandidate.contains { routing.upstreams[$0.provider]?.settings.wire != .openAIChat }
            ? OpenAIRequestDecoder.decode(body) : nil
        let images = self.state.imageInlining(for: decoded?.request, logger: context.logger)
        let outcome = try await self.state.forward(plan, in: routing, request: request, requestID: requestID, context: context) { target, upstream in
            guard upstream.settings.wire == .openAIChat else {
                guard let decoded else { throw GatewayError.internalFailure("no decoded request for a translated target") }
                return try await TranslatedExchange.prepare(decoded.request, target: target, upstream: upstream, images: images)
            }
            let upstreamBody = patch.upstreamBody(model: target.upstreamModel, requestStreamUsage: upstream.settings.acceptsStreamOptions)
            return UpstreamRequest(body: upstreamBody, path: "/chat/completions", streaming: patch.isStreaming)
        }
        var exchange = ExchangeContext(
            state: self.state, routing: routing, admission: intake.admission, requestID: requestID, outcome: outcome, logger: context.logger,
            started: started, cachePlan: intake.cachePlan
        )
        exchange.clientConnection = context.connection
        if outcome.upstream.settings.wire != .openAIChat, let decoded {
            let translation = TranslatedExchange(client: .openAI, includeUsage: decoded.includeUsage)
            return try translation.respond(exchange, request: decoded.request, dropped: decoded.dropped, started: started)
        }
        let reply = outcome.reply
        guard reply.isSuccess else {
            return reply.openAIErrorResponse(exchange, overhead: outcome.overhead(since: started))
        }
        guard let responseBody = reply.body else {
            return self.relayStream(reply, exchange, forwardUsageChunk: patch.clientWantsStreamUsage, overhead: outcome.overhead(since: started))
        }
        return try Self.answer(responseBody, exchange).response
    }

    /// A whole successful answer from an OpenAI-compatible upstream, passed on as it came: its usage
    /// read for the ledger and the headers, and kept in the cache when the route caches.
    static func answer(_ responseBody: ByteBuffer, _ exchange: ExchangeContext) throws -> WholeResponse {
        var headers = HTTPFields()
        try Self.answer(responseBody, exchange, fields: &headers)
        return WholeResponse(status: .ok, headers: headers, body: responseBody)
    }

    /// The fields of such an answer (its status is 200, its body the upstream's).
    static func answer<Fields: ResponseFields>(_ responseBody: ByteBuffer, _ exchange: ExchangeContext, fields headers: inout Fields) throws {
        let provider = exchange.target.provider
        let summary = try OpenAIResponseSummary.read(responseBody, provider: provider, finishReason: exchange.logger.logLevel <= .debug || exchange.trace != nil)
        if exchange.recordsAnswer, let response = try? ProviderAdapters.adapter(for: .openAIChat).decode(responseBody, provider: provider) {
            exchange.remember(response)
        }
        exchange.logCompletion(usage: summary.usage, finishReason: summary.finishReason, streamed: false)
        exchange.setAnswerHeaders(&headers, usage: summary.usage)
    }

    // MARK: Streams

    /// The head of a relayed stream.
    static func streamHeaders(_ context: ExchangeContext, overhead: Duration) -> HTTPFields {
        var headers = HTTPFields()
        Self.streamHeaders(context, overhead: overhead, fields: &headers)
        return headers
    }

    static func streamHeaders<Fields: ResponseFields>(_ context: ExchangeContext, overhead: Duration, fields headers: inout Fields) {
        headers.set(.contentType, "text/event-stream")
        headers.set(.cacheControl, "no-cache")
        headers.setRoutingHeaders(context.outcome)
        context.setAccountingHeaders(&headers, usage: nil)
        headers.setGatewayHeaders(requestID: context.requestID, overhead: overhead)
    }

    private func relayStream(_ reply: UpstreamCall.Reply, _ context: ExchangeContext, forwardUsageChunk: Bool, overhead: Duration) -> Response {
        let headers = Self.streamHeaders(context, overhead: overhead)
        let stream = reply.stream
        return Response(
            status: .ok,
            headers: headers,
            body: ResponseBody { writer in
                guard let stream else { return }
                context.watchHangUp(during: stream)
                defer { context.relayEnded() }
                var relay = OpenAIStreamRelay(provider: context.target.provider, forwardUsageChunk: forwardUsageChunk)
                var recorder = context.recordsAnswer ? StreamRecorder(ProviderAdapters.adapter(for: .openAIChat).makeStreamDecoder(provider: context.target.provider)) : nil
                var failure: GatewayError?
                /// A client that hangs up mid-stream ends the relay here; what it used so far is still accounted.
                func send(_ bytes: ByteBuffer) async throws {
                    do {
                        try await writer.write(bytes)
                    } catch {
                        context.clientLeft(usage: relay.usage)
                        throw error
                    }
                }
                while failure == nil {
                    let chunk: ByteBuffer?
                    do {
                        chunk = try await stream.next()
                    } catch is ClientHungUp {
                        context.clientLeft(usage: relay.usage)
                        throw ClientHungUp()
                    } catch {
                        // Upstream trouble is reported in-stream; a failing client write (below) ends the
                        // handler, and the upstream request is cancelled with it.
                        failure = GatewayError.from(error, provider: context.upstream.settings, streaming: true)
                        break
                    }
                    let step: OpenAIStreamRelay.Step
                    if let chunk {
                        recorder?.feed(chunk)
                        step = context.relayStep(&relay, chunk)
                    } else {
                        step = relay.finish()
                    }
                    switch step {
                    case .forward(let bytes):
                        if bytes.readableBytes > 0 { try await send(bytes) }
                    case .fail(let bytes, let error):
                        if bytes.readableBytes > 0 { try await send(bytes) }
                        failure = error
                    }
                    if chunk == nil { break }
                }
                if let failure { try await send(failure.openAIStreamEvent) }
                context.openAIStreamEnded(relay, failure: failure, recorder: &recorder)
                try await writer.finish(nil)
            }
        )
    }
}
