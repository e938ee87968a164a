import Engine
import Foundation
import HTTPTypes
import Logging
import NIOCore

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
    /// The client's connection, on the framework lane: a relayed stream stops when it hangs up.
    var clientConnection: ObjectIdentifier?
    /// The request's spans, when it is traced (on the framework lane, the task's).
    var trace: RequestTrace? = RequestTrace.current
    /// Keeps a Responses answer for `previous_response_id` (the API's `store`), before the client can ask.
    var keepAnswer: (@Sendable (ChatResponse) async throws -> Void)?

    var cacheOutcome: CacheOutcome { self.cachePlan.map { $0.lookup ? .miss : .bypass } ?? .bypass }

    /// Whether a complete answer should be kept, or put on the trace (decoding it costs only then).
    var recordsAnswer: Bool { self.cachePlan?.store == true || self.trace?.capturesContent == true || self.keepAnswer != nil }

    /// Keeps a Responses answer when asked to (`keepAnswer`). A database that fails is logged: the
    /// answer is the client's either way, and only a follow-up to it will miss.
    func keep(_ answer: ChatResponse) async {
        guard let keepAnswer = self.keepAnswer else { return }
        await Self.keep(answer, with: keepAnswer, requestID: self.requestID, logger: self.logger)
    }

    static func keep(_ answer: ChatResponse, with keepAnswer: @Sendable (ChatResponse) async throws -> Void, requestID: String, logger: Logger) async {
        do {
            try await keepAnswer(answer)
        } catch {
            logger.error("a Responses answer could not be kept", metadata: ["gw.request_id": "\(requestID)", "gw.error": "\(error)"])
        }
    }

    /// Keeps a complete, successful answer for the next identical (or reworded) request, and puts it
    /// on the request's span when the operator opted in to content.
    func remember(_ response: ChatResponse) {
        if let trace = self.trace, trace.capturesContent {
            trace.capture(output: OpenAIResponseEncoder.completion(response, model: self.target.upstreamModel, created: 0))
        }
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
    func relayStep(_ relay: inout OpenAIStreamRelay, _ chunk: ByteBuffer, at now: ContinuousClock.Instant = .now) -> OpenAIStreamRelay.Step {
        now > self.deadline ? .fail(forward: ByteBuffer(), error: .upstreamTimeout(self.upstream.settings, .total)) : relay.feed(chunk)
    }

    /// A relayed OpenAI stream is over, failed by `failure` (ours) or by the upstream's own error event
    /// (forwarded as it came): its recorded answer kept when it ended well, then accounted.
    func openAIStreamEnded(_ relay: OpenAIStreamRelay, failure: GatewayError?, recorder: inout StreamRecorder?) {
        let failure = failure ?? relay.upstreamErrorMessage.map {
            GatewayError.streamInterrupted(provider: self.target.provider, detail: "the provider sent an error event: \($0)")
        }
        if failure == nil, let response = recorder?.finish() { self.remember(response) }
        self.streamEnded(failure: failure, usage: relay.usage, finishReason: relay.finishReason)
    }

    /// Stops `stream` when the client hangs up while it is relayed (its wait on the upstream would
    /// otherwise last until the next chunk); `relayEnded` ends the watch.
    func watchHangUp(during stream: UpstreamStream) {
        guard let connection = self.clientConnection else { return }
        self.state.disconnects.onHangUp(connection: connection) { stream.clientHungUp() }
    }

    func relayEnded() {
        if let connection = self.clientConnection { self.state.disconnects.clear(connection: connection) }
    }

    /// A translated stream, or a Responses stream passed through, is over: accounted, and its answer
    /// kept when it ended well.
    func streamEnded(_ relay: some ClientStreamRelay) {
        if let response = relay.recordedAnswer { self.remember(response) }
        self.streamEnded(failure: relay.failure, usage: relay.usage, finishReason: nil)
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
        (self.trace?.annotate(self.logger) ?? self.logger).warning(
            "stream failed after the first byte",
            metadata: ["gw.request_id": "\(self.requestID)", "gw.provider": "\(self.target.provider)", "gw.error": "\(failure.metricLabel)"]
        )
        self.account(status: 200, failure: failure, usage: usage, streamed: true, finishReason: finishReason)
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
        self.account(status: 200, failure: nil, usage: usage, streamed: streamed, finishReason: finishReason)
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

    /// The fields of a whole successful answer: its type, where it went, what it cost, the gateway's own.
    func setAnswerHeaders<Fields: ResponseFields>(_ headers: inout Fields, usage: Usage?) {
        headers.set(.contentType, "application/json")
        headers.setRoutingHeaders(self.outcome)
        self.setAccountingHeaders(&headers, usage: usage)
        headers.setGatewayHeaders(requestID: self.requestID, overhead: self.outcome.overhead(since: self.started))
    }

    /// Rate-limit headers, and the cost when it is known before the body goes out.
    func setAccountingHeaders<Fields: ResponseFields>(_ headers: inout Fields, usage: Usage?) {
        headers.setRateLimitHeaders(self.admission.ticket?.report)
        headers.set(.cacheStatus, self.cacheOutcome.rawValue)
        if let refusal = self.cachePlan?.refusal { headers.set(.cacheRefused, refusal.rawValue) }
        if let usage { headers.setCost(self.cost(of: usage)) }
    }

    private func account(status: Int, failure: GatewayError?, usage: Usage?, streamed: Bool, finishReason: String? = nil) {
        var summary = RequestSummary(
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
        )
        summary.errorType = failure?.metricLabel
        summary.finishReason = finishReason
        summary.cacheRefusal = self.cachePlan?.refusal
        summary.trace = self.trace
        self.state.finish(summary)
    }
}
