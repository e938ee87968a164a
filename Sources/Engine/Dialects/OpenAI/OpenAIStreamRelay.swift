public import NIOCore

/// Relays an OpenAI-dialect SSE stream from an OpenAI-compatible upstream to an OpenAI client.
///
/// Bytes pass through unchanged, but only in whole events: each event's JSON is validated on the way
/// (a client SDK must never receive a half or garbled event), usage is read from whichever chunk
/// carries it, and the trailing usage chunk we asked for is stripped when the client did not ask.
/// A stream that ends without `[DONE]` was cut: `finish()` then reports it instead of ending cleanly.
///
/// One per request; not thread-safe (a value type fed by one task).
public struct OpenAIStreamRelay {
    /// What the caller should do after feeding bytes.
    public enum Step {
        /// Forward these bytes (possibly empty) and keep reading.
        case forward(ByteBuffer)
        /// Forward these bytes, then end the stream with `error` rendered as an event.
        case fail(forward: ByteBuffer, error: GatewayError)
    }

    public private(set) var usage: Usage?
    public private(set) var finishReason: String?
    public private(set) var sawDone = false
    /// An `error` event from the upstream itself, forwarded as-is and recorded here.
    public private(set) var upstreamErrorMessage: String?

    private let provider: String
    private let forwardUsageChunk: Bool
    /// The unfinished event, alone in its buffer.
    private var pending: ByteBuffer?
    private var events: EventBoundaryScanner
    private var failed = false

    public init(provider: String, forwardUsageChunk: Bool, maxEventBytes: Int = EventBoundaryScanner.defaultMaxEventBytes) {
        self.provider = provider
        self.forwardUsageChunk = forwardUsageChunk
        self.events = EventBoundaryScanner(.blankLine, provider: provider, maxEventBytes: maxEventBytes)
    }

    /// Bytes looked at for event ends so far: each once, however the stream is split.
    var bytesExamined: Int { self.events.bytesExamined }

    public mutating func feed(_ chunk: ByteBuffer) -> Step {
        guard !self.failed else { return .forward(ByteBuffer()) }
        let buffer = StreamEventFramer.appending(chunk, to: &self.pending)

        var output: ByteBuffer?
        var forwardStart = 0
        var cursor = 0
        let readable = buffer.readableBytes
        var events = self.events
        let result: GatewayError? = buffer.withUnsafeReadableBytes { bytes -> GatewayError? in
            do throws(GatewayError) {
                while let eventEnd = try events.nextBoundary(in: bytes, eventStart: cursor) {
                    let event = cursor..<eventEnd.contentEnd
                    switch self.inspect(event: UnsafeRawBufferPointer(rebasing: bytes[event])) {
                    case .keep:
                        break
                    case .drop:
                        // Flush what came before this event, then skip it.
                        var kept = output ?? ByteBufferAllocator().buffer(capacity: readable)
                        kept.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[forwardStart..<cursor]))
                        output = kept
                        forwardStart = eventEnd.next
                    case .fail(let error):
                        return error
                    }
                    cursor = eventEnd.next
                }
            } catch {
                return error
            }
            return nil
        }
        self.events = events

        var forward: ByteBuffer
        if var out = output {
            out.writeBytes(buffer.readableBytesView[buffer.readerIndex + forwardStart..<buffer.readerIndex + cursor])
            forward = out
        } else {
            forward = buffer.getSlice(at: buffer.readerIndex, length: cursor) ?? ByteBuffer()
        }
        if let result {
            self.failed = true
            return .fail(forward: forward, error: result)
        }
        if cursor < readable {
            self.pending = buffer.getSlice(at: buffer.readerIndex + cursor, length: readable - cursor)
        }
        if forward.readableBytes == 0 { forward = ByteBuffer() }
        return .forward(forward)
    }

    /// Call when the upstream body ended. A last event without its blank line is processed as if the
    /// line had come (SSE allows it); a stream without `[DONE]` (or an upstream error event) was cut
    /// and fails, so the client never mistakes it for a complete answer.
    public mutating func finish() -> Step {
        guard !self.failed else { return .forward(ByteBuffer()) }
        var forward = ByteBuffer()
        if self.pending != nil {
            switch self.feed(ByteBuffer(string: "\n\n")) {
            case .forward(let bytes): forward = bytes
            case .fail(let bytes, let error): return .fail(forward: bytes, error: error)
            }
        }
        guard self.sawDone || self.upstreamErrorMessage != nil else {
            self.failed = true
            return .fail(forward: forward, error: .streamInterrupted(provider: self.provider, detail: "the upstream closed the stream before [DONE]"))
        }
        return .forward(forward)
    }

    // MARK: Events

    private enum Verdict {
        case keep, drop
        case fail(GatewayError)
    }

    private mutating func inspect(event: UnsafeRawBufferPointer) -> Verdict {
        // An event is lines; we care about `data:` lines only (comments and `event:` pass through).
        // Nearly every event has one data line, inspected in place; several are joined with "\n" (SSE).
        var single: Range<Int>?
        var joined: [UInt8]?
        for line in SSELines(event) {
            guard let value = SSELines.dataValue(of: line, in: event) else { continue }
            if let first = single {
                var bytes = joined ?? Array(event[first])
                bytes.append(0x0A)
                bytes.append(contentsOf: event[value])
                joined = bytes
            } else {
                single = value
            }
        }
        if let joined { return joined.withUnsafeBytes { self.inspect(data: $0) } }
        guard let single else { return .keep }
        return self.inspect(data: UnsafeRawBufferPointer(rebasing: event[single]))
    }

    private mutating func inspect(data: UnsafeRawBufferPointer) -> Verdict {
        var trimmedEnd = data.count
        while trimmedEnd > 0 && (data[trimmedEnd - 1] == 0x20 || data[trimmedEnd - 1] == 0x09) { trimmedEnd -= 1 }
        let payload = UnsafeRawBufferPointer(rebasing: data[..<trimmedEnd])
        if payload.elementsEqual("[DONE]".utf8) {
            self.sawDone = true
            return .keep
        }
        // One pass validates the event and finds the three members that matter; the others' names are
        // compared as bytes, and nothing is allocated for an ordinary chunk.
        var errorMember: Range<Int>?
        var usageRange: Range<Int>?
        var choices: Range<Int>?
        do {
            try JSONScanner.forEachTopLevelMember(of: payload, named: Self.names) { member in
                switch member.name {
                case 0 where member.kind == .object: errorMember = member.valueRange
                case 1 where member.kind == .object: usageRange = member.valueRange
                case 2 where member.kind == .array: choices = member.valueRange
                default: break
                }
            }
        } catch {
            return .fail(.upstreamMalformed(provider: self.provider, detail: "invalid JSON in a stream event (\(error))"))
        }
        if let errorMember {
            self.upstreamErrorMessage = Self.errorMessage(in: payload, errorMember) ?? "upstream error event"
            return .keep
        }
        let first = choices.flatMap { try? JSONScanner.firstElement(ofArrayIn: payload, range: $0) }
        if let first, first.kind == .object, let reason = Self.finishReason(payload, first.range) { self.finishReason = reason }
        if let usageRange {
            self.usage = try? OpenAIUsage.parse(payload, range: usageRange)
            if choices != nil && first == nil && !self.forwardUsageChunk { return .drop }
        }
        return .keep
    }

    /// `error`, `usage` and `choices`, in this order.
    private static let names: [JSONScanner.MemberName] = ["error", "usage", "choices"]
    private static let finishReasonName: [JSONScanner.MemberName] = ["finish_reason"]
    private static let messageName: [JSONScanner.MemberName] = ["message"]

    /// The choice's finish reason, when it has one (each chunk carries one choice; the last reason wins).
    private static func finishReason(_ payload: UnsafeRawBufferPointer, _ choice: Range<Int>) -> String? {
        var reason: Range<Int>?
        try? JSONScanner.forEachMember(ofObjectIn: payload, range: choice, named: Self.finishReasonName) { member in
            if member.kind == .string { reason = member.valueRange }
        }
        return reason.flatMap { try? JSONScanner.decodeString(in: payload, range: $0) }
    }

    private static func errorMessage(in payload: UnsafeRawBufferPointer, _ range: Range<Int>) -> String? {
        var message: Range<Int>?
        try? JSONScanner.forEachMember(ofObjectIn: payload, range: range, named: Self.messageName) { member in
            if message == nil, member.kind == .string { message = member.valueRange }
        }
        return message.flatMap { try? JSONScanner.decodeString(in: payload, range: $0) }
    }
}
