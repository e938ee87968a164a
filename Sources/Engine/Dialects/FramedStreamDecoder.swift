/// A stream decoder fed framed payloads (SSE events' data, NDJSON lines): one rule, for every
/// dialect, for what a read becomes. Payloads are decoded in order until one finishes the stream; a
/// framing failure (an event over the cap) ends it after them.
protocol FramedStreamDecoder: StreamDecoder {
    associatedtype Payload
    /// Set once the stream ended (its end marker, an error, a failure): nothing more is decoded.
    var finished: Bool { get set }
    mutating func decode(_ payload: Payload) -> [StreamEvent]
}

extension FramedStreamDecoder {
    mutating func events(of payloads: [Payload], failure: GatewayError?) -> [StreamEvent] {
        var events: [StreamEvent] = []
        for payload in payloads where !self.finished { events += self.decode(payload) }
        if let failure, !self.finished {
            self.finished = true
            events.append(.failure(failure))
        }
        return events
    }
}
