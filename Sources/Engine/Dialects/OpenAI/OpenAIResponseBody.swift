public import NIOCore

/// What the gateway needs from a complete (non-streaming) OpenAI-dialect response body.
public struct OpenAIResponseSummary: Sendable, Equatable {
    public var usage: Usage?
    public var finishReason: String?

    /// Validates the body and reads usage and the first choice's finish reason.
    /// - Throws: `upstreamMalformed` when the body is not a JSON object, or carries an `error` instead of choices.
    public static func read(_ body: ByteBuffer, provider: String) throws(GatewayError) -> OpenAIResponseSummary {
        let result: Result<OpenAIResponseSummary, GatewayError> = body.withUnsafeReadableBytes { bytes in
            let members: [JSONScanner.Member]
            do {
                members = try JSONScanner.topLevelMembers(of: bytes)
            } catch {
                return .failure(.upstreamMalformed(provider: provider, detail: "invalid JSON (\(error))"))
            }
            var summary = OpenAIResponseSummary()
            var sawChoices = false
            for member in members {
                switch member.key {
                case "usage" where member.kind == .object:
                    summary.usage = try? OpenAIUsage.parse(bytes, range: member.valueRange)
                case "choices" where member.kind == .array:
                    sawChoices = true
                    summary.finishReason = Self.firstFinishReason(bytes, member.valueRange)
                default:
                    continue
                }
            }
            guard sawChoices else {
                return .failure(.upstreamMalformed(provider: provider, detail: "a 200 response without 'choices'"))
            }
            return .success(summary)
        }
        return try result.get()
    }

    private static func firstFinishReason(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> String? {
        guard let first = try? JSONScanner.elements(ofArrayIn: bytes, range: range).first, first.kind == .object,
            let members = try? JSONScanner.members(ofObjectIn: bytes, range: first.range),
            let reason = members.first(where: { $0.key == "finish_reason" && $0.kind == .string })
        else { return nil }
        return try? JSONScanner.decodeString(in: bytes, range: reason.valueRange)
    }
}
