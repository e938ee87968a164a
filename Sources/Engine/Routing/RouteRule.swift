import NIOCore

/// `rules:` — one entry: when every condition of `when` holds, the request goes to `route`.
public struct RouteRule: Sendable, Equatable {
    public var conditions: RuleConditions
    public var route: String

    public init(conditions: RuleConditions, route: String) {
        self.conditions = conditions
        self.route = route
    }
}

/// `when:` — conditions that must all hold. An empty `when` matches everything.
public struct RuleConditions: Sendable, Equatable {
    /// A glob (`*`, `?`) on the model name the client asked for.
    public var model: String?
    public var tenant: String?
    public var key: String?
    /// Header name (lowercase) → glob on its value.
    public var headers: [String: String] = [:]
    public var promptTokensOver: Int?
    public var hasTools: Bool?
    public var hasImages: Bool?

    public init() {}

    /// Whether checking this needs the body looked at beyond model and stream.
    var needsContent: Bool { self.promptTokensOver != nil || self.hasTools != nil || self.hasImages != nil }

    func matches(_ request: RequestFeatures) -> Bool {
        if let model, !Glob.matches(model, request.model) { return false }
        if let tenant, tenant != request.tenant { return false }
        if let key, key != request.keyID { return false }
        for (name, pattern) in self.headers {
            guard let value = request.header(name), Glob.matches(pattern, value) else { return false }
        }
        if let promptTokensOver, request.promptTokens <= promptTokensOver { return false }
        if let hasTools, hasTools != request.hasTools { return false }
        if let hasImages, hasImages != request.hasImages { return false }
        return true
    }
}

/// What routing looks at in a request: cheap to get without decoding the body into the canonical model.
public struct RequestFeatures {
    public var model: String
    public var streaming: Bool
    public var tenant: String?
    public var keyID: String?
    public var header: (String) -> String?
    /// A rough estimate (a token per four bytes of body) unless the caller knows better.
    public var promptTokens = 0
    public var maxTokens: Int?
    public var hasTools = false
    public var hasImages = false

    public init(model: String, streaming: Bool, header: @escaping (String) -> String? = { _ in nil }) {
        self.model = model
        self.streaming = streaming
        self.header = header
    }

    /// Fills the content features from a chat body in either dialect without decoding it: the prompt
    /// estimate from its size, `tools` from the top-level member, images from their type markers.
    /// (`maxTokens` comes from `OpenAIRequestPatch`, which bounds it.)
    public mutating func inspect(body: ByteBuffer) {
        self.promptTokens = (body.readableBytes + 3) / 4
        body.withUnsafeReadableBytes { bytes in
            guard let members = try? JSONScanner.topLevelMembers(of: bytes) else { return }
            for member in members where member.key == "tools" {
                self.hasTools = member.kind == .array
                    && ((try? JSONScanner.elements(ofArrayIn: bytes, range: member.valueRange).isEmpty) == false)
            }
            // Chat's `image_url` parts, Anthropic's `image` blocks, the Responses API's `input_image` items.
            self.hasImages = Self.contains(bytes, #""image_url""#) || Self.contains(bytes, #""type":"image""#)
                || Self.contains(bytes, #""type": "image""#) || Self.contains(bytes, #""input_image""#)
        }
    }

    private static func contains(_ haystack: UnsafeRawBufferPointer, _ needle: String) -> Bool {
        let pattern = Array(needle.utf8)
        guard let first = pattern.first, haystack.count >= pattern.count else { return false }
        var index = 0
        let last = haystack.count - pattern.count
        while index <= last {
            if haystack[index] == first {
                var offset = 1
                while offset < pattern.count && haystack[index + offset] == pattern[offset] { offset += 1 }
                if offset == pattern.count { return true }
            }
            index += 1
        }
        return false
    }
}

/// Shell-style patterns: `*` any run of characters, `?` one character.
public enum Glob {
    public static func matches(_ pattern: String, _ text: String) -> Bool {
        let pattern = Array(pattern.unicodeScalars)
        let text = Array(text.unicodeScalars)
        var p = 0
        var t = 0
        var star: Int?
        var resume = 0
        while t < text.count {
            if p < pattern.count && (pattern[p] == "?" || pattern[p] == text[t]) {
                p += 1
                t += 1
            } else if p < pattern.count && pattern[p] == "*" {
                star = p
                resume = t
                p += 1
            } else if let star {
                p = star + 1
                resume += 1
                t = resume
            } else {
                return false
            }
        }
        while p < pattern.count && pattern[p] == "*" { p += 1 }
        return p == pattern.count
    }
}
