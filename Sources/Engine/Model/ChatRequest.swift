/// The gateway's one internal chat request, between a client dialect and an upstream dialect.
///
/// Cross-dialect requests are decoded into this and encoded from it; same-dialect requests never
/// are (they take the fast path). It holds what every supported dialect can express, and the
/// decoders reject what cannot be carried rather than dropping it silently.
public struct ChatRequest: Sendable, Equatable {
    public var model: String
    /// Top-level instructions (Anthropic's `system`, OpenAI's leading system/developer messages).
    public var system: String?
    public var messages: [ChatMessage]
    public var tools: [ToolDefinition]
    public var toolChoice: ToolChoice?
    public var parallelToolCalls: Bool?
    public var maxTokens: Int?
    public var temperature: Double?
    public var topP: Double?
    public var topK: Int?
    public var stopSequences: [String]
    public var stream: Bool
    /// An end-user id for the provider's abuse monitoring (Anthropic `metadata.user_id`, OpenAI `user`).
    public var user: String?
    /// JSON output, with or without a schema.
    public var responseFormat: ResponseFormat?

    public init(
        model: String,
        system: String? = nil,
        messages: [ChatMessage],
        tools: [ToolDefinition] = [],
        toolChoice: ToolChoice? = nil,
        parallelToolCalls: Bool? = nil,
        maxTokens: Int? = nil,
        temperature: Double? = nil,
        topP: Double? = nil,
        topK: Int? = nil,
        stopSequences: [String] = [],
        stream: Bool = false,
        user: String? = nil,
        responseFormat: ResponseFormat? = nil
    ) {
        self.model = model
        self.system = system
        self.messages = messages
        self.tools = tools
        self.toolChoice = toolChoice
        self.parallelToolCalls = parallelToolCalls
        self.maxTokens = maxTokens
        self.temperature = temperature
        self.topP = topP
        self.topK = topK
        self.stopSequences = stopSequences
        self.stream = stream
        self.user = user
        self.responseFormat = responseFormat
    }
}

public struct ChatMessage: Sendable, Equatable {
    public enum Role: String, Sendable {
        case user, assistant
    }

    public var role: Role
    public var content: [ContentPart]

    public init(role: Role, content: [ContentPart]) {
        self.role = role
        self.content = content
    }
}

public enum ContentPart: Sendable, Equatable {
    case text(String)
    case image(ImageSource)
    /// A call the assistant made; `input` is a JSON object.
    case toolUse(id: String, name: String, input: JSONValue)
    /// The result of a call, sent back by the user side.
    case toolResult(toolUseID: String, content: [ContentPart], isError: Bool)
}

extension [ContentPart] {
    /// The text parts joined; images and tool parts are left out.
    func text(separator: String = "") -> String {
        self.compactMap { part -> String? in
            if case .text(let text) = part { return text }
            return nil
        }.joined(separator: separator)
    }

    /// The tool calls among the parts, in order.
    var toolUses: [(id: String, name: String, input: JSONValue)] {
        self.compactMap { part in
            if case .toolUse(let id, let name, let input) = part { return (id, name, input) }
            return nil
        }
    }
}

public enum ImageSource: Sendable, Equatable {
    case url(String)
    case base64(mediaType: String, data: String)

    /// As a `data:` URL when base64, which is how OpenAI-shaped APIs take inline images.
    public var urlString: String {
        switch self {
        case .url(let url): return url
        case .base64(let mediaType, let data): return "data:\(mediaType);base64,\(data)"
        }
    }
}

public struct ToolDefinition: Sendable, Equatable {
    public var name: String
    public var description: String?
    /// A JSON Schema object.
    public var parameters: JSONValue

    public init(name: String, description: String? = nil, parameters: JSONValue) {
        self.name = name
        self.description = description
        self.parameters = parameters
    }
}

public enum ToolChoice: Sendable, Equatable {
    case auto
    case none
    /// Some tool must be called (OpenAI `required`, Anthropic `any`).
    case required
    case tool(name: String)
}

/// Constrained output: OpenAI's `response_format`, Anthropic's `output_config.format`, Gemini's
/// `responseMimeType`/`responseJsonSchema`, Ollama's `format`.
public enum ResponseFormat: Sendable, Equatable {
    /// Any JSON object.
    case json
    /// JSON matching `schema`; `name` is OpenAI's label for it.
    case jsonSchema(name: String, schema: JSONValue)

    /// The schema to send where a schema is required (Anthropic has no schema-less JSON mode).
    var schema: JSONValue {
        switch self {
        case .json: return .object([(key: "type", value: .string("object"))])
        case .jsonSchema(_, let schema): return schema
        }
    }
}

/// Why the model stopped, in canonical terms.
public enum StopReason: String, Sendable, Equatable {
    case endTurn
    case maxTokens
    case stopSequence
    case toolUse
    case refusal
}

/// Ids for tool calls from providers that send none (Ollama, Gemini): derived from the call's position
/// and content, never random, so the same answer always carries the same ids.
public enum ToolCallID {
    public static func derive(index: Int, name: String, input: JSONValue) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in "\(index)|\(name)|\(input.jsonText)".utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return "call_\(index)_" + String(hash, radix: 36)
    }
}
