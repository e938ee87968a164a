/// W3C Trace Context: the `traceparent` header a client sends is passed on to the upstream, so a
/// trace crosses the gateway; a malformed one is dropped rather than forwarded.
public enum TraceContext {
    /// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, ids not all zeros.
    public static func isValidTraceparent(_ value: String) -> Bool {
        let parts = value.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count >= 4, parts[0].count == 2, parts[0] != "ff", parts[1].count == 32, parts[2].count == 16, parts[3].count == 2 else { return false }
        // Version 00 has exactly four fields; later versions may append more.
        if parts[0] == "00" && parts.count != 4 { return false }
        let hex = Set("0123456789abcdef")
        guard parts.prefix(4).allSatisfy({ $0.allSatisfy(hex.contains) }) else { return false }
        return parts[1].contains { $0 != "0" } && parts[2].contains { $0 != "0" }
    }

    /// The sampled flag of a valid `traceparent`: the caller's own decision to trace.
    public static func isSampled(_ traceparent: String) -> Bool {
        guard let flags = traceparent.split(separator: "-", omittingEmptySubsequences: false).dropFirst(3).first, let value = UInt8(flags, radix: 16) else {
            return false
        }
        return value & 0x01 == 0x01
    }
}
