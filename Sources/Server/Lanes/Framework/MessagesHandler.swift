import AsyncHTTPClient
import Engine
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1

/// `POST /v1/messages` from an Anthropic client: passed through to Anthropic upstreams with only
/// `model` rewritten, translated through the canonical model to every other upstream and back,
/// streams included. Errors come in Anthropic's envelope.
struct MessagesHandler: Sendable {
    let state: GatewayState

    func handle(_ request: Request, context: GatewayRequestContext) async -> Response {
        await self.state.respond(to: request, context: context, in: .anthropic) { requestID, started, caller in
            try await self.forward(request, requestID: requestID, started: started, caller: caller, context: context)
        }
    }

    private func forward(_ request: Request, requestID: String, started: ContinuousClock.Instant, caller: Caller, context: GatewayRequestContext) async throws -> Response {
        let intake: ChatIntake
        switch try await self.state.intake(request, caller: caller, dialect: .anthropic, requestID: requestID, started: started, logger: context.logger) {
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
        let decoded = try plan.everyCandidate.contains { routing.upstreams[$0.provider]?.settings.wire != .anthropicMessages }
            ? AnthropicRequestDecoder.decode(body) : nil
        let images = self.state.imageInlining(for: decoded?.request, logger: context.logger)
        let outcome = try await self.state.forward(plan, in: routing, request: request, requestID: requestID, context: context) { target, upstream in
            guard upstream.settings.wire == .anthropicMessages else {
                guard let decoded else { throw GatewayError.internalFailure("no decoded request for a translated target") }
                return try await TranslatedExchange.prepare(decoded.request, target: target, upstream: upstream, images: images)
            }
            let upstreamBody = patch.upstreamBody(model: target.upstreamModel, requestStreamUsage: false)
            return UpstreamRequest(body: upstreamBody, path: "/messages", streaming: patch.isStreaming)
        }
        var exchange = ExchangeContext(
            state: self.state, routing: routing, admission: intake.admission, requestID: requestID, outcome: outcome, logger: context.logger,
            started: started, cachePlan: intake.cachePlan
        )
        exchange.clientConnection = context.connection
        if outcome.upstream.settings.wire != .anthropicMessages, let decoded {
            return try TranslatedExchange(client: .anthropic).respond(exchange, request: decoded.request, dropped: decoded.dropped, started: started)
        }
        return try self.passThrough(exchange, started: started)
    }

    /// `POST /v1/messages/count_tokens`: an estimate (see `TokenEstimate`), validated like a real
    /// request and only for models this gateway routes.
    func countTokens(_ request: Request, context: GatewayRequestContext) async -> Response {
        await self.state.respond(to: request, context: context, in: .anthropic) { requestID, started, _ in
            let body = try await self.state.body(of: request)
            let chat = try AnthropicRequestDecoder.decode(body, requireMaxTokens: false).request
            _ = try self.state.routing.routes.route(for: RequestFeatures(model: chat.model, streaming: false))
            var headers: HTTPFields = [.contentType: "application/json"]
            headers.setGatewayHeaders(requestID: requestID, overhead: ContinuousClock.now - started)
            headers[.tokenEstimate] = "true"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: #"{"input_tokens":\#(TokenEstimate.inputTokens(chat))}"#)))
        }
    }

    // MARK: Same dialect

    /// An Anthropic request to an Anthropic upstream: only `model` was rewritten, and the answer comes
    /// back byte for byte in whole events, observed on the way for usage and a proper end.
    private func passThrough(_ exchange: ExchangeContext, started: ContinuousClock.Instant) throws -> Response {
        let outcome = exchange.outcome
        let reply = outcome.reply
        let overhead = outcome.overhead(since: started)
        var headers: HTTPFields = [.contentType: "application/json"]
        headers.setRoutingHeaders(outcome)
        exchange.setAccountingHeaders(&headers, usage: nil)
        headers.setGatewayHeaders(requestID: exchange.requestID, overhead: overhead)
        guard reply.isSuccess else {
            let status = reply.status
            let error = reply.error(provider: outcome.target.provider)
            guard let body = reply.body, UpstreamCall.isErrorEnvelope(body), status != 401, status != 403 else {
                error.log(requestID: exchange.requestID, logger: exchange.logger)
                exchange.answeredWithFailure(error, status: error.httpStatus)
                return error.anthropicResponse(requestID: exchange.requestID, overhead: overhead)
            }
            exchange.answeredWithFailure(error, status: status)
            reply.passRetryAfter(into: &headers)
            return Response(status: HTTPResponse.Status(code: status), headers: headers, body: ResponseBody(byteBuffer: body))
        }
        guard let responseBody = reply.body else {
            guard let stream = reply.stream else { throw GatewayError.internalFailure("a successful reply with neither body nor stream") }
            headers[.contentType] = "text/event-stream"
            headers[.cacheControl] = "no-cache"
            return Response(status: .ok, headers: headers, body: Self.relayAnthropicStream(stream, exchange))
        }
        let response = try AnthropicResponseDecoder.decode(responseBody, provider: outcome.target.provider)
        exchange.remember(response)
        exchange.logCompletion(usage: response.usage, finishReason: OpenAIResponseEncoder.finishReason(response.stopReason), streamed: false)
        headers.setCost(exchange.cost(of: response.usage))
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: responseBody))
    }

    private static func relayAnthropicStream(_ stream: UpstreamStream, _ context: ExchangeContext) -> ResponseBody {
        ResponseBody { writer in
            context.watchHangUp(during: stream)
            defer { context.relayEnded() }
            var decoder = AnthropicStreamDecoder(provider: context.target.provider)
            var recording = context.recordsAnswer ? StreamRecording() : nil
            var events = StreamEventFramer(.blankLine, provider: context.target.provider)
            var failure: GatewayError?
            var upstreamError: GatewayError?
            var finished = false
            /// A client that hangs up mid-stream ends the relay here; what it used so far is still accounted.
            func send(_ bytes: ByteBuffer) async throws {
                do {
                    try await writer.write(bytes)
                } catch {
                    context.clientLeft(usage: decoder.currentUsage)
                    throw error
                }
            }
            while !finished && failure == nil {
                let chunk: ByteBuffer?
                do {
                    chunk = try await stream.next()
                } catch is ClientHungUp {
                    context.clientLeft(usage: decoder.currentUsage)
                    throw ClientHungUp()
                } catch {
                    failure = GatewayError.from(error, provider: context.upstream.settings, streaming: true)
                    break
                }
                guard let chunk else {
                    for case .failure(let error) in decoder.finish() { failure = error }
                    break
                }
                if ContinuousClock.now > context.deadline {
                    failure = .upstreamTimeout(context.upstream.settings, .total)
                    break
                }
                let framed = events.feed(chunk)
                for event in framed.events.map(\.bytes) where !finished && failure == nil {
                    let decoded = decoder.feed(event)
                    recording?.record(decoded)
                    if case .failure(let error)? = decoded.last, error.metricLabel != "upstream_status" {
                        // Not valid: the client must not see it. (An upstream `error` event is valid and passes.)
                        failure = error
                        break
                    }
                    try await send(event)
                    if case .failure(let error)? = decoded.last {
                        // The upstream's own `error` event, forwarded as it came.
                        upstreamError = error
                        finished = true
                    }
                    if decoded.contains(.end) { finished = true }
                }
                // An event over the cap: the events before it went out, and the stream ends here.
                if !finished, failure == nil, let tooLarge = framed.failure { failure = tooLarge }
            }
            if let failure {
                try await send(ByteBuffer(string: "event: error\ndata: \(failure.anthropicBody(requestID: nil))\n\n"))
            }
            if failure == nil && upstreamError == nil, let response = recording?.response { context.remember(response) }
            context.streamEnded(failure: failure ?? upstreamError, usage: decoder.currentUsage, finishReason: nil)
            try await writer.finish(nil)
        }
    }
}
