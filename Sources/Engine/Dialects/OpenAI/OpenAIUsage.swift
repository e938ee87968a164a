/// Reads OpenAI's `usage` object straight from bytes, without decoding the rest of the document.
enum OpenAIUsage {
    /// - Parameter range: the byte range of the `usage` object value.
    static func parse(_ bytes: UnsafeRawBufferPointer, range: Range<Int>) throws(JSONScanner.SyntaxError) -> Usage {
        var usage = Usage()
        var details: (prompt: Range<Int>?, completion: Range<Int>?)
        try JSONScanner.forEachMember(ofObjectIn: bytes, range: range, named: Self.names) { member in
            switch member.name {
            case 0: usage.inputTokens = JSONScanner.integer(in: bytes, member) ?? 0
            case 1: usage.outputTokens = JSONScanner.integer(in: bytes, member) ?? 0
            case 2 where member.kind == .object: details.prompt = member.valueRange
            case 3 where member.kind == .object: details.completion = member.valueRange
            default: break
            }
        }
        if let prompt = details.prompt {
            try JSONScanner.forEachMember(ofObjectIn: bytes, range: prompt, named: Self.promptDetailNames) { detail in
                if detail.name == 0 {
                    usage.cachedInputTokens = JSONScanner.integer(in: bytes, detail) ?? 0
                } else {
                    usage.cacheWriteInputTokens = JSONScanner.integer(in: bytes, detail) ?? 0
                }
            }
        }
        if let completion = details.completion {
            try JSONScanner.forEachMember(ofObjectIn: bytes, range: completion, named: Self.completionDetailNames) { detail in
                usage.reasoningTokens = JSONScanner.integer(in: bytes, detail) ?? 0
            }
        }
        return usage
    }

    private static let names: [StaticString] = ["prompt_tokens", "completion_tokens", "prompt_tokens_details", "completion_tokens_details"]
    private static let promptDetailNames: [StaticString] = ["cached_tokens", "cache_write_tokens"]
    private static let completionDetailNames: [StaticString] = ["reasoning_tokens"]
}

extension JSONScanner {
    /// The value of a number member as a non-negative integer, or nil when it is not one.
    static func integer(in bytes: UnsafeRawBufferPointer, _ member: Member) -> Int? {
        Self.integer(in: bytes, member.valueRange, kind: member.kind)
    }

    static func integer(in bytes: UnsafeRawBufferPointer, _ member: NamedMember) -> Int? {
        Self.integer(in: bytes, member.valueRange, kind: member.kind)
    }

    private static func integer(in bytes: UnsafeRawBufferPointer, _ range: Range<Int>, kind: ValueKind) -> Int? {
        guard kind == .number else { return nil }
        var value = 0
        for index in range {
            let byte = bytes[index]
            guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
            let (product, overflow) = value.multipliedReportingOverflow(by: 10)
            guard !overflow else { return nil }
            value = product + Int(byte - UInt8(ascii: "0"))
        }
        return value
    }
}
