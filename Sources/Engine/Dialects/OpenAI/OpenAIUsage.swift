/// Reads OpenAI's `usage` object straight from bytes, without decoding the rest of the document.
enum OpenAIUsage {
    /// - Parameter range: the byte range of the `usage` object value.
    static func parse(_ bytes: UnsafeRawBufferPointer, range: Range<Int>) throws(JSONScanner.SyntaxError) -> Usage {
        var usage = Usage()
        for member in try JSONScanner.members(ofObjectIn: bytes, range: range) {
            switch member.key {
            case "prompt_tokens":
                usage.inputTokens = JSONScanner.integer(in: bytes, member) ?? 0
            case "completion_tokens":
                usage.outputTokens = JSONScanner.integer(in: bytes, member) ?? 0
            case "prompt_tokens_details" where member.kind == .object:
                for detail in try JSONScanner.members(ofObjectIn: bytes, range: member.valueRange) {
                    switch detail.key {
                    case "cached_tokens": usage.cachedInputTokens = JSONScanner.integer(in: bytes, detail) ?? 0
                    case "cache_write_tokens": usage.cacheWriteInputTokens = JSONScanner.integer(in: bytes, detail) ?? 0
                    default: continue
                    }
                }
            case "completion_tokens_details" where member.kind == .object:
                for detail in try JSONScanner.members(ofObjectIn: bytes, range: member.valueRange)
                where detail.key == "reasoning_tokens" {
                    usage.reasoningTokens = JSONScanner.integer(in: bytes, detail) ?? 0
                }
            default:
                continue
            }
        }
        return usage
    }
}

extension JSONScanner {
    /// The value of a number member as a non-negative integer, or nil when it is not one.
    static func integer(in bytes: UnsafeRawBufferPointer, _ member: Member) -> Int? {
        guard member.kind == .number else { return nil }
        var value = 0
        for index in member.valueRange {
            let byte = bytes[index]
            guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
            let (product, overflow) = value.multipliedReportingOverflow(by: 10)
            guard !overflow else { return nil }
            value = product + Int(byte - UInt8(ascii: "0"))
        }
        return value
    }
}
