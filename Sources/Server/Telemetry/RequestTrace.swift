import Engine
import Logging
import NIOCore
import Synchronization
import Tracing

/// One sampled request's spans, named and attributed after the OpenTelemetry GenAI conventions: the
/// server span (from arrival to the last byte the client gets), its steps (admission, the cache), and
/// a client span per upstream attempt. Both lanes report to it; the rules of what a span says live here.
final class RequestTrace: Sendable {
    /// The request a framework-lane task serves (the fast lane holds its trace itself).
    @TaskLocal static var current: RequestTrace?

    let server: any Span
    let tracer: GatewayTracer
    /// Every span of the trace is timed by it.
    private let clock: TraceClock
    /// Whether prompts and completions go on the spans (`tracing.capture_content`).
    let capturesContent: Bool
    /// `trace_id` and `span_id` for the request's log lines.
    let logMetadata: Logger.Metadata
    private let progress = Mutex(Progress())

    private struct Progress {
        /// Attempts sent and not judged yet.
        var attempts: [AttemptSpan] = []
        var winner: AttemptSpan?
        /// The last attempt that failed with an upstream's answer, and when: the client gets that
        /// answer if nothing else comes, so its span ends once the request says whether it did.
        var answeredFailure: (attempt: AttemptSpan, at: ContinuousClock.Instant)?
        var sent = 0
        var requestedModel: String?
        /// GenAI operation name: "chat" or "embeddings".
        var operation = "chat"
        var finished = false
    }

    init(server: any Span, tracer: GatewayTracer, clock: TraceClock, captureContent: Bool) {
        self.server = server
        self.tracer = tracer
        self.clock = clock
        self.capturesContent = captureContent
        let context = tracer.propagation(of: server).traceparent?.split(separator: "-") ?? []
        self.logMetadata = context.count >= 3 ? ["trace_id": "\(context[1])", "span_id": "\(context[2])"] : [:]
    }

    /// The trace and span ids of the framework-lane request a log line is written for.
    static let logMetadataProvider = Logger.MetadataProvider { RequestTrace.current?.logMetadata ?? [:] }

    /// `logger` with the request's trace and span ids, so its lines join the trace.
    func annotate(_ logger: Logger) -> Logger {
        var annotated = logger
        for (key, value) in self.logMetadata { annotated[metadataKey: key] = value }
        return annotated
    }

    /// What the client asked for, once the request is read.
    func requested(model: String, streaming: Bool, lane: String, operation: String = "chat") {
        self.progress.withLock { ($0.requestedModel, $0.operation) = (model, operation) }
        self.server.updateAttributes { attributes in
            attributes["gen_ai.request.model"] = model
            attributes["gen_ai.request.stream"] = streaming
            attributes["switchyard.lane"] = lane
        }
    }

    /// The request's body as `gen_ai.input.messages`, when the operator opted in.
    func capture(input body: ByteBuffer) {
        guard self.capturesContent else { return }
        let kept = body.getSlice(at: body.readerIndex, length: min(body.readableBytes, Self.capturedBytes)) ?? ByteBuffer()
        self.server.attributes["gen_ai.input.messages"] = String(buffer: kept)
    }

    /// The answer as `gen_ai.output.messages`, when the operator opted in.
    func capture(output text: String) {
        guard self.capturesContent else { return }
        self.server.attributes["gen_ai.output.messages"] = String(decoding: text.utf8.prefix(Self.capturedBytes), as: UTF8.self)
    }

    /// The most of a prompt or an answer a span carries: collectors refuse larger attributes.
    static let capturedBytes = 32 * 1024

    /// A step of the request (admission, a cache lookup) from `start`; its caller ends it.
    func step(_ name: String, kind: SpanKind = .internal, under parent: (any Span)? = nil, at start: ContinuousClock.Instant = .now) -> any Span {
        self.tracer.startSpan(name, under: parent ?? self.server, kind: kind, at: self.clock.instant(start))
    }

    /// Ends `span` (one of this trace's) at `end`, after `describe` adds its attributes.
    func end(_ span: any Span, at end: ContinuousClock.Instant = .now, _ describe: (inout SpanAttributes) -> Void = { _ in }) {
        span.updateAttributes(describe)
        span.end(at: self.clock.instant(end))
    }

    /// The admission's span, from `start` to now: refused, or admitted (and through Redis, when the
    /// limits are shared: one round trip, its own client span).
    func admitted(from start: ContinuousClock.Instant, refusal: GatewayError?, throughRedis: Bool) {
        let now = ContinuousClock.now
        let span = self.step("switchyard.admission", at: start)
        if throughRedis {
            self.end(self.step("EVALSHA", kind: .client, under: span, at: start), at: now) { attributes in
                attributes["db.system.name"] = "redis"
                attributes["db.operation.name"] = "EVALSHA"
            }
        }
        span.updateAttributes { attributes in
            attributes["switchyard.admission.outcome"] = refusal == nil ? "admitted" : "refused"
            if let refusal { attributes["error.type"] = refusal.metricLabel }
        }
        self.end(span, at: now)
    }

    /// The client span of an attempt about to go to `target`; the upstream is sent its `traceparent`.
    func attempt(_ target: PlannedTarget, upstream: UpstreamPool.Upstream, streaming: Bool, at sent: ContinuousClock.Instant = .now) -> AttemptSpan {
        let (number, operation, superseded) = self.progress.withLock { progress in
            progress.sent += 1
            defer { progress.answeredFailure = nil }
            return (progress.sent, progress.operation, progress.answeredFailure)
        }
        // Another attempt goes out: the last failed answer is not what the client gets.
        superseded?.attempt.end(delivered: false, at: superseded?.at ?? .now)
        let span = self.step("\(operation) \(target.upstreamModel)", kind: .client, at: sent)
        span.updateAttributes { attributes in
            attributes["gen_ai.operation.name"] = operation
            attributes["gen_ai.provider.name"] = upstream.settings.kind.genAIProviderName
            attributes["gen_ai.request.model"] = target.upstreamModel
            attributes["gen_ai.request.stream"] = streaming
            attributes["switchyard.provider"] = target.provider
            attributes["switchyard.route"] = target.route
            attributes["switchyard.attempt.number"] = number
            if let address = upstream.address {
                attributes["server.address"] = address.host
                attributes["server.port"] = address.port
            }
        }
        let attempt = AttemptSpan(
            span: span, propagation: self.tracer.propagation(of: span), trace: self, target: target.key, sent: sent, streaming: streaming
        )
        self.progress.withLock { $0.attempts.append(attempt) }
        return attempt
    }

    fileprivate func won(_ attempt: AttemptSpan) {
        self.progress.withLock { progress in
            progress.attempts.removeAll { $0 === attempt }
            progress.winner = attempt
        }
    }

    fileprivate func failed(_ attempt: AttemptSpan, answered: Bool, at now: ContinuousClock.Instant) {
        let superseded = self.progress.withLock { progress in
            progress.attempts.removeAll { $0 === attempt }
            defer { if answered { progress.answeredFailure = (attempt, now) } }
            return answered ? progress.answeredFailure : nil
        }
        superseded?.attempt.end(delivered: false, at: superseded?.at ?? now)
        if !answered { attempt.end(delivered: false, at: now) }
    }

    fileprivate func over(_ attempt: AttemptSpan) {
        self.progress.withLock { $0.attempts.removeAll { $0 === attempt } }
    }

    /// The request is over (its last byte sent, or its failure answered): the winning attempt ends with
    /// it, any attempt still out (a hedge's loser) ends cancelled, and the server span says how it went.
    /// - Parameter providerKind: the serving target's provider kind.
    func finish(_ summary: RequestSummary, providerKind: ProviderKind?) {
        let (winner, leftover, answeredFailure, requestedModel) = self.progress.withLock { progress in
            guard !progress.finished else { return (AttemptSpan?.none, [AttemptSpan](), (attempt: AttemptSpan, at: ContinuousClock.Instant)?.none, String?.none) }
            progress.finished = true
            defer { (progress.attempts, progress.winner, progress.answeredFailure) = ([], nil, nil) }
            return (progress.winner, progress.attempts, progress.answeredFailure, progress.requestedModel)
        }
        for attempt in leftover { attempt.cancelled() }
        let failed = summary.failure != nil
        if let winner {
            // The winner's answer went to the client; a stream that broke, or a client that left, failed it after the fact.
            if failed { winner.fail(error: summary.errorType ?? "stream_failed", message: summary.message) }
            winner.end(delivered: true, at: .now)
        }
        if let (attempt, at) = answeredFailure {
            // Its answer is the client's when no attempt won and the request ended on its target.
            attempt.end(delivered: winner == nil && summary.target == attempt.target, at: at)
        }
        let span = self.server
        span.updateAttributes { attributes in
            attributes["http.response.status_code"] = summary.status
            attributes["switchyard.request_id"] = summary.requestID
            attributes["switchyard.cache"] = summary.cache
            attributes["switchyard.attempts"] = summary.attempts
            attributes["gen_ai.operation.name"] = summary.operation
            if let tenant = summary.caller.tenant { attributes["switchyard.tenant"] = tenant }
            if let route = summary.route { attributes["switchyard.route"] = route }
            if requestedModel == nil, let route = summary.route { attributes["gen_ai.request.model"] = route }
            if summary.costUSD > 0 { attributes["switchyard.cost_usd"] = summary.costUSD }
            if summary.costSavedUSD > 0 { attributes["switchyard.cost_saved_usd"] = summary.costSavedUSD }
            if let target = summary.target {
                attributes["switchyard.provider"] = target.provider
                attributes["gen_ai.response.model"] = target.model
                if let providerKind { attributes["gen_ai.provider.name"] = providerKind.genAIProviderName }
            }
            if let usage = summary.usage {
                attributes["gen_ai.usage.input_tokens"] = usage.inputTokens
                attributes["gen_ai.usage.output_tokens"] = usage.outputTokens
                attributes["gen_ai.usage.cache_read.input_tokens"] = usage.cachedInputTokens
                attributes["gen_ai.usage.cache_creation.input_tokens"] = usage.cacheWriteInputTokens
                if usage.reasoningTokens > 0 { attributes["gen_ai.usage.reasoning.output_tokens"] = usage.reasoningTokens }
            }
            if let reason = summary.finishReason { attributes["gen_ai.response.finish_reasons"] = [reason] }
            if let firstToken = summary.timeToFirstToken { attributes["gen_ai.response.time_to_first_chunk"] = firstToken.seconds }
            if let type = summary.errorType { attributes["error.type"] = type }
        }
        // A server span fails on a 5xx only: a 4xx is the caller's, and the gateway did its job.
        if summary.status >= 500 || (failed && summary.status == 200) {
            span.setStatus(SpanStatus(code: .error, message: summary.message))
        }
        self.end(span)
    }
}

/// The client span of one upstream attempt: ended when it fails without an answer or loses; the
/// winner's, and a failed answer's the client may get, when the request ends.
final class AttemptSpan: Sendable {
    let span: any Span
    /// The `traceparent` (and `tracestate`) the upstream gets: this span's.
    let propagation: TraceCarrier
    let target: TargetKey
    private let trace: RequestTrace
    private let sent: ContinuousClock.Instant
    private let streaming: Bool
    private let ended = Atomic<Bool>(false)

    fileprivate init(span: any Span, propagation: TraceCarrier, trace: RequestTrace, target: TargetKey, sent: ContinuousClock.Instant, streaming: Bool) {
        self.span = span
        self.propagation = propagation
        self.trace = trace
        self.target = target
        self.sent = sent
        self.streaming = streaming
    }

    /// How the lifecycle judged the attempt.
    func judged(_ result: GatewayState.AttemptResult) {
        switch result {
        case .won(let outcome):
            self.span.updateAttributes { attributes in
                attributes["http.response.status_code"] = outcome.reply.status
                attributes["switchyard.attempt.outcome"] = "won"
                // A stream's winner is judged at its first chunk.
                if self.streaming { attributes["gen_ai.response.time_to_first_chunk"] = (outcome.replied - self.sent).seconds }
            }
            self.trace.won(self)
        case .failed(_, _, let error, let outcome):
            if let outcome { self.span.attributes["http.response.status_code"] = outcome.reply.status }
            self.fail(error: error.metricLabel, message: error.message)
            self.trace.failed(self, answered: outcome != nil, at: .now)
        case .abandoned:
            break
        }
    }

    /// Another attempt won, or the client left before this one was judged.
    func cancelled() {
        self.span.attributes["switchyard.attempt.outcome"] = "cancelled"
        self.end(delivered: false, at: .now)
    }

    fileprivate func fail(error: String, message: String?) {
        self.span.updateAttributes { attributes in
            attributes["switchyard.attempt.outcome"] = "failed"
            attributes["error.type"] = error
        }
        self.span.setStatus(SpanStatus(code: .error, message: message ?? error))
    }

    /// - Parameter delivered: whether the client received this attempt's bytes.
    fileprivate func end(delivered: Bool, at end: ContinuousClock.Instant) {
        guard !self.ended.exchange(true, ordering: .acquiringAndReleasing) else { return }
        self.trace.over(self)
        self.trace.end(self.span, at: end) { $0["switchyard.attempt.delivered"] = delivered }
    }
}
