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

/// A response whose body is known in full: what the fast lane writes to its connection itself, and
/// what a handler hands to Hummingbird as a `Response`.
struct WholeResponse {
    var status: HTTPResponse.Status
    var headers: HTTPFields
    var body: ByteBuffer

    var response: Response {
        Response(status: self.status, headers: self.headers, body: ResponseBody(byteBuffer: self.body))
    }
}

extension HTTPField.Name {
    static let requestID = HTTPField.Name("x-request-id")!
    static let overhead = HTTPField.Name("x-switchyard-overhead-us")!
    static let switchyardProvider = HTTPField.Name("x-switchyard-provider")!
    static let retryAfterMillis = HTTPField.Name("retry-after-ms")!
    static let anthropicRequestID = HTTPField.Name("request-id")!
    static let traceparent = HTTPField.Name("traceparent")!
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

/// Where an answer's fields are set: `HTTPFields` for Hummingbird's answers, `WireResponse.Head` (the
/// head's bytes, written as the fields come) for the fast lane's. The code that decides an answer's
/// fields is written once, for both.
protocol ResponseFields {
    /// Sets a field that was not set before.
    mutating func set(_ name: HTTPField.Name, _ value: String)
}

extension HTTPFields: ResponseFields {
    mutating func set(_ name: HTTPField.Name, _ value: String) {
        self[name] = value
    }
}

extension ResponseFields {
    mutating func setGatewayHeaders(requestID: String, overhead: Duration) {
        self.set(.requestID, requestID)
        self.set(.overhead, String(Swift.max(0, overhead.microseconds)))
    }

    /// `x-switchyard-cost-usd` with eight decimals, its digits written into a stack buffer
    /// (`String(format:)` is slow on Linux, and interpolating the parts built four strings); the text
    /// of a cost under $100,000 fits a small string, with no allocation. A cost past $10^10 (a price
    /// table's mistake, as token counts are bounded) is written as that ceiling rather than trapping.
    mutating func setCost(_ usd: Double) {
        let dollars = usd > 0 ? Swift.min(usd, 10_000_000_000) : 0
        var units = UInt64((dollars * 100_000_000).rounded())
        let text = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { buffer in
            // Digits from the last: eight decimals, the point, then the whole dollars (at least one).
            var start = buffer.count
            var written = 0
            while written < 10 || units > 0 {
                start -= 1
                if written == 8 {
                    buffer[start] = UInt8(ascii: ".")
                } else {
                    buffer[start] = UInt8(ascii: "0") + UInt8(units % 10)
                    units /= 10
                }
                written += 1
            }
            return String(decoding: UnsafeBufferPointer(rebasing: buffer[start...]), as: UTF8.self)
        }
        self.set(.cost, text)
    }

    /// Which provider answered, after how many attempts, and whether a hedge raced it.
    mutating func setRoutingHeaders(_ outcome: AttemptOutcome) {
        self.set(.switchyardProvider, outcome.target.provider)
        self.set(.attempts, String(outcome.attempts))
        if outcome.hedged { self.set(.hedged, "true") }
    }
}

extension Duration {
    var microseconds: Int64 {
        let (seconds, attoseconds) = self.components
        return seconds * 1_000_000 + attoseconds / 1_000_000_000_000
    }
}
