/// The one rule for numbers that come from outside: client requests, upstream answers and headers,
/// backends' load reports and stored rows. Each is read into a bounded range here, before any
/// arithmetic touches it, so that arithmetic on it cannot trap: a Swift trap ends every request and
/// stream in flight, whoever sent the number. `docs/security.md` lists the bounds and why.
///
/// Inside the bounds, sums and products of a few values cannot overflow `Int` (five token counts of
/// at most 10^9 add up to 5 × 10^9, far from 9.2 × 10^18); counters that grow for the life of the
/// process add with `addingSaturating` instead.
public enum UntrustedNumber {
    /// The most tokens one request, answer or ledger row may count: 10^9, hundreds of times the
    /// largest context window sold today. An upstream's larger count is clamped to it (the upstream
    /// is wrong, and its answer still reaches the client); a client's larger `max_tokens` is refused.
    public static let tokenCeiling = 1_000_000_000

    /// The longest an upstream's `retry-after` may rest a target: an hour. A larger value is a
    /// broken or hostile upstream, and resting a target for longer would take it out of service.
    public static let longestRetryAfter: Duration = .seconds(3_600)

    /// The most queued requests a backend's load report may claim: more than any server holds.
    public static let queueCeiling = 1_000_000

    /// A client's `max_tokens`-like parameter, which reservations add to and multiply by a price.
    /// - Parameter whole: the member as a whole number (saturated), nil when it is not one.
    /// - Throws: `invalidRequest` (400) unless it is within `1...tokenCeiling`: a negative limit would
    ///   undercut reservations, and 2^63 would trap them.
    public static func outputTokenLimit(_ whole: Int?, name: String) throws(GatewayError) -> Int {
        guard let whole, (1...Self.tokenCeiling).contains(whole) else {
            throw .invalidRequest("The '\(name)' parameter must be an integer from 1 to \(Self.tokenCeiling).", param: name)
        }
        return whole
    }

    /// A token count held to `0...tokenCeiling`.
    public static func tokens(_ count: Int) -> Int {
        min(max(count, 0), Self.tokenCeiling)
    }

    /// A token count from a stored or computed floating-point value (SQLite's `TOTAL`), held to
    /// `0...ceiling`; NaN counts as zero.
    public static func count(_ value: Double, ceiling: Int = Int.max) -> Int {
        guard value > 0 else { return 0 }
        // `Double(Int.max)` is 2^63: every value below the ceiling's Double converts without trapping.
        guard value < Double(ceiling) else { return ceiling }
        return Int(value)
    }

    /// Seconds (from a header or a stored row) as a duration in `0...longest`, rounded up to the
    /// millisecond; nil for a negative, NaN or non-number.
    public static func duration(seconds: Double, atMost longest: Duration = Self.longestRetryAfter) -> Duration? {
        guard seconds >= 0 else { return nil }
        let longestMilliseconds = Double(longest.components.seconds) * 1_000
        guard seconds * 1_000 < longestMilliseconds else { return longest }
        return .milliseconds(Int64((seconds * 1_000).rounded(.up)))
    }

    /// Whole seconds of `duration` rounded up, at least `floor`: for `Retry-After` and reset headers.
    /// Durations here are already bounded; the clamp keeps a future unbounded one from trapping.
    public static func wholeSeconds(_ duration: Duration, atLeast floor: Int = 0) -> Int {
        let seconds = duration.seconds.rounded(.up)
        guard seconds < 1e15 else { return Int(1e15) }
        return max(floor, seconds > 0 ? Int(seconds) : 0)
    }
}

extension Int {
    /// `self + other`, held at `Int.max` (or `Int.min`) instead of trapping: for totals kept for the
    /// life of the process, where bounded inputs still add up without end.
    public func addingSaturating(_ other: Int) -> Int {
        let (sum, overflow) = self.addingReportingOverflow(other)
        guard overflow else { return sum }
        return other > 0 ? Int.max : Int.min
    }
}
