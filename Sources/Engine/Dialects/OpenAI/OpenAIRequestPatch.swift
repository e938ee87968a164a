public import NIOCore

/// The fast path for an OpenAI-dialect request to an OpenAI-compatible upstream.
///
/// The body is validated and the few members we need are located, but it is never decoded into
/// structs and re-encoded: `model` is replaced and `stream_options.include_usage` is set in the bytes,
/// and every other byte the client sent reaches the upstream untouched (unknown and vendor-specific
/// fields included).
public struct OpenAIRequestPatch: Sendable {
    /// The model name the client asked for: a route alias.
    public let clientModel: String
    public let isStreaming: Bool
    /// Whether the client itself asked for the trailing usage chunk; if not, we strip the one we asked for.
    public let clientWantsStreamUsage: Bool
    /// `max_tokens` (or `max_completion_tokens`), for reserving limits and budgets.
    public let maxTokens: Int?

    private let body: ByteBuffer
    private let modelRange: Range<Int>
    private let streamOptions: StreamOptions

    private enum StreamOptions: Sendable {
        case absent
        /// Present, with the ranges of its other members, so it can be rebuilt with `include_usage: true`.
        case present(range: Range<Int>, otherMembers: [Range<Int>], includesUsage: Bool)
    }

    /// Validates `body` and locates the members the fast path patches.
    /// - Throws: `GatewayError` (400) for malformed JSON, a missing or non-string `model`, a non-boolean `stream`,
    ///   or a duplicated member that different parsers would read differently.
    public init(body: ByteBuffer) throws(GatewayError) {
        self.body = body
        let inspection: Result<Inspection, GatewayError> = body.withUnsafeReadableBytes { bytes in
            do throws(GatewayError) {
                return .success(try Self.inspect(bytes))
            } catch {
                return .failure(error)
            }
        }
        let found = try inspection.get()
        self.clientModel = found.model
        self.modelRange = found.modelRange
        self.isStreaming = found.isStreaming
        self.streamOptions = found.streamOptions
        self.maxTokens = found.maxTokens
        if case .present(_, _, let includesUsage) = found.streamOptions {
            self.clientWantsStreamUsage = includesUsage
        } else {
            self.clientWantsStreamUsage = false
        }
    }

    /// The body to send upstream: `model` replaced, and usage requested for streams.
    /// - Parameter requestStreamUsage: false for upstreams known to reject `stream_options`.
    public func upstreamBody(model: String, requestStreamUsage: Bool = true) -> ByteBuffer {
        var edits: [(range: Range<Int>, replacement: String)] = [(self.modelRange, JSONWriter.quoted(model))]
        if self.isStreaming && requestStreamUsage {
            switch self.streamOptions {
            case .absent:
                // Insert right after the opening brace, so we never need to care about a trailing comma.
                let brace = self.body.withUnsafeReadableBytes { bytes in bytes.firstIndex(of: UInt8(ascii: "{")) ?? 0 }
                edits.append((brace + 1..<brace + 1, "\"stream_options\":{\"include_usage\":true},"))
            case .present(let range, let others, let includesUsage) where !includesUsage:
                var rebuilt = "{\"include_usage\":true"
                for member in others {
                    rebuilt += ","
                    rebuilt += self.body.getString(at: self.body.readerIndex + member.lowerBound, length: member.count) ?? ""
                }
                rebuilt += "}"
                edits.append((range, rebuilt))
            case .present:
                break
            }
        }
        edits.sort { $0.range.lowerBound < $1.range.lowerBound }
        var output = ByteBufferAllocator().buffer(capacity: self.body.readableBytes + 64)
        var cursor = 0
        for edit in edits {
            output.writeBytes(self.body.readableBytesView.dropFirst(cursor).prefix(edit.range.lowerBound - cursor))
            output.writeString(edit.replacement)
            cursor = edit.range.upperBound
        }
        output.writeBytes(self.body.readableBytesView.dropFirst(cursor))
        return output
    }

    // MARK: Inspection

    private struct Inspection {
        var model: String
        var modelRange: Range<Int>
        var isStreaming: Bool
        var streamOptions: StreamOptions
        var maxTokens: Int?
    }

    private static func inspect(_ bytes: UnsafeRawBufferPointer) throws(GatewayError) -> Inspection {
        let members: [JSONScanner.Member]
        do {
            members = try JSONScanner.topLevelMembers(of: bytes)
        } catch {
            throw .malformedRequest(error.description)
        }
        var model: JSONScanner.Member?
        var stream: JSONScanner.Member?
        var streamOptions: JSONScanner.Member?
        var maxTokens: Int?
        for member in members {
            switch member.key {
            case "model": try Self.assign(member, to: &model)
            case "stream": try Self.assign(member, to: &stream)
            case "stream_options": try Self.assign(member, to: &streamOptions)
            case "max_tokens", "max_completion_tokens":
                if member.kind == .number { maxTokens = Int(String(decoding: bytes[member.valueRange], as: UTF8.self)) }
            default: continue
            }
        }
        guard let model else {
            throw .invalidRequest("You must provide a model parameter.", param: "model")
        }
        guard model.kind == .string else {
            throw .invalidRequest("The 'model' parameter must be a string.", param: "model")
        }
        let modelName: String
        do {
            modelName = try JSONScanner.decodeString(in: bytes, range: model.valueRange)
        } catch {
            throw .malformedRequest(error.description)
        }
        guard !modelName.isEmpty else {
            throw .invalidRequest("The 'model' parameter must not be empty.", param: "model")
        }

        var isStreaming = false
        if let stream {
            switch stream.kind {
            case .bool: isStreaming = bytes[stream.valueRange.lowerBound] == UInt8(ascii: "t")
            case .null: isStreaming = false
            default: throw .invalidRequest("The 'stream' parameter must be a boolean.", param: "stream")
            }
        }

        var options = StreamOptions.absent
        if let streamOptions {
            switch streamOptions.kind {
            case .object:
                options = try Self.inspectStreamOptions(bytes, range: streamOptions.valueRange)
            case .null:
                // `"stream_options": null` is valid and means "none"; we replace it when streaming.
                options = .present(range: streamOptions.valueRange, otherMembers: [], includesUsage: false)
            default:
                throw .invalidRequest("The 'stream_options' parameter must be an object.", param: "stream_options")
            }
        }
        return Inspection(model: modelName, modelRange: model.valueRange, isStreaming: isStreaming, streamOptions: options, maxTokens: maxTokens)
    }

    private static func inspectStreamOptions(_ bytes: UnsafeRawBufferPointer, range: Range<Int>) throws(GatewayError) -> StreamOptions {
        let members: [JSONScanner.Member]
        do {
            members = try JSONScanner.members(ofObjectIn: bytes, range: range)
        } catch {
            throw .malformedRequest(error.description)
        }
        var includesUsage = false
        var others: [Range<Int>] = []
        for member in members {
            if member.key == "include_usage" {
                guard member.kind == .bool || member.kind == .null else {
                    throw .invalidRequest(
                        "'stream_options.include_usage' must be a boolean.",
                        param: "stream_options.include_usage"
                    )
                }
                includesUsage = bytes[member.valueRange.lowerBound] == UInt8(ascii: "t")
            } else {
                others.append(member.keyStart..<member.valueRange.upperBound)
            }
        }
        return .present(range: range, otherMembers: others, includesUsage: includesUsage)
    }

    /// Rejects a second occurrence: parsers disagree on which duplicate wins, so the model we route on
    /// could differ from the one the upstream bills for.
    private static func assign(_ member: JSONScanner.Member, to slot: inout JSONScanner.Member?) throws(GatewayError) {
        guard slot == nil else {
            throw .invalidRequest("The '\(member.key)' parameter appears more than once.", param: member.key)
        }
        slot = member
    }
}
