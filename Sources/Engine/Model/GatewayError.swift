/// Who is at fault when a request fails. Kept apart from retryability on purpose:
/// the domain says whom to blame (and which dashboard row turns red), `isRetryable` says what to do next.
public enum FaultDomain: String, Sendable, CaseIterable {
    /// The client sent something we cannot serve (bad JSON, unknown model, body too large).
    case caller
    /// A limit or rule of ours refused the request (rate limit, budget, model not allowed).
    case policy
    /// The upstream failed: unreachable, timed out, answered with an error or garbage.
    case provider
    /// Our own fault: a bug or a missing configuration.
    case gateway
}

/// The one error type of the gateway.
///
/// Shaped like AsyncHTTPClient's `HTTPClientError`: a private code plus static constructors, so new
/// cases do not break callers, and `metricLabel` never carries associated values (it is a bounded set).
/// It renders itself in the client's dialect (`openAIBody()`, `anthropicBody()`), and it never logs.
public struct GatewayError: Error, Sendable, Equatable, CustomStringConvertible {
    enum Code: String, Sendable {
        case malformedRequest = "malformed_request"
        case invalidRequest = "invalid_request"
        case bodyTooLarge = "body_too_large"
        case unknownModel = "unknown_model"
        case routeNotFound = "route_not_found"
        /// A Responses request continues a response this caller has no kept copy of.
        case previousResponseNotFound = "previous_response_not_found"
        case responseNotFound = "response_not_found"
        case methodNotAllowed = "method_not_allowed"
        case clientDisconnected = "client_disconnected"
        case requestTimeout = "request_timeout"
        case tooManyConnections = "too_many_connections"
        case upstreamUnreachable = "upstream_unreachable"
        case upstreamTimeout = "upstream_timeout"
        case upstreamStatus = "upstream_status"
        case upstreamMalformed = "upstream_malformed"
        case upstreamCredentials = "upstream_credentials"
        case streamInterrupted = "stream_interrupted"
        case noHealthyTarget = "no_healthy_target"
        case unauthorized = "invalid_api_key"
        case modelNotAllowed = "model_not_allowed"
        case rateLimited = "rate_limited"
        case budgetExceeded = "budget_exceeded"
        case stateUnavailable = "state_unavailable"
        case internalFailure = "internal"
    }

    let code: Code
    /// The status a budget refusal answers with (429, or 402 by `server.budget_status`).
    var budgetStatus = 429
    /// Human-readable, safe to show to the client: never contains secrets.
    public let message: String
    /// The request field at fault, when there is one (OpenAI's `param`).
    public let param: String?
    /// The status the upstream answered with, for `upstreamStatus` errors.
    public let upstreamStatus: Int?
    /// How long the client should wait before retrying, when known.
    public let retryAfterSeconds: Int?

    init(_ code: Code, _ message: String, param: String? = nil, upstreamStatus: Int? = nil, retryAfterSeconds: Int? = nil) {
        self.code = code
        self.message = message
        self.param = param
        self.upstreamStatus = upstreamStatus
        self.retryAfterSeconds = retryAfterSeconds
    }

    public var description: String { "\(self.metricLabel): \(self.message)" }

    // MARK: Constructors

    public static func malformedRequest(_ detail: String) -> GatewayError {
        GatewayError(.malformedRequest, "We could not parse the JSON body of your request: \(detail).")
    }

    public static func invalidRequest(_ message: String, param: String? = nil) -> GatewayError {
        GatewayError(.invalidRequest, message, param: param)
    }

    public static func bodyTooLarge(limit: Int) -> GatewayError {
        GatewayError(.bodyTooLarge, "The request body exceeds the gateway's limit of \(ByteSize.format(limit)) (server.max_body).")
    }

    public static func unknownModel(_ model: String, known: [String]) -> GatewayError {
        let list = known.isEmpty ? "none are configured" : known.joined(separator: ", ")
        return GatewayError(
            .unknownModel,
            "The model '\(model)' does not exist on this gateway. Known models: \(list).",
            param: "model"
        )
    }

    /// OpenAI's answer to an unknown `previous_response_id` (as its users report it): a 400 naming the id.
    public static func previousResponseNotFound(_ id: String) -> GatewayError {
        GatewayError(
            .previousResponseNotFound,
            "Previous response with id '\(id.prefix(100))' not found. It was never kept (store: false), was deleted, is past its retention, or belongs to another tenant.",
            param: "previous_response_id"
        )
    }

    /// A follow-up to a response that an upstream keeps, on a route that no longer reaches it.
    public static func previousResponseElsewhere(_ id: String, provider: String, route: String) -> GatewayError {
        GatewayError(
            .previousResponseNotFound,
            "Previous response with id '\(id.prefix(100))' is kept by provider '\(provider)', which '\(route)' does not route to; continue it with a model routed there, or send the conversation's items with store: false.",
            param: "previous_response_id"
        )
    }

    /// A response kept by an upstream the configuration no longer has.
    public static func responseHolderGone(_ id: String, provider: String) -> GatewayError {
        GatewayError(.responseNotFound, "Response with id '\(id.prefix(100))' was kept by provider '\(provider)', which this gateway no longer has.")
    }

    public static func responseNotFound(_ id: String) -> GatewayError {
        GatewayError(.responseNotFound, "Response with id '\(id.prefix(100))' not found.")
    }

    public static func routeNotFound(method: String, path: String) -> GatewayError {
        GatewayError(.routeNotFound, "Unknown endpoint: \(method) \(path).")
    }

    public static func methodNotAllowed(method: String, path: String) -> GatewayError {
        GatewayError(.methodNotAllowed, "\(method) is not allowed on \(path).")
    }

    /// The client hung up before the answer was ready; nobody reads this error, but logs and metrics do.
    public static let clientDisconnected = GatewayError(.clientDisconnected, "The client closed the connection before the response was ready.")

    /// The client took longer than `server.header_timeout` to send a request head, or sent its body
    /// slower than `server.body_min_rate`.
    public static func requestTimeout(_ what: String) -> GatewayError {
        GatewayError(.requestTimeout, "The request was not received in time: \(what). The connection is closed.")
    }

    /// The public listener holds `server.max_connections` client connections already.
    public static let tooManyConnections = GatewayError(
        .tooManyConnections, "The gateway has too many open connections; try again shortly (server.max_connections).", retryAfterSeconds: 1
    )

    public static func upstreamUnreachable(provider: String, detail: String) -> GatewayError {
        GatewayError(.upstreamUnreachable, "Provider '\(provider)' could not be reached: \(detail).")
    }

    public static func upstreamTimeout(provider: String, phase: String, limit: String) -> GatewayError {
        GatewayError(
            .upstreamTimeout,
            "Provider '\(provider)' did not answer in time (\(phase) timeout of \(limit); raise providers.\(provider).timeouts.\(phase) if this is expected)."
        )
    }

    /// `provider`'s `phase` timeout fired.
    public static func upstreamTimeout(_ provider: ProviderSettings, _ phase: TimeoutPhase) -> GatewayError {
        .upstreamTimeout(provider: provider.id, phase: phase.rawValue, limit: DurationText.format(provider.timeouts[phase]))
    }

    public static func upstreamStatus(provider: String, status: Int, retryAfterSeconds: Int? = nil) -> GatewayError {
        GatewayError(
            .upstreamStatus,
            "Provider '\(provider)' answered with HTTP \(status).",
            upstreamStatus: status,
            retryAfterSeconds: retryAfterSeconds
        )
    }

    /// An error the upstream itself described (an error event mid-stream, an error body), in its words.
    public static func upstreamReported(provider: String, status: Int, message: String, retryAfterSeconds: Int? = nil) -> GatewayError {
        GatewayError(.upstreamStatus, "Provider '\(provider)' reported an error: \(message)", upstreamStatus: status, retryAfterSeconds: retryAfterSeconds)
    }

    /// The provider refused the gateway's own key: a configuration fault, never the client's, so the
    /// client must not get the 401 (its SDK would report *its* key as wrong).
    public static func upstreamCredentials(provider: String, status: Int) -> GatewayError {
        GatewayError(
            .upstreamCredentials,
            "Provider '\(provider)' refused the gateway's credentials (HTTP \(status)); check providers.\(provider).api_key.",
            upstreamStatus: status
        )
    }

    public static func upstreamMalformed(provider: String, detail: String) -> GatewayError {
        GatewayError(.upstreamMalformed, "Provider '\(provider)' sent a response we could not parse: \(detail).")
    }

    public static func streamInterrupted(provider: String, detail: String) -> GatewayError {
        GatewayError(.streamInterrupted, "The stream from provider '\(provider)' ended before completion: \(detail).")
    }

    /// Every target of the route (and its fallbacks) is drained, resting or behind an open breaker.
    public static func noHealthyTarget(route: String, retryAfterSeconds: Int? = nil) -> GatewayError {
        let when = retryAfterSeconds.map { " The first should be back in about \($0) s." } ?? ""
        return GatewayError(
            .noHealthyTarget,
            "No provider target of model '\(route)' can serve requests right now.\(when)",
            retryAfterSeconds: retryAfterSeconds
        )
    }

    /// No valid key (missing, unknown, revoked or expired), where one is required.
    public static func unauthorized(_ detail: String) -> GatewayError {
        GatewayError(.unauthorized, detail)
    }

    public static func modelNotAllowed(_ model: String, holder: String) -> GatewayError {
        GatewayError(.modelNotAllowed, "The model '\(model)' is not allowed for \(holder).", param: "model")
    }

    public static func rateLimited(_ message: String, retryAfterSeconds: Int?) -> GatewayError {
        GatewayError(.rateLimited, message, retryAfterSeconds: retryAfterSeconds)
    }

    public static func budgetExceeded(_ message: String, status: Int) -> GatewayError {
        var error = GatewayError(.budgetExceeded, message)
        error.budgetStatus = status
        return error
    }

    /// The fleet's shared state (Redis) did not answer admission in time, and `on_state_error` is `deny`.
    public static func stateUnavailable(_ message: String) -> GatewayError {
        GatewayError(.stateUnavailable, message, retryAfterSeconds: 1)
    }

    public static func internalFailure(_ detail: String) -> GatewayError {
        GatewayError(.internalFailure, "The gateway failed internally: \(detail).")
    }

    // MARK: Classification (the one place that maps a case to status, domain and retryability)

    public var domain: FaultDomain {
        switch self.code {
        case .malformedRequest, .invalidRequest, .bodyTooLarge, .unknownModel, .routeNotFound, .methodNotAllowed, .clientDisconnected, .requestTimeout,
            .previousResponseNotFound, .responseNotFound:
            return .caller
        case .upstreamUnreachable, .upstreamTimeout, .upstreamStatus, .upstreamMalformed, .streamInterrupted, .noHealthyTarget:
            return .provider
        case .internalFailure, .upstreamCredentials, .stateUnavailable:
            return .gateway
        case .unauthorized:
            return .caller
        case .modelNotAllowed, .rateLimited, .budgetExceeded, .tooManyConnections:
            return .policy
        }
    }

    public var httpStatus: Int {
        switch self.code {
        case .malformedRequest, .invalidRequest, .previousResponseNotFound: return 400
        case .responseNotFound: return 404
        case .bodyTooLarge: return 413
        case .requestTimeout: return 408
        case .tooManyConnections: return 503
        case .unknownModel, .routeNotFound: return 404
        case .methodNotAllowed: return 405
        // nginx's "client closed request": never sent, since nobody is there to read it.
        case .clientDisconnected: return 499
        case .upstreamUnreachable, .upstreamMalformed, .streamInterrupted, .upstreamCredentials: return 502
        case .upstreamTimeout: return 504
        case .noHealthyTarget, .stateUnavailable: return 503
        case .upstreamStatus:
            // Caller errors the upstream found (400, 404, 422…) are the caller's to fix; pass them on.
            // Upstream server errors become 502 so clients can tell "the provider broke" from "we broke".
            guard let status = self.upstreamStatus else { return 502 }
            if status == 429 || (400..<500).contains(status) { return status }
            return status == 503 || status == 529 ? 503 : 502
        case .internalFailure: return 500
        case .unauthorized: return 401
        case .modelNotAllowed: return 403
        case .rateLimited: return 429
        case .budgetExceeded: return self.budgetStatus
        }
    }

    /// Whether trying again (here or on another target) may succeed.
    public var isRetryable: Bool {
        switch self.code {
        case .upstreamUnreachable, .upstreamTimeout, .streamInterrupted, .noHealthyTarget, .stateUnavailable: return true
        case .upstreamStatus:
            guard let status = self.upstreamStatus else { return false }
            return status == 408 || status == 409 || status == 429 || status >= 500
        default: return false
        }
    }

    /// A bounded label for metrics and logs: no associated values.
    public var metricLabel: String { self.code.rawValue }

    // MARK: Rendering

    /// OpenAI's error `type` vocabulary, which the official SDKs map to exception classes by status.
    var openAIType: String {
        switch self.code {
        case .malformedRequest, .invalidRequest, .bodyTooLarge, .unknownModel, .routeNotFound, .methodNotAllowed, .clientDisconnected, .requestTimeout,
            .previousResponseNotFound, .responseNotFound:
            return "invalid_request_error"
        case .upstreamStatus where self.upstreamStatus == 429, .rateLimited:
            return "rate_limit_error"
        case .unauthorized:
            return "invalid_request_error"
        case .budgetExceeded:
            return "insufficient_quota"
        case .modelNotAllowed:
            return "permission_error"
        case .internalFailure, .tooManyConnections, .stateUnavailable:
            return "server_error"
        default:
            return "upstream_error"
        }
    }

    /// Anthropic's error `type` vocabulary, by status as its SDK expects.
    var anthropicType: String {
        switch self.httpStatus {
        case 400, 405: return "invalid_request_error"
        case 401: return "authentication_error"
        case 402: return "billing_error"
        case 403: return "permission_error"
        case 404: return "not_found_error"
        case 413: return "request_too_large"
        case 429: return "rate_limit_error"
        case 503, 529: return "overloaded_error"
        case 504: return "timeout_error"
        default: return "api_error"
        }
    }

    /// `{"error":{"message","type","param","code"}}`, the envelope the OpenAI SDKs parse.
    public func openAIBody() -> String {
        ErrorEnvelope.openAI(message: self.message, type: self.openAIType, param: self.param, code: self.metricLabel)
    }

    /// `{"type":"error","error":{"type","message"},"request_id"}`, the envelope the Anthropic SDKs parse.
    public func anthropicBody(requestID: String?) -> String {
        ErrorEnvelope.anthropic(type: self.anthropicType, message: self.message, requestID: requestID)
    }
}

/// The error bodies of each dialect, written in one place for the gateway and the simulator alike.
public enum ErrorEnvelope {
    public static func openAI(message: String, type: String, param: String?, code: String?) -> String {
        var json = JSONWriter()
        json.openObject()
        json.key("error")
        json.openObject()
        json.field("message", message)
        json.field("type", type)
        json.field("param", param)
        json.field("code", code)
        json.closeObject()
        json.closeObject()
        return json.output
    }

    /// With `requestID` nil the `request_id` member is left out, as in Anthropic's stream `error` events.
    public static func anthropic(type: String, message: String, requestID: String?) -> String {
        var json = JSONWriter()
        json.openObject()
        json.field("type", "error")
        json.key("error")
        json.openObject()
        json.field("type", type)
        json.field("message", message)
        json.closeObject()
        if let requestID { json.field("request_id", requestID) }
        json.closeObject()
        return json.output
    }
}
