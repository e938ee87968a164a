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
            // Usage is read in the pass that validates the answer; its members come before the
            // `usage` member itself, which commits them (so the last `usage` wins, as a decoder's would).
            var reading = Usage()
            var usage: Usage?
            var choices: Range<Int>?
            do {
                try JSONScanner.forEachTopLevelMember(of: bytes, named: Self.names) { member in
                    switch member.name {
                    case 0:
                        if member.kind == .object { usage = reading }
                        reading = Usage()
                    case 1:
                        if member.kind == .array { choices = member.valueRange }
                    default:
                        OpenAIUsage.take(member, from: 2, in: bytes, into: &reading)
                    }
                }
            } catch {
                return .failure(.upstreamMalformed(provider: provider, detail: "invalid JSON (\(error))"))
            }
            guard let choices else {
                return .failure(.upstreamMalformed(provider: provider, detail: "a 200 response without 'choices'"))
            }
            var summary = OpenAIResponseSummary()
            summary.usage = usage
            if finishReason { summary.finishReason = Self.firstFinishReason(bytes, choices) }
            return .success(summary)
        }
        return try result.get()
    }

    /// `usage` and `choices` at the top, then usage's own members inside `usage`.
    private static let names: [JSONScanner.MemberName] = ["usage", "choices"] + OpenAIUsage.names(inside: 0, from: 2)
    private static let finishReasonName: [JSONScanner.MemberName] = ["finish_reason"]

    private static func firstFinishReason(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> String? {
        guard let first = try? JSONScanner.firstElement(ofArrayIn: bytes, range: range), first.kind == .object else { return nil }
        var reason: Range<Int>?
        try? JSONScanner.forEachMember(ofObjectIn: bytes, range: first.range, named: Self.finishReasonName) { member in
            if reason == nil, member.kind == .string { reason = member.valueRange }
        }
        return reason.flatMap { try? JSONScanner.decodeString(in: bytes, range: $0) }
    }
}
