public import NIOCore

/// What the gateway needs from a complete (non-streaming) OpenAI-dialect response body.
public struct OpenAIResponseSummary: Sendable, Equatable {
    public var usage: Usage?
    public var finishReason: String?

    /// Validates the body and reads usage and the first choice's finish reason.
    /// - Parameter finishReason: whether to read the finish reason (only a debug log line shows it,
    ///   and finding it scans the first choice again).
    /// - Throws: `upstreamMalformed` when the body is not a JSON object, or carries an `error` instead of choices.
    public static func read(_ body: ByteBuffer, provider: String, finishReason: Bool = true) throws(GatewayError) -> OpenAIResponseSummary {
        let result: Result<OpenAIResponseSummary, GatewayError> = body.withUnsafeReadableBytes { bytes in
            var found: (usage: Range<Int>?, choices: Range<Int>?)
            do {
                try JSONScanner.forEachTopLevelMember(of: bytes, named: Self.names) { member in
                    if member.name == 0, member.kind == .object { found.usage = member.valueRange }
                    if member.name == 1, member.kind == .array { found.choices = member.valueRange }
                }
            } catch {
                return .failure(.upstreamMalformed(provider: provider, detail: "invalid JSON (\(error))"))
            }
            guard let choices = found.choices else {
                return .failure(.upstreamMalformed(provider: provider, detail: "a 200 response without 'choices'"))
            }
            var summary = OpenAIResponseSummary()
            summary.usage = found.usage.flatMap { try? OpenAIUsage.parse(bytes, range: $0) }
            if finishReason { summary.finishReason = Self.firstFinishReason(bytes, choices) }
            return .success(summary)
        }
        return try result.get()
    }

    private static let names: [StaticString] = ["usage", "choices"]
    private static let finishReasonName: [StaticString] = ["finish_reason"]

    private static func firstFinishReason(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> String? {
        guard let first = try? JSONScanner.firstElement(ofArrayIn: bytes, range: range), first.kind == .object else { return nil }
        var reason: Range<Int>?
        try? JSONScanner.forEachMember(ofObjectIn: bytes, range: first.range, named: Self.finishReasonName) { member in
            if reason == nil, member.kind == .string { reason = member.valueRange }
        }
        return reason.flatMap { try? JSONScanner.decodeString(in: bytes, range: $0) }
    }
}
