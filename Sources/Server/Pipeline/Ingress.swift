import Engine
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1

/// What every endpoint does around its own work: a request id, the body within its limit, the route's
/// target and its upstream, and any failure rendered in the client's dialect and logged once.
extension GatewayState {
    func respond(
        to request: Request,
        context: GatewayRequestContext,
        in dialect: ClientDialect,
        _ work: (_ requestID: String, _ started: ContinuousClock.Instant, _ caller: Caller) async throws -> Response
    ) async -> Response {
        let started = ContinuousClock.now
        let requestID = self.identity.make(clientSupplied: request.headers[.requestID])
        var caller = Caller.anonymous
        let trace = self.tracer?.startRequest(
            method: request.method.rawValue, path: request.uri.path, traceparent: request.headers[.traceparent],
            tracestate: request.headers[.tracestate], at: started
        )
        do {
            return try await RequestTrace.$current.withValue(trace) {
                caller = try await self.identifyLookingUp(request)
                return try await work(requestID, started, caller)
            }
        } catch {
            let admitted = error as? AdmittedFailure
            let underlying = admitted?.error ?? error
            let refusal = underlying as? PolicyRefusal
            let gatewayError = refusal?.error ?? underlying as? GatewayError ?? .internalFailure("\(type(of: underlying))")
            self.finish(
                failed: gatewayError, requestID: requestID, operation: Self.operation(of: request.uri.path),
                caller: caller, admission: admitted?.admission, started: started, logger: context.logger, trace: trace
            )
            var response = switch dialect {
            case .openAI: gatewayError.openAIResponse(requestID: requestID, overhead: ContinuousClock.now - started)
            case .anthropic: gatewayError.anthropicResponse(requestID: requestID, overhead: ContinuousClock.now - started)
            }
            response.headers.setRateLimitHeaders(refusal?.report)
            return response
        }
    }

    /// The GenAI operation an endpoint serves, for requests that fail before an exchange names it.
    static func operation(of path: String) -> String {
        if path.hasSuffix("embeddings") { return "embeddings" }
        return path.contains("/responses") ? "responses" : "chat"
    }

    /// Logs and accounts a request that failed without an upstream answer to pass on.
    /// - Parameter admission: when the request was admitted, its reservation is given back.
    func finish(
        failed error: GatewayError, requestID: String, operation: String, caller: Caller, admission: Admission? = nil, started: ContinuousClock.Instant,
        logger: Logger, trace: RequestTrace?
    ) {
        error.log(requestID: requestID, logger: logger)
        var summary = RequestSummary(
            requestID: requestID, operation: operation, route: nil, target: nil, status: error.httpStatus, failure: error.domain,
            message: error.message, latency: ContinuousClock.now - started
        )
        summary.caller = caller
        summary.admission = admission
        summary.errorType = error.metricLabel
        summary.trace = trace
        self.finish(summary)
    }

    /// The whole request body, refused with 413 past `server.max_body`, and with 400 when its framing
    /// is broken (a bad chunk): the caller's mistake, which ends the connection (`FrameworkWatch`).
    func body(of request: Request) async throws -> ByteBuffer {
        do {
            return try await request.body.collect(upTo: self.server.maxBodyBytes)
        } catch is NIOTooManyBytesError {
            throw GatewayError.bodyTooLarge(limit: self.server.maxBodyBytes)
        } catch is HTTPParserError {
            throw GatewayError.invalidRequest("The request body is not valid HTTP/1.1 framing (a malformed chunk or length); the connection is closed.")
        }
    }

    /// Executes `plan` with `routing`'s upstreams, cancelled if the client hangs up meanwhile.
    /// Every attempt gets the client's W3C `traceparent`, or its own span's when the request is traced.
    func forward(
        _ plan: FailoverPlan,
        in routing: RoutingSnapshot,
        request: Request,
        requestID: String,
        context: GatewayRequestContext,
        build: @escaping @Sendable (PlannedTarget, UpstreamPool.Upstream) async throws -> UpstreamRequest
    ) async throws -> AttemptOutcome {
        let logger = context.logger
        let traceparent = request.headers[.traceparent].flatMap { TraceContext.isValidTraceparent($0) ? $0 : nil }
        return try await self.disconnects.cancellingOnHangUp(connection: context.connection) {
            try await self.execute(plan, upstreams: routing.upstreams, requestID: requestID, logger: logger, trace: RequestTrace.current) { target, upstream in
                var upstreamRequest = try await build(target, upstream)
                upstreamRequest.traceparent = traceparent
                upstreamRequest.eventLoop = context.eventLoop
                return upstreamRequest
            }
        }
    }
}

extension RoutingSnapshot {
    /// What routing looks at in a request; the body's content only when a rule or strategy needs it.
    func features(model: String, streaming: Bool, maxTokens: Int?, body: ByteBuffer, of request: Request) -> RequestFeatures {
        self.features(model: model, streaming: streaming, maxTokens: maxTokens, body: body) { request.headers[$0] }
    }

    /// - Parameter header: the request's field of that name, for rules that match on headers.
    func features(
        model: String, streaming: Bool, maxTokens: Int?, body: ByteBuffer, header: @escaping (HTTPField.Name) -> String?
    ) -> RequestFeatures {
        var features = RequestFeatures(model: model, streaming: streaming)
        // A token per four bytes of body: enough to reserve limits with, and free.
        features.promptTokens = (body.readableBytes + 3) / 4
        features.maxTokens = maxTokens
        guard !self.routes.rules.isEmpty || self.routes.needsContentFeatures else { return features }
        features.header = { name in HTTPField.Name(name).flatMap(header) }
        if self.routes.needsContentFeatures { features.inspect(body: body) }
        return features
    }
}

extension GatewayError {
    /// Caller mistakes are routine (debug); provider trouble is a warning; our own failures are errors.
    func log(requestID: String, logger: Logger) {
        let level: Logger.Level = self.domain == .caller ? .debug : (self.domain == .gateway ? .error : .warning)
        logger.log(
            level: level,
            "request failed",
            metadata: ["gw.request_id": "\(requestID)", "gw.error": "\(self.metricLabel)", "gw.domain": "\(self.domain.rawValue)", "gw.detail": "\(self.message)"]
        )
    }
}
