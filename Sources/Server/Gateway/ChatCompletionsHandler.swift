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
        let exchange = ExchangeContext(
            state: self.state, routing: routing, admission: intake.admission, requestID: requestID, outcome: outcome, logger: context.logger,
            started: started, cachePlan: intake.cachePlan
        )
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
        let summary = try OpenAIResponseSummary.read(responseBody, provider: provider, finishReason: exchange.logger.logLevel <= .debug)
        exchange.logCompletion(usage: summary.usage, finishReason: summary.finishReason, streamed: false)
        if exchange.recordsAnswer, let response = try? ProviderAdapters.adapter(for: .openAIChat).decode(responseBody, provider: provider) {
            exchange.remember(response)
        }
        headers.set(.contentType, "application/json")
        headers.setRoutingHeaders(exchange.outcome)
        exchange.setAccountingHeaders(&headers, usage: summary.usage)
        headers.setGatewayHeaders(requestID: exchange.requestID, overhead: exchange.outcome.overhead(since: exchange.started))
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
                failure = context.openAIStreamEnded(relay, failure: failure)
                if failure == nil, let response = recorder?.finish() { context.remember(response) }
                try await writer.finish(nil)
            }
        )
    }
}

/// What one exchange with an upstream needs to log and account for itself.
struct ExchangeContext: Sendable {
    let state: GatewayState
    let routing: RoutingSnapshot
    let admission: Admission
    let requestID: String
    let outcome: AttemptOutcome
    let logger: Logger
    /// When the request arrived.
    let started: ContinuousClock.Instant
    /// Where the answer goes in the cache, when the route caches and the request may be cached.
    var cachePlan: CachePlan?
    /// GenAI operation name: "chat" or "embeddings".
    var operation = "chat"

    var cacheOutcome: CacheOutcome { self.cachePlan.map { $0.lookup ? .miss : .bypass } ?? .bypass }

    /// Whether a complete answer should be kept (decoding it costs only then).
    var recordsAnswer: Bool { self.cachePlan?.store == true }

    /// Keeps a complete, successful answer for the next identical (or reworded) request.
    func remember(_ response: ChatResponse) {
        guard let plan = self.cachePlan, plan.store else { return }
        // A relayed stream's first chunk came at its first token; a whole answer's tells only the total.
        let streamed = self.outcome.reply.stream != nil
        let timing = AnswerTiming(
            firstToken: streamed ? self.outcome.replied - self.sent : nil, total: (streamed ? ContinuousClock.now : self.outcome.replied) - self.sent
        )
        let answer = CachedAnswer(response: response, provider: self.target.provider, upstreamModel: self.target.upstreamModel, timing: timing)
        self.state.cache.store(answer, plan: plan)
    }

    var target: PlannedTarget { self.outcome.target }
    var upstream: UpstreamPool.Upstream { self.outcome.upstream }
    var sent: ContinuousClock.Instant { self.outcome.sent }
    /// When the whole exchange must be over: `total` from when its attempt went out.
    var deadline: ContinuousClock.Instant { self.sent + self.upstream.settings.timeouts.total }

    /// The relay's step for an upstream chunk, or the `total` timeout once the exchange ran past its deadline.
    func relayStep(_ relay: inout OpenAIStreamRelay, _ chunk: ByteBuffer) -> OpenAIStreamRelay.Step {
        ContinuousClock.now > self.deadline ? .fail(forward: ByteBuffer(), error: .upstreamTimeout(self.upstream.settings, .total)) : relay.feed(chunk)
    }

    /// A relayed OpenAI stream is over, failed by `failure` (ours) or by the upstream's own error event
    /// (forwarded as it came); accounted.
    /// - Returns: the failure it was judged by.
    @discardableResult
    func openAIStreamEnded(_ relay: OpenAIStreamRelay, failure: GatewayError?) -> GatewayError? {
        let failure = failure ?? relay.upstreamErrorMessage.map {
            GatewayError.streamInterrupted(provider: self.target.provider, detail: "the provider sent an error event: \($0)")
        }
        self.streamEnded(failure: failure, usage: relay.usage, finishReason: relay.finishReason)
        return failure
    }

    /// A translated stream is over: accounted, and its answer kept when it ended well.
    func translatedStreamEnded(_ relay: TranslatedStreamRelay) {
        self.streamEnded(failure: relay.failure, usage: relay.usage, finishReason: nil)
        if let response = relay.recordedAnswer { self.remember(response) }
    }

    /// A relayed stream is over: the target is judged by how it ended (a failure after the first
    /// byte counts against it, though nothing can be retried any more).
    func streamEnded(failure: GatewayError?, usage: Usage?, finishReason: String?) {
        guard let failure else {
            self.outcome.lease.succeeded()
            self.logCompletion(usage: usage, finishReason: finishReason, streamed: true)
            return
        }
        self.outcome.lease.failed(.serverError, detail: failure.message)
        self.logger.warning(
            "stream failed after the first byte",
            metadata: ["gw.request_id": "\(self.requestID)", "gw.provider": "\(self.target.provider)", "gw.error": "\(failure.metricLabel)"]
        )
        self.account(status: 200, failure: failure, usage: usage, streamed: true)
    }

    func logCompletion(usage: Usage?, finishReason: String?, streamed: Bool) {
        self.logger.debug(
            "request completed",
            metadata: [
                "gw.request_id": "\(self.requestID)",
                "gw.tenant": "\(self.admission.caller.tenant ?? "-")",
                "gw.route": "\(self.target.route)",
                "gw.provider": "\(self.target.provider)",
                "gw.attempts": "\(self.outcome.attempts)",
                "gw.stream": "\(streamed)",
                "gw.input_tokens": "\(usage?.inputTokens ?? -1)",
                "gw.output_tokens": "\(usage?.outputTokens ?? -1)",
                "gw.finish_reason": "\(finishReason ?? "none")",
                "gw.upstream_ms": "\((ContinuousClock.now - self.sent).milliseconds)",
            ]
        )
        self.account(status: 200, failure: nil, usage: usage, streamed: streamed)
    }

    /// The client hung up during a relayed stream: the target is not to blame, and what the stream
    /// used so far is accounted as the caller's.
    func clientLeft(usage: Usage?) {
        self.outcome.lease.abandoned()
        self.account(status: GatewayError.clientDisconnected.httpStatus, failure: .clientDisconnected, usage: usage, streamed: true)
    }

    /// The upstream's failed answer is what the client gets (after every retry).
    func answeredWithFailure(_ error: GatewayError, status: Int) {
        self.account(status: status, failure: error, usage: nil, streamed: false)
    }

    /// The answer's cost at the target's price (0 when the price is unknown).
    func cost(of usage: Usage?) -> Double {
        guard let usage, let price = self.routing.price(of: self.target.target) else { return 0 }
        return price.cost(usage)
    }

    /// Rate-limit headers, and the cost when it is known before the body goes out.
    func setAccountingHeaders<Fields: ResponseFields>(_ headers: inout Fields, usage: Usage?) {
        headers.setRateLimitHeaders(self.admission.ticket?.report)
        headers.set(.cacheStatus, self.cacheOutcome.rawValue)
        if let usage { headers.setCost(self.cost(of: usage)) }
    }

    private func account(status: Int, failure: GatewayError?, usage: Usage?, streamed: Bool) {
        self.state.finish(RequestSummary(
            requestID: self.requestID,
            operation: self.operation,
            route: self.target.route,
            target: self.target.key,
            status: status,
            failure: failure?.domain,
            message: failure?.message,
            latency: ContinuousClock.now - self.started,
            timeToFirstToken: streamed ? self.outcome.replied - self.started : nil,
            usage: usage,
            overhead: self.outcome.overhead(since: self.started),
            caller: self.admission.caller,
            admission: self.admission,
            costUSD: failure == nil || usage != nil ? self.cost(of: usage) : 0,
            attempts: self.outcome.attempts,
            cache: self.cacheOutcome.rawValue
        ))
    }
}
