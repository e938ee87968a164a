import Engine
import HTTPTypes
import Hummingbird
import NIOCore

extension GatewayError {
    /// The error as an OpenAI-dialect HTTP response, with the headers every response carries.
    func openAIResponse(requestID: String, overhead: Duration) -> Response {
        self.openAIWholeResponse(requestID: requestID, overhead: overhead).response
    }

    func openAIWholeResponse(requestID: String, overhead: Duration) -> WholeResponse {
        var headers: HTTPFields = [.contentType: "application/json"]
        headers.setGatewayHeaders(requestID: requestID, overhead: overhead)
        if let seconds = self.retryAfterSeconds { headers[.retryAfter] = String(seconds) }
        return WholeResponse(status: HTTPResponse.Status(code: self.httpStatus), headers: headers, body: ByteBuffer(string: self.openAIBody()))
    }

    /// The error as an Anthropic-dialect HTTP response (its envelope, its status conventions).
    func anthropicResponse(requestID: String, overhead: Duration) -> Response {
        self.anthropicWholeResponse(requestID: requestID, overhead: overhead).response
    }

    func anthropicWholeResponse(requestID: String, overhead: Duration) -> WholeResponse {
        var headers: HTTPFields = [.contentType: "application/json"]
        headers.setGatewayHeaders(requestID: requestID, overhead: overhead)
        headers[.anthropicRequestID] = requestID
        if let seconds = self.retryAfterSeconds { headers[.retryAfter] = String(seconds) }
        return WholeResponse(status: HTTPResponse.Status(code: self.httpStatus), headers: headers, body: ByteBuffer(string: self.anthropicBody(requestID: requestID)))
    }

    /// The error as the last event of an OpenAI stream: a `data:` line with an `error` object, which the
    /// official SDKs raise as an exception. No `[DONE]` follows, so no client takes it for a clean end.
    var openAIStreamEvent: ByteBuffer {
        ByteBuffer(string: "data: \(self.openAIBody())\n\n")
    }
}

extension HTTPField.Name {
    static let requestID = HTTPField.Name("x-request-id")!
    static let overhead = HTTPField.Name("x-switchyard-overhead-us")!
    static let switchyardProvider = HTTPField.Name("x-switchyard-provider")!
    static let retryAfterMillis = HTTPField.Name("retry-after-ms")!
    static let anthropicRequestID = HTTPField.Name("request-id")!
    static let traceparent = HTTPField.Name("traceparent")!
    static let tracestate = HTTPField.Name("tracestate")!
    /// Request fields left out because the upstream's dialect has no equivalent.
    static let droppedFields = HTTPField.Name("x-switchyard-dropped")!
    /// Upstream attempts this request took (retries, failover and hedges included).
    static let attempts = HTTPField.Name("x-switchyard-attempts")!
    /// The answer's cost in USD at the target's price (non-streamed answers).
    static let cost = HTTPField.Name("x-switchyard-cost-usd")!
    /// Present when a hedged second attempt was sent.
    static let hedged = HTTPField.Name("x-switchyard-hedged")!
    /// Says that a token count is the gateway's estimate, not the provider's tokenizer.
    static let tokenEstimate = HTTPField.Name("x-switchyard-estimate")!
}
