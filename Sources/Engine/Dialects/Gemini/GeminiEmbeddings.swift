public import NIOCore

/// OpenAI embeddings requests to Gemini's `batchEmbedContents`, and its answers back in OpenAI's shape.
/// Gemini reports no token usage for embeddings; the gateway estimates it (4 bytes a token) and says so.
public enum GeminiEmbeddings {
    public static func path(model: String) -> String {
        GeminiAdapter().path(model: model, streaming: false).replacingSuffix(":generateContent", with: ":batchEmbedContents")
    }

    public static func encode(_ openAIBody: ByteBuffer, upstreamModel: String) throws(GatewayError) -> OllamaEmbeddings.Request {
        let json = try JSONValue.requestObject(openAIBody)
        let inputs: [String]
        switch json["input"] {
        case .string(let text)?: inputs = [text]
        case .array(let items)? where !items.isEmpty && items.allSatisfy({ $0.string != nil }): inputs = items.compactMap(\.string)
        default:
            throw .invalidRequest("'input' must be a string or a non-empty array of strings for this model (token arrays are not supported).", param: "input")
        }
        let format = json["encoding_format"]?.string ?? "float"
        guard format == "float" || format == "base64" else {
            throw .invalidRequest("'encoding_format' must be float or base64.", param: "encoding_format")
        }
        var writer = JSONWriter()
        writer.openObject()
        writer.key("requests")
        writer.openArray()
        for input in inputs {
            writer.openObject()
            writer.field("model", "models/\(upstreamModel)")
            writer.key("content")
            writer.openObject()
            writer.key("parts")
            writer.openArray()
            writer.openObject()
            writer.field("text", input)
            writer.closeObject()
            writer.closeArray()
            writer.closeObject()
            if let dimensions = json["dimensions"]?.int { writer.field("outputDimensionality", dimensions) }
            writer.closeObject()
        }
        writer.closeArray()
        writer.closeObject()
        let estimate = inputs.reduce(0) { $0 + max(1, ($1.utf8.count + 3) / 4) }
        return OllamaEmbeddings.Request(body: ByteBuffer(string: writer.output), wantsBase64: format == "base64", estimatedTokens: estimate)
    }

    /// `{"embeddings":[{"values":[…]}]}` → OpenAI's list.
    public static func decode(_ body: ByteBuffer, model: String, request: OllamaEmbeddings.Request, provider: String) throws(GatewayError) -> (json: String, usage: Usage) {
        guard let embeddings = JSONValue.parse(body)?["embeddings"]?.array else {
            throw .upstreamMalformed(provider: provider, detail: "a 200 response without 'embeddings'")
        }
        let vectors = embeddings.map { $0["values"] ?? .array([]) }
        return OllamaEmbeddings.openAIList(vectors, model: model, base64: request.wantsBase64, tokens: request.estimatedTokens)
    }
}

extension String {
    fileprivate func replacingSuffix(_ suffix: String, with replacement: String) -> String {
        self.hasSuffix(suffix) ? String(self.dropLast(suffix.count)) + replacement : self
    }
}
