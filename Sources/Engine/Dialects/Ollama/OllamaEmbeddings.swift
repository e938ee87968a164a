public import NIOCore

/// OpenAI embeddings requests to Ollama's native `POST /api/embed`, and its answers back in OpenAI's shape.
public enum OllamaEmbeddings {
    /// A translated embeddings request (Ollama's or Gemini's) and what the answer needs from it.
    public struct Request: Sendable {
        public let body: ByteBuffer
        /// OpenAI's `encoding_format: base64`, which neither vendor does: the gateway encodes.
        public let wantsBase64: Bool
        /// For vendors that report no usage (Gemini): the gateway's estimate.
        public var estimatedTokens = 0
    }

    public static func encode(_ openAIBody: ByteBuffer, upstreamModel: String) throws(GatewayError) -> Request {
        let json = try JSONValue.requestObject(openAIBody)
        let input: JSONValue
        switch json["input"] {
        case .string(let text)?:
            input = .string(text)
        case .array(let items)? where !items.isEmpty && items.allSatisfy({ $0.string != nil }):
            input = .array(items)
        default:
            throw .invalidRequest("'input' must be a string or a non-empty array of strings for this model (token arrays are not supported).", param: "input")
        }
        var members: [(key: String, value: JSONValue)] = [("model", .string(upstreamModel)), ("input", input)]
        if let dimensions = json["dimensions"], dimensions.int != nil { members.append(("dimensions", dimensions)) }
        let format = json["encoding_format"]?.string ?? "float"
        guard format == "float" || format == "base64" else {
            throw .invalidRequest("'encoding_format' must be float or base64.", param: "encoding_format")
        }
        return Request(body: ByteBuffer(string: JSONValue.object(members).jsonText), wantsBase64: format == "base64")
    }

    /// `{"embeddings":[[…]],"prompt_eval_count":N}` → `{"object":"list","data":[…],"model","usage"}`.
    public static func decode(_ body: ByteBuffer, model: String, base64: Bool, provider: String) throws(GatewayError) -> (json: String, usage: Usage) {
        let parsed = JSONValue.parse(body)
        guard let vectors = parsed?["embeddings"]?.array else {
            throw .upstreamMalformed(provider: provider, detail: "a 200 response without 'embeddings'")
        }
        return self.openAIList(vectors, model: model, base64: base64, tokens: parsed?["prompt_eval_count"]?.tokenCount ?? 0)
    }

    /// OpenAI's embeddings list from vectors given as JSON arrays of numbers.
    static func openAIList(_ vectors: [JSONValue], model: String, base64: Bool, tokens: Int) -> (json: String, usage: Usage) {
        var json = JSONWriter()
        json.openObject()
        json.field("object", "list")
        json.key("data")
        json.openArray()
        for (index, vector) in vectors.enumerated() {
            json.openObject()
            json.field("object", "embedding")
            json.field("index", index)
            json.key("embedding")
            if base64 {
                json.value(self.base64(vector.array?.compactMap(\.double) ?? []))
            } else {
                json.raw(vector.jsonText)
            }
            json.closeObject()
        }
        json.closeArray()
        json.field("model", model)
        json.key("usage")
        json.openObject()
        json.field("prompt_tokens", tokens)
        json.field("total_tokens", tokens)
        json.closeObject()
        json.closeObject()
        return (json.output, Usage(inputTokens: tokens))
    }

    /// Little-endian float32s, base64-encoded, as OpenAI sends them.
    static func base64(_ values: [Double]) -> String {
        let bytes = OpenAIEmbeddings.littleEndianBytes(values.map { Float($0) })
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var output: [UInt8] = []
        var index = 0
        while index < bytes.count {
            let chunk = Array(bytes[index..<min(index + 3, bytes.count)])
            let value = (UInt32(chunk[0]) << 16) | (UInt32(chunk.count > 1 ? chunk[1] : 0) << 8) | UInt32(chunk.count > 2 ? chunk[2] : 0)
            output.append(alphabet[Int(value >> 18 & 63)])
            output.append(alphabet[Int(value >> 12 & 63)])
            output.append(chunk.count > 1 ? alphabet[Int(value >> 6 & 63)] : UInt8(ascii: "="))
            output.append(chunk.count > 2 ? alphabet[Int(value & 63)] : UInt8(ascii: "="))
            index += 3
        }
        return String(decoding: output, as: UTF8.self)
    }
}
