import Engine
import HTTPTypes
import NIOCore

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
