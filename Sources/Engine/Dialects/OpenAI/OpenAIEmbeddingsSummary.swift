public import NIOCore

/// What the gateway needs from an OpenAI-shaped embeddings response: proof it is one, and its usage.
public enum OpenAIEmbeddingsSummary {
    /// - Throws: `upstreamMalformed` when the body is not an object with a `data` list.
    public static func read(_ body: ByteBuffer, provider: String) throws(GatewayError) -> Usage {
        let result: Result<Usage, GatewayError> = body.withUnsafeReadableBytes { bytes in
            guard let members = try? JSONScanner.topLevelMembers(of: bytes),
                members.contains(where: { $0.key == "data" && $0.kind == .array })
            else {
                return .failure(.upstreamMalformed(provider: provider, detail: "a 200 response that is not an embeddings list"))
            }
            guard let usage = members.first(where: { $0.key == "usage" && $0.kind == .object }) else { return .success(Usage()) }
            return .success((try? OpenAIUsage.parse(bytes, range: usage.valueRange)) ?? Usage())
        }
        return try result.get()
    }
}
