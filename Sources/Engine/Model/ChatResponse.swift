public import NIOCore

/// A complete (non-streamed) answer in canonical terms.
public struct ChatResponse: Sendable, Equatable {
    public var id: String
    public var model: String
    /// Text and tool-use parts, in the order the model produced them.
    public var content: [ContentPart]
    public var stopReason: StopReason
    public var usage: Usage

    public init(id: String, model: String, content: [ContentPart], stopReason: StopReason, usage: Usage) {
        self.id = id
        self.model = model
        self.content = content
        self.stopReason = stopReason
        self.usage = usage
    }
}

/// One step of a streamed answer in canonical terms: what every stream decoder emits and every
/// stream encoder consumes, so N dialects need N decoders and N encoders, not N×N translators.
public enum StreamEvent: Sendable, Equatable {
    case start(id: String, model: String)
    case textDelta(String)
    /// A tool call begins; `index` identifies it for the argument fragments that follow.
    case toolCallStart(index: Int, id: String, name: String)
    case toolCallArguments(index: Int, fragment: String)
    case stop(StopReason)
    case usage(Usage)
    /// The upstream finished the stream properly.
    case end
    /// The stream failed after it started; nothing follows.
    case failure(GatewayError)
}

/// Turns one dialect's stream bytes into canonical events. One per request, fed as bytes arrive.
public protocol StreamDecoder {
    mutating func feed(_ chunk: ByteBuffer) -> [StreamEvent]
    /// The upstream body ended; reports a cut stream as `.failure`.
    mutating func finish() -> [StreamEvent]
}

/// Writes canonical events as one dialect's stream text.
public protocol StreamEncoder {
    mutating func encode(_ events: [StreamEvent]) -> String
    /// True once the stream's last event (its end, or an error) has been written.
    var isFinished: Bool { get }
}
