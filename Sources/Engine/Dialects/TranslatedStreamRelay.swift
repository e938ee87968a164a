import NIOCore

/// A stream translated on its way: the upstream's dialect decoded into canonical events, the client's
/// encoded from them, with what the stream used and how it ended read on the way (and its answer
/// recorded for the cache when asked). The step both lanes take for each upstream chunk.
public struct TranslatedStreamRelay {
    private var decoder: any StreamDecoder
    private var encoder: any StreamEncoder
    public private(set) var usage: Usage?
    /// Set once the upstream reported a failure, or ours was fed in.
    public private(set) var failure: GatewayError?
    private var recording: StreamRecording?

    /// - Parameter records: keep the answer, for the cache.
    public init(decoder: any StreamDecoder, encoder: any StreamEncoder, records: Bool) {
        self.decoder = decoder
        self.encoder = encoder
        self.recording = records ? StreamRecording() : nil
    }

    /// True once the client's stream has its last event.
    public var isFinished: Bool { self.encoder.isFinished }

    /// The client's text for an upstream chunk.
    public mutating func feed(_ chunk: ByteBuffer) -> String {
        self.emit(self.decoder.feed(chunk))
    }

    /// The upstream's stream ended: its last events (a cut one reports its failure).
    public mutating func finish() -> String {
        self.emit(self.decoder.finish())
    }

    /// Ends the client's stream with our failure (a timeout, a broken connection).
    public mutating func fail(_ error: GatewayError) -> String {
        self.emit([.failure(error)])
    }

    /// The whole answer, for the cache, once the stream ended well.
    public var recordedAnswer: ChatResponse? {
        self.failure == nil ? self.recording?.response : nil
    }

    private mutating func emit(_ events: [StreamEvent]) -> String {
        self.recording?.record(events)
        for event in events {
            switch event {
            case .failure(let error): self.failure = error
            case .usage(let reported): self.usage = reported
            default: continue
            }
        }
        return self.encoder.encode(events)
    }
}
