public import NIOCore

/// Relays a Responses API stream from an upstream that serves the API to a Responses client, event
/// for event: the bytes pass unchanged, in whole events only, and each is read on the way by the
/// decoder the translated path uses (the response's id, its usage, how it ended, the answer when it
/// is recorded). The upstream's own `error` and `response.failed` events reach the client as they
/// came; a stream that ends without a terminal event was cut, and gets our `error` event after the
/// upstream's last sequence number, never a clean end.
///
/// One per request; a value type fed by one task.
public struct ResponsesStreamRelay {
    private var framer: StreamEventFramer
    private var decoder: ResponsesStreamDecoder
    private var recording: StreamRecording?
    public private(set) var usage: Usage?
    public private(set) var stopReason: StopReason?
    /// The upstream's id for the response, from `response.created`.
    public private(set) var responseID: String?
    /// Set once the upstream reported a failure, or ours ended the stream.
    public private(set) var failure: GatewayError?
    /// True once the upstream's body ended or our failure was written: nothing more goes out.
    public private(set) var isFinished = false

    /// - Parameter records: keep the answer (for the cache, a trace, a kept response).
    public init(provider: String, records: Bool, maxEventBytes: Int = EventBoundaryScanner.defaultMaxEventBytes) {
        self.framer = StreamEventFramer(.blankLine, provider: provider, maxEventBytes: maxEventBytes)
        self.decoder = ResponsesStreamDecoder(provider: provider)
        self.recording = records ? StreamRecording() : nil
    }

    /// Whether the answer is whole: its `response.completed` (or `.incomplete`) has been read.
    public var isComplete: Bool { self.stopReason != nil && self.failure == nil }

    /// The whole answer, once the stream ended well.
    public var recordedAnswer: ChatResponse? { self.failure == nil ? self.recording?.response : nil }

    /// The bytes to forward for an upstream chunk: the whole events it completes.
    public mutating func feed(_ chunk: ByteBuffer) -> ByteBuffer {
        guard !self.isFinished else { return ByteBuffer() }
        let framed = self.framer.feed(chunk)
        var forward = ByteBuffer()
        for event in framed.events {
            self.read(self.decoder.feed(event.bytes))
            var bytes = event.bytes
            forward.writeBuffer(&bytes)
        }
        if let failure = framed.failure { forward.writeString(self.end(with: failure)) }
        return forward
    }

    /// The upstream's body ended: its last event (one without its blank line still counts), and our
    /// `error` event when the stream was cut before its terminal event.
    public mutating func finish() -> ByteBuffer {
        guard !self.isFinished else { return ByteBuffer() }
        var forward = ByteBuffer()
        if var last = self.framer.finish() {
            self.read(self.decoder.feed(last))
            forward.writeBuffer(&last)
            forward.writeString("\n\n")
        }
        let ending = self.decoder.finish()
        self.read(ending)
        // Only a cut stream fails here (the decoder has already ended one the upstream failed).
        if case .failure(let error) = ending.last { forward.writeString(self.end(with: error)) }
        self.isFinished = true
        return forward
    }

    /// Ends the client's stream with our failure (a timeout, a broken connection).
    public mutating func fail(_ error: GatewayError) -> ByteBuffer {
        guard !self.isFinished else { return ByteBuffer() }
        self.read([.failure(error)])
        return ByteBuffer(string: self.end(with: error))
    }

    private mutating func end(with error: GatewayError) -> String {
        self.failure = self.failure ?? error
        self.isFinished = true
        return ResponsesStreamEncoder.errorEvent(error, sequence: self.decoder.lastSequence + 1)
    }

    private mutating func read(_ events: [StreamEvent]) {
        self.recording?.record(events)
        for event in events {
            switch event {
            case .start(let id, _): if !id.isEmpty { self.responseID = id }
            case .stop(let reason): self.stopReason = reason
            case .usage(let reported): self.usage = reported
            case .failure(let error): self.failure = self.failure ?? error
            default: continue
            }
        }
    }
}
