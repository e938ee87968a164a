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
        await self.state.respond(to: request, context: context, in: .openAI) { requestID, started in
            try await self.forward(request, requestID: requestID, started: started, context: context)
        }
    }

    private func forward(_ request: Request, requestID: String, started: ContinuousClock.Instant, context: GatewayRequestContext) async throws -> Response {
        let body = try await self.state.body(of: request)
        let patch = try OpenAIRequestPatch(body: body)
        let (target, upstream) = try self.state.target(for: patch.clientModel)

        if upstream.settings.wire != .openAIChat {
            let decoded = try OpenAIRequestDecoder.decode(body)
            let exchange = TranslatedExchange(state: self.state, client: .openAI, includeUsage: decoded.includeUsage)
            return try await exchange.run(
                decoded.request, dropped: decoded.dropped, target: target, upstream: upstream,
                requestID: requestID, started: started, context: context
            )
        }
        let upstreamBody = patch.upstreamBody(model: target.upstreamModel, requestStreamUsage: upstream.settings.acceptsStreamOptions)
        let sent = ContinuousClock.now
        let reply = try await self.state.disconnects.cancellingOnHangUp(connection: context.connection) {
            try await UpstreamCall.post(upstreamBody, path: "/chat/completions", model: target.upstreamModel, to: upstream, requestID: requestID, streaming: patch.isStreaming, sent: sent)
        }
        let replied = ContinuousClock.now
        let beforeUpstream = sent - started
        let exchange = ExchangeContext(requestID: requestID, target: target, upstream: upstream, logger: context.logger, sent: sent)

        guard (200..<300).contains(Int(reply.response.status.code)) else {
            return reply.openAIErrorResponse(exchange, overhead: beforeUpstream + (ContinuousClock.now - replied))
        }
        guard let responseBody = reply.body else {
            return self.relayStream(reply.response, exchange, forwardUsageChunk: patch.clientWantsStreamUsage, overhead: beforeUpstream + (ContinuousClock.now - replied))
        }
        let summary = try OpenAIResponseSummary.read(responseBody, provider: target.provider)
        exchange.logCompletion(usage: summary.usage, finishReason: summary.finishReason, streamed: false)

        var headers: HTTPFields = [.contentType: "application/json"]
        headers[.switchyardProvider] = target.provider
        headers.setGatewayHeaders(requestID: requestID, overhead: beforeUpstream + (ContinuousClock.now - replied))
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: responseBody))
    }

    // MARK: Streams

    private func relayStream(_ response: HTTPClientResponse, _ context: ExchangeContext, forwardUsageChunk: Bool, overhead: Duration) -> Response {
        var headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache"]
        headers[.switchyardProvider] = context.target.provider
        headers.setGatewayHeaders(requestID: context.requestID, overhead: overhead)
        let totalDeadline = context.sent + context.upstream.settings.timeouts.total
        return Response(
            status: .ok,
            headers: headers,
            body: ResponseBody { writer in
                var relay = OpenAIStreamRelay(provider: context.target.provider, forwardUsageChunk: forwardUsageChunk)
                var iterator = response.body.makeAsyncIterator()
                var failure: GatewayError?
                while failure == nil {
                    let chunk: ByteBuffer?
                    do {
                        chunk = try await iterator.next()
                    } catch {
                        // Upstream trouble is reported in-stream; a failing client write (below) is not caught,
                        // so the handler ends and the upstream request is cancelled with it.
                        failure = GatewayError.from(error, provider: context.upstream.settings, streaming: true)
                        break
                    }
                    let step: OpenAIStreamRelay.Step
                    if let chunk {
                        step = ContinuousClock.now > totalDeadline
                            ? .fail(forward: ByteBuffer(), error: .upstreamTimeout(provider: context.target.provider, phase: "total", limit: DurationText.format(context.upstream.settings.timeouts.total)))
                            : relay.feed(chunk)
                    } else {
                        step = relay.finish()
                    }
                    switch step {
                    case .forward(let bytes):
                        if bytes.readableBytes > 0 { try await writer.write(bytes) }
                    case .fail(let bytes, let error):
                        if bytes.readableBytes > 0 { try await writer.write(bytes) }
                        failure = error
                    }
                    if chunk == nil { break }
                }
                if let failure {
                    try await writer.write(failure.openAIStreamEvent)
                    context.logStreamFailure(failure.metricLabel)
                } else if relay.upstreamErrorMessage != nil {
                    // The upstream's own error event was forwarded as it came.
                    context.logStreamFailure("upstream_error_event")
                } else {
                    context.logCompletion(usage: relay.usage, finishReason: relay.finishReason, streamed: true)
                }
                try await writer.finish(nil)
            }
        )
    }
}

/// What one exchange with an upstream needs to log and account for itself.
struct ExchangeContext: Sendable {
    let requestID: String
    let target: RouteTable.Resolved
    let upstream: UpstreamPool.Upstream
    let logger: Logger
    let sent: ContinuousClock.Instant

    func logStreamFailure(_ label: String) {
        self.logger.warning(
            "stream failed after the first byte",
            metadata: ["gw.request_id": "\(self.requestID)", "gw.provider": "\(self.target.provider)", "gw.error": "\(label)"]
        )
    }

    func logCompletion(usage: Usage?, finishReason: String?, streamed: Bool) {
        self.logger.debug(
            "request completed",
            metadata: [
                "gw.request_id": "\(self.requestID)",
                "gw.route": "\(self.target.alias)",
                "gw.provider": "\(self.target.provider)",
                "gw.stream": "\(streamed)",
                "gw.input_tokens": "\(usage?.inputTokens ?? -1)",
                "gw.output_tokens": "\(usage?.outputTokens ?? -1)",
                "gw.finish_reason": "\(finishReason ?? "none")",
                "gw.upstream_ms": "\((ContinuousClock.now - self.sent).milliseconds)",
            ]
        )
    }
}
