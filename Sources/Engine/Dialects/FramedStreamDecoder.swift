import NIOCore

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

/// A stream decoder whose bytes are SSE events, framed by an `SSEFramer`.
protocol SSEStreamDecoder: FramedStreamDecoder where Payload == String {
    var provider: String { get }
    var framer: SSEFramer { get set }
}

extension SSEStreamDecoder {
    /// `feed`: the events of the whole SSE events in `chunk`.
    mutating func feedEvents(_ chunk: ByteBuffer) -> [StreamEvent] {
        guard !self.finished else { return [] }
        let framed = self.framer.feed(chunk)
        return self.events(of: framed.payloads, failure: framed.failure)
    }

    /// `finish` for a dialect with an end marker: what the framer still holds is decoded, and a stream
    /// that has not ended by then was cut before `marker`.
    mutating func finishEvents(endedBy marker: String) -> [StreamEvent] {
        guard !self.finished else { return [] }
        var events: [StreamEvent] = []
        for data in self.framer.finish() where !self.finished { events += self.decode(data) }
        guard !self.finished else { return events }
        self.finished = true
        return events + [.failure(.streamInterrupted(provider: self.provider, detail: "the upstream closed the stream before \(marker)"))]
    }
}
