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

/// The gateway's own embeddings calls (the semantic cache's), in OpenAI's shape.
public enum OpenAIEmbeddings {
    public static func request(model: String, texts: [String]) -> ByteBuffer {
        var json = JSONWriter()
        json.openObject()
        json.field("model", model)
        json.key("input")
        json.openArray()
        for text in texts { json.value(text) }
        json.closeArray()
        json.closeObject()
        return ByteBuffer(string: json.output)
    }

    /// Little-endian float32s: the bytes of OpenAI's `encoding_format: base64`, and of a vector at rest.
    public static func littleEndianBytes(_ vector: [Float]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(vector.count * 4)
        for value in vector {
            let bits = value.bitPattern
            bytes += [UInt8(bits & 0xFF), UInt8(bits >> 8 & 0xFF), UInt8(bits >> 16 & 0xFF), UInt8(bits >> 24)]
        }
        return bytes
    }

    /// What `littleEndianBytes` wrote (a trailing partial value is ignored).
    public static func vector(fromLittleEndian bytes: [UInt8]) -> [Float] {
        stride(from: 0, to: bytes.count - bytes.count % 4, by: 4).map { offset in
            Float(bitPattern: UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16 | UInt32(bytes[offset + 3]) << 24)
        }
    }

    /// The vectors of an embeddings list in input order, scaled to unit length (so a dot product is
    /// the cosine similarity, whatever the model's own scale).
    /// - Throws: `upstreamMalformed` unless every item has a non-zero vector of one length.
    public static func unitVectors(_ body: ByteBuffer, count: Int, provider: String) throws(GatewayError) -> [[Float]] {
        let items = JSONValue.parse(body)?["data"]?.array ?? []
        var vectors = [[Float]?](repeating: nil, count: count)
        for (position, item) in items.enumerated() {
            let index = item["index"]?.int ?? position
            guard vectors.indices.contains(index), let numbers = item["embedding"]?.array else { continue }
            let vector = numbers.map { Float($0.double ?? .nan) }
            let norm = vector.reduce(0) { $0 + $1 * $1 }.squareRoot()
            guard norm.isFinite, norm > 0 else { continue }
            vectors[index] = vector.map { $0 / norm }
        }
        let found = vectors.compactMap { $0 }
        guard found.count == count, Set(found.map(\.count)).count == 1 else {
            throw .upstreamMalformed(provider: provider, detail: "an embeddings answer without one vector of one length for each of \(count) inputs")
        }
        return found
    }
}
