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
        let members: [JSONScanner.Member]
        do {
            members = try JSONScanner.topLevelMembers(of: payload)
        } catch {
            return .fail(.upstreamMalformed(provider: self.provider, detail: "invalid JSON in a stream event (\(error))"))
        }
        var choicesEmpty = false
        var usageRange: Range<Int>?
        for member in members {
            switch member.key {
            case "error" where member.kind == .object:
                self.upstreamErrorMessage = Self.errorMessage(in: payload, member) ?? "upstream error event"
                return .keep
            case "usage" where member.kind == .object:
                usageRange = member.valueRange
            case "choices" where member.kind == .array:
                choicesEmpty = Self.isEmptyArray(payload, member.valueRange)
                if !choicesEmpty { self.inspectChoices(payload, member.valueRange) }
            default:
                continue
            }
        }
        if let usageRange {
            self.usage = try? OpenAIUsage.parse(payload, range: usageRange)
            if choicesEmpty && !self.forwardUsageChunk { return .drop }
        }
        return .keep
    }

    /// Notes the finish reason.
    private mutating func inspectChoices(_ payload: UnsafeRawBufferPointer, _ range: Range<Int>) {
        guard let choices = try? JSONScanner.elements(ofArrayIn: payload, range: range) else { return }
        for choice in choices where choice.kind == .object {
            guard let members = try? JSONScanner.members(ofObjectIn: payload, range: choice.range) else { continue }
            for member in members {
                switch member.key {
                case "finish_reason" where member.kind == .string:
                    self.finishReason = try? JSONScanner.decodeString(in: payload, range: member.valueRange)
                default:
                    continue
                }
            }
        }
    }

    private static func errorMessage(in payload: UnsafeRawBufferPointer, _ member: JSONScanner.Member) -> String? {
        guard let inner = try? JSONScanner.members(ofObjectIn: payload, range: member.valueRange),
            let message = inner.first(where: { $0.key == "message" && $0.kind == .string })
        else { return nil }
        return try? JSONScanner.decodeString(in: payload, range: message.valueRange)
    }

    private static func isEmptyArray(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Bool {
        for index in range.dropFirst() {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: continue
            case UInt8(ascii: "]"): return true
            default: return false
            }
        }
        return false
    }
}
