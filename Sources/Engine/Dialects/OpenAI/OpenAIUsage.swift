/// Reads OpenAI's `usage` object straight from bytes, without decoding the rest of the document.
enum OpenAIUsage {
    /// The names of usage's members, to find inside the member `names[usage]` of a larger list whose
    /// usage names start at `first` (or, with `usage` nil, in the usage object itself).
    static func names(inside usage: Int?, from first: Int) -> [JSONScanner.MemberName] {
        [
            .init("prompt_tokens", inside: usage),
            .init("completion_tokens", inside: usage),
            .init("prompt_tokens_details", inside: usage),
            .init("completion_tokens_details", inside: usage),
            .init("cached_tokens", inside: first + 2),
            .init("cache_write_tokens", inside: first + 2),
            .init("reasoning_tokens", inside: first + 3),
        ]
    }

    /// Takes one member found with `names(inside:from:)` into `usage`.
    static func take(_ member: JSONScanner.NamedMember, from first: Int, in bytes: UnsafeRawBufferPointer, into usage: inout Usage) {
        let count = JSONScanner.integer(in: bytes, member) ?? 0
        switch member.name - first {
        case 0: usage.inputTokens = count
        case 1: usage.outputTokens = count
        case 4: usage.cachedInputTokens = count
        case 5: usage.cacheWriteInputTokens = count
        case 6: usage.reasoningTokens = count
        default: break
        }
    }

    /// - Parameter range: the byte range of the `usage` object value.
    static func parse(_ bytes: UnsafeRawBufferPointer, range: Range<Int>) throws(JSONScanner.SyntaxError) -> Usage {
        var usage = Usage()
        try JSONScanner.forEachMember(ofObjectIn: bytes, range: range, named: Self.ownNames) { member in
            Self.take(member, from: 0, in: bytes, into: &usage)
        }
        return usage
    }

    private static let ownNames = Self.names(inside: nil, from: 0)
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
            let (sum, sumOverflow) = product.addingReportingOverflow(Int(byte - UInt8(ascii: "0")))
            guard !sumOverflow else { return nil }
            value = sum
        }
        return value
    }
}
