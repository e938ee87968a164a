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
        // An upstream's count is clamped, never trusted: 2^63 tokens would trap the first sum.
        let count = UntrustedNumber.tokens(JSONScanner.integer(in: bytes, member) ?? 0)
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

    /// The value of a number member as an integer, saturated at `Int.min`/`Int.max` when its digits
    /// say more; nil when it is not a whole number (a fraction or an exponent).
    static func integer(in bytes: UnsafeRawBufferPointer, _ member: Member) -> Int? {
        Self.integer(in: bytes, member.valueRange, kind: member.kind)
    }

    static func integer(in bytes: UnsafeRawBufferPointer, _ member: NamedMember) -> Int? {
        Self.integer(in: bytes, member.valueRange, kind: member.kind)
    }

    private static func integer(in bytes: UnsafeRawBufferPointer, _ range: Range<Int>, kind: ValueKind) -> Int? {
        guard kind == .number, !range.isEmpty else { return nil }
        let negative = bytes[range.lowerBound] == UInt8(ascii: "-")
        let digits = negative ? range.dropFirst() : range[...]
        guard !digits.isEmpty else { return nil }
        // Accumulated as a negative number, whose range holds Int.min too; every step is checked.
        var value = 0
        var saturated = false
        for index in digits {
            let byte = bytes[index]
            guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
            guard !saturated else { continue }
            let (product, overflowed) = value.multipliedReportingOverflow(by: 10)
            let (next, underflowed) = product.subtractingReportingOverflow(Int(byte - UInt8(ascii: "0")))
            if overflowed || underflowed { saturated = true } else { value = next }
        }
        if saturated { return negative ? Int.min : Int.max }
        guard negative else { return value == Int.min ? Int.max : -value }
        return value
    }
}
