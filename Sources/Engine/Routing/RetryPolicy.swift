import Foundation

/// `routes.<alias>.retry:` — how hard one request tries before it gives up.
public struct RetryPolicy: Sendable, Equatable {
    /// Upstream attempts per request, the first included (hedges count too).
    public var attempts: Int
    /// Full-jitter exponential backoff before trying the same target again: a random wait in
    /// `0 ..< min(maxBackoff, backoff × 2^n)`.
    public var backoff: Duration
    public var maxBackoff: Duration
    /// No attempt starts, and no wait runs, past this long after the request arrived.
    public var deadline: Duration
    /// The longest `Retry-After` the gateway waits out itself when no other target can serve;
    /// longer ones go back to the client as a 429 with the header.
    public var maxRetryAfter: Duration

    public init(
        attempts: Int = 3,
        backoff: Duration = .milliseconds(100),
        maxBackoff: Duration = .seconds(2),
        deadline: Duration = .seconds(600),
        maxRetryAfter: Duration = .seconds(10)
    ) {
        self.attempts = attempts
        self.backoff = backoff
        self.maxBackoff = maxBackoff
        self.deadline = deadline
        self.maxRetryAfter = maxRetryAfter
    }

    /// The wait before retry number `retry` (0 = the first retry) of the same target.
    /// - Parameter random: a number in 0..<1.
    public func backoff(retry: Int, random: Double) -> Duration {
        var ceiling = self.backoff
        for _ in 0..<min(retry, 30) where ceiling < self.maxBackoff { ceiling = ceiling * 2 }
        return min(ceiling, self.maxBackoff) * min(max(random, 0), 1)
    }
}

/// Why one upstream attempt failed, in the terms the retry matrix decides on (docs/routing.md).
public enum AttemptFailure: Sendable, Equatable {
    /// The connection failed without an answer (refused, reset, or closed after the request went
    /// out): another target is tried at once, this one not again, so a request it may have acted on
    /// is never sent to it twice.
    case connect
    /// A timeout fired before the first byte.
    case timeout
    /// 429: the target rests for `retryAfter` (or a default) and the request moves on.
    case rateLimited(retryAfter: Duration?)
    /// OpenAI's `insufficient_quota`: the account is out of credit, which no retry fixes.
    case quotaExhausted
    /// The prompt does not fit the model's context window.
    case contextTooLong
    /// 5xx, Anthropic 529, a broken body or a stream that died before its first byte.
    case serverError
    /// 401/403: the provider refused the gateway's key.
    case credentials
    /// Any other 4xx: the request itself is wrong, and would be wrong anywhere.
    case caller

    /// How long a 429 without a usable `Retry-After` rests its target.
    public static let defaultRateLimitRest = Duration.seconds(1)
    /// How long a target out of quota rests: the account needs a human.
    public static let quotaRest = Duration.seconds(300)

    /// Classifies a failed attempt.
    /// - Parameters:
    ///   - error: the gateway's view of the failure.
    ///   - upstreamCode: `error.code` or `error.type` of the provider's error body, when there was one.
    ///   - retryAfter: parsed from `retry-after-ms` / `retry-after`.
    public static func classify(_ error: GatewayError, upstreamCode: String? = nil, retryAfter: Duration? = nil) -> AttemptFailure {
        switch error.code {
        case .upstreamUnreachable: return .connect
        case .upstreamTimeout: return .timeout
        case .upstreamCredentials: return .credentials
        case .upstreamMalformed, .streamInterrupted, .noHealthyTarget, .internalFailure: return .serverError
        case .upstreamStatus:
            let status = error.upstreamStatus ?? 502
            if upstreamCode == "insufficient_quota" { return .quotaExhausted }
            if upstreamCode == "context_length_exceeded" || Self.saysContextTooLong(error.message) { return .contextTooLong }
            if status == 429 { return .rateLimited(retryAfter: retryAfter) }
            if status == 408 || status == 409 || status >= 500 { return .serverError }
            return .caller
        default:
            return .caller
        }
    }

    /// Providers word it differently; these are the phrasings of OpenAI, vLLM, Anthropic and Gemini.
    static func saysContextTooLong(_ message: String) -> Bool {
        let text = message.lowercased()
        return text.contains("maximum context length") || text.contains("context_length_exceeded")
            || text.contains("prompt is too long") || text.contains("exceeds the maximum number of tokens")
            || text.contains("context window")
    }

    /// Whether the target should count this against its circuit breaker: rate limits and quota have
    /// their own rests, and a caller's mistake says nothing about the target's health.
    public var countsAgainstTarget: Bool {
        switch self {
        case .connect, .timeout, .serverError, .credentials: return true
        case .rateLimited, .quotaExhausted, .contextTooLong, .caller: return false
        }
    }

    /// How long the target sits out after this failure, beyond its breaker.
    public var rest: Duration? {
        switch self {
        case .rateLimited(let retryAfter): return retryAfter ?? Self.defaultRateLimitRest
        case .quotaExhausted: return Self.quotaRest
        default: return nil
        }
    }

    /// Whether the same target may be tried again within this request (after a backoff).
    var mayRetrySameTarget: Bool { self == .serverError }

    /// A bounded label for logs and metrics.
    public var label: String {
        switch self {
        case .connect: return "connect"
        case .timeout: return "timeout"
        case .rateLimited: return "rate_limited"
        case .quotaExhausted: return "quota_exhausted"
        case .contextTooLong: return "context_too_long"
        case .serverError: return "server_error"
        case .credentials: return "credentials"
        case .caller: return "caller"
        }
    }
}

/// `retry-after-ms` (milliseconds, OpenAI) wins over `retry-after` (seconds or an HTTP date); either
/// is held to `UntrustedNumber.longestRetryAfter`.
public enum RetryAfter {
    public static func parse(milliseconds: String?, header: String?, now: Date = Date()) -> Duration? {
        if let text = milliseconds?.trimmingCharacters(in: .whitespaces), let value = Double(text),
            let rest = UntrustedNumber.duration(seconds: value / 1_000) {
            return rest
        }
        guard let text = header?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
        if let seconds = Double(text) { return UntrustedNumber.duration(seconds: seconds) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: text) else { return nil }
        return UntrustedNumber.duration(seconds: max(0, date.timeIntervalSince(now)))
    }
}
