import AsyncHTTPClient
import Engine
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
        await self.state.respond(to: request, context: context, in: .anthropic) { requestID, started in
            try await self.forward(request, requestID: requestID, started: started, context: context)
        }
    }

    private func forward(_ request: Request, requestID: String, started: ContinuousClock.Instant, context: GatewayRequestContext) async throws -> Response {
        let body = try await self.state.body(of: request)
        // Only the model and `stream` are read first: a same-dialect request must not be decoded.
        let patch = try OpenAIRequestPatch(body: body)
        let (target, upstream) = try self.state.target(for: patch.clientModel)
        if upstream.settings.wire == .anthropicMessages {
            return try await self.passThrough(patch, target: target, upstream: upstream, requestID: requestID, started: started, context: context)
        }
        let decoded = try AnthropicRequestDecoder.decode(body)
        return try await TranslatedExchange(state: self.state, client: .anthropic).run(
            decoded.request, dropped: decoded.dropped, target: target, upstream: upstream,
            requestID: requestID, started: started, context: context
        )
    }

    /// `POST /v1/messages/count_tokens`: an estimate (see `TokenEstimate`), validated like a real
    /// request and only for models this gateway routes.
    func countTokens(_ request: Request, context: GatewayRequestContext) async -> Response {
        await self.state.respond(to: request, context: context, in: .anthropic) { requestID, started in
            let body = try await self.state.body(of: request)
            let chat = try AnthropicRequestDecoder.decode(body, requireMaxTokens: false).request
            _ = try self.state.target(for: chat.model)
            var headers: HTTPFields = [.contentType: "application/json"]
            headers.setGatewayHeaders(requestID: requestID, overhead: ContinuousClock.now - started)
            headers[.tokenEstimate] = "true"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: #"{"input_tokens":\#(TokenEstimate.inputTokens(chat))}"#)))
        }
    }

    // MARK: Same dialect

    /// An Anthropic request to an Anthropic upstream: only `model` is rewritten, and the answer comes
    /// back byte for byte in whole events, observed on the way for usage and a proper end.
    private func passThrough(
        _ patch: OpenAIRequestPatch,
        target: RouteTable.Resolved,
        upstream: UpstreamPool.Upstream,
        requestID: String,
        started: ContinuousClock.Instant,
        context: GatewayRequestContext
    ) async throws -> Response {
        let upstreamBody = patch.upstreamBody(model: target.upstreamModel, requestStreamUsage: false)
        let sent = ContinuousClock.now
        let reply = try await self.state.disconnects.cancellingOnHangUp(connection: context.connection) {
            try await UpstreamCall.post(upstreamBody, path: "/messages", model: target.upstreamModel, to: upstream, requestID: requestID, streaming: patch.isStreaming, sent: sent)
        }
        let replied = ContinuousClock.now
        let overhead = (sent - started) + (ContinuousClock.now - replied)
        let exchange = ExchangeContext(requestID: requestID, target: target, upstream: upstream, logger: context.logger, sent: sent)
        var headers: HTTPFields = [.contentType: "application/json"]
        headers[.switchyardProvider] = target.provider
        headers.setGatewayHeaders(requestID: requestID, overhead: overhead)
        guard reply.isSuccess else {
            let status = Int(reply.response.status.code)
            let retryAfter = reply.response.headers.first(name: "retry-after")
            guard let body = reply.body, UpstreamCall.isErrorEnvelope(body), status != 401, status != 403 else {
                let error = reply.error(provider: target.provider)
                error.log(requestID: requestID, logger: context.logger)
                return error.anthropicResponse(requestID: requestID, overhead: overhead)
            }
            if let retryAfter { headers[.retryAfter] = retryAfter }
            return Response(status: HTTPResponse.Status(code: status), headers: headers, body: ResponseBody(byteBuffer: body))
        }
        guard let responseBody = reply.body else {
            headers[.contentType] = "text/event-stream"
            headers[.cacheControl] = "no-cache"
            return Response(status: .ok, headers: headers, body: Self.relayAnthropicStream(reply.response, exchange))
        }
        let response = try AnthropicResponseDecoder.decode(responseBody, provider: target.provider)
        exchange.logCompletion(usage: response.usage, finishReason: "\(response.stopReason)", streamed: false)
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: responseBody))
    }

    private static func relayAnthropicStream(_ response: HTTPClientResponse, _ context: ExchangeContext) -> ResponseBody {
        let totalDeadline = context.sent + context.upstream.settings.timeouts.total
        return ResponseBody { writer in
            var decoder = AnthropicStreamDecoder(provider: context.target.provider)
            var pending = ByteBuffer()
            var iterator = response.body.makeAsyncIterator()
            var failure: GatewayError?
            var finished = false
            while !finished && failure == nil {
                let chunk: ByteBuffer?
                do {
                    chunk = try await iterator.next()
                } catch {
                    failure = GatewayError.from(error, provider: context.upstream.settings, streaming: true)
                    break
                }
                guard var chunk else {
                    for case .failure(let error) in decoder.finish() { failure = error }
                    break
                }
                if ContinuousClock.now > totalDeadline {
                    failure = .upstreamTimeout(provider: context.target.provider, phase: "total", limit: DurationText.format(context.upstream.settings.timeouts.total))
                    break
                }
                pending.writeBuffer(&chunk)
                for event in SSE.takeEvents(from: &pending) where !finished && failure == nil {
                    let decoded = decoder.feed(event)
                    if case .failure(let error)? = decoded.last, error.metricLabel != "upstream_status" {
                        // Not valid: the client must not see it. (An upstream `error` event is valid and passes.)
                        failure = error
                        break
                    }
                    try await writer.write(event)
                    if decoded.contains(.end) || decoded.contains(where: { if case .failure = $0 { return true } else { return false } }) {
                        finished = true
                    }
                }
            }
            if let failure {
                try await writer.write(ByteBuffer(string: "event: error\ndata: \(failure.anthropicBody(requestID: nil))\n\n"))
                context.logStreamFailure(failure.metricLabel)
            } else {
                context.logCompletion(usage: decoder.currentUsage, finishReason: nil, streamed: true)
            }
            try await writer.finish(nil)
        }
    }
}
