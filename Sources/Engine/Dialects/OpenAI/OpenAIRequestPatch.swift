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
    /// The larger of `max_tokens` and `max_completion_tokens` (an upstream may honour either), for
    /// reserving limits and budgets; within `1...UntrustedNumber.tokenCeiling`.
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
        let edits = self.edits(model: model, requestStreamUsage: requestStreamUsage)
        var output = ByteBufferAllocator().buffer(capacity: self.upstreamBodyLength(edits))
        self.writeUpstreamBody(edits, into: &output)
        return output
    }

    /// One replacement of the client's bytes: `range` becomes `replacement`.
    public struct Edit: Sendable {
        let range: Range<Int>
        let replacement: String
    }

    /// At most two edits, in the order of the bytes they replace: the model, and for a stream the usage
    /// request (`stream_options`). Computed once per attempt, then sized and written without a copy.
    public func edits(model: String, requestStreamUsage: Bool = true) -> (Edit, Edit?) {
        let modelEdit = Edit(range: self.modelRange, replacement: JSONWriter.quoted(model))
        guard self.isStreaming && requestStreamUsage else { return (modelEdit, nil) }
        let usageEdit: Edit
        switch self.streamOptions {
        case .absent:
            // Insert right after the opening brace, so we never need to care about a trailing comma.
            let brace = self.body.withUnsafeReadableBytes { bytes in bytes.firstIndex(of: UInt8(ascii: "{")) ?? 0 }
            usageEdit = Edit(range: brace + 1..<brace + 1, replacement: "\"stream_options\":{\"include_usage\":true},")
        case .present(let range, let others, let includesUsage) where !includesUsage:
            var rebuilt = "{\"include_usage\":true"
            for member in others {
                rebuilt += ","
                rebuilt += self.body.getString(at: self.body.readerIndex + member.lowerBound, length: member.count) ?? ""
            }
            rebuilt += "}"
            usageEdit = Edit(range: range, replacement: rebuilt)
        case .present:
            return (modelEdit, nil)
        }
        return usageEdit.range.lowerBound < modelEdit.range.lowerBound ? (usageEdit, modelEdit) : (modelEdit, usageEdit)
    }

    /// The length of the body `edits` make.
    public func upstreamBodyLength(_ edits: (Edit, Edit?)) -> Int {
        var length = self.body.readableBytes - edits.0.range.count + edits.0.replacement.utf8.count
        if let second = edits.1 { length += second.replacement.utf8.count - second.range.count }
        return length
    }

    /// Writes the body `edits` make at the end of `output`.
    public func writeUpstreamBody(_ edits: (Edit, Edit?), into output: inout ByteBuffer) {
        var cursor = self.body.readerIndex
        func apply(_ edit: Edit) {
            let start = self.body.readerIndex + edit.range.lowerBound
            output.writeImmutableBuffer(self.body.getSlice(at: cursor, length: start - cursor)!)
            output.writeString(edit.replacement)
            cursor = self.body.readerIndex + edit.range.upperBound
        }
        apply(edits.0)
        if let second = edits.1 { apply(second) }
        output.writeImmutableBuffer(self.body.getSlice(at: cursor, length: self.body.writerIndex - cursor)!)
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
        var model: JSONScanner.NamedMember?
        var stream: JSONScanner.NamedMember?
        var streamOptions: JSONScanner.NamedMember?
        var repeated: JSONScanner.NamedMember?
        var maxTokens: JSONScanner.NamedMember?
        var maxCompletionTokens: JSONScanner.NamedMember?
        do {
            try JSONScanner.forEachTopLevelMember(of: bytes, named: Self.names) { member in
                switch member.name {
                case 0: Self.assign(member, to: &model, repeated: &repeated)
                case 1: Self.assign(member, to: &stream, repeated: &repeated)
                case 2: Self.assign(member, to: &streamOptions, repeated: &repeated)
                case 3: Self.assign(member, to: &maxTokens, repeated: &repeated)
                default: Self.assign(member, to: &maxCompletionTokens, repeated: &repeated)
                }
            }
        } catch {
            throw .malformedRequest(error.description)
        }
        if let repeated {
            // Parsers disagree on which duplicate wins, so the model we route on could differ from the
            // one the upstream bills for.
            let name = Self.names[repeated.name].name.description
            throw .invalidRequest("The '\(name)' parameter appears more than once.", param: name)
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
        let outputLimit = [try Self.tokenLimit(maxTokens, in: bytes), try Self.tokenLimit(maxCompletionTokens, in: bytes)].compactMap { $0 }.max()
        return Inspection(model: modelName, modelRange: model.valueRange, isStreaming: isStreaming, streamOptions: options, maxTokens: outputLimit)
    }

    /// A `max_tokens`-like member as a number of tokens: null is none, and the rest must pass
    /// `UntrustedNumber.outputTokenLimit`.
    private static func tokenLimit(_ member: JSONScanner.NamedMember?, in bytes: UnsafeRawBufferPointer) throws(GatewayError) -> Int? {
        guard let member, member.kind != .null else { return nil }
        let value: JSONValue? = member.kind == .number
            ? .number(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[member.valueRange]), as: UTF8.self)) : nil
        return try UntrustedNumber.outputTokenLimit(value?.wholeNumber, name: Self.names[member.name].name.description)
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

    /// The top-level members the fast path reads, each of which may appear once only.
    private static let names: [JSONScanner.MemberName] = ["model", "stream", "stream_options", "max_tokens", "max_completion_tokens"]

    /// Keeps the first occurrence; a second one is noted, to be refused.
    private static func assign(_ member: JSONScanner.NamedMember, to slot: inout JSONScanner.NamedMember?, repeated: inout JSONScanner.NamedMember?) {
        if slot == nil {
            slot = member
        } else if repeated == nil {
            repeated = member
        }
    }
}
