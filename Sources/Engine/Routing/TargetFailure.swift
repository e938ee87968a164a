/// One failed attempt at a target, kept so an operator sees what went wrong there and whose fault it
/// was, even when another target then answered the request.
public struct TargetFailure: Sendable, Equatable {
    /// Failed attempts kept per target.
    public static let kept = 5
    /// A detail is cut here: it may quote an upstream's answer.
    static let longestDetail = 300

    public let at: ContinuousClock.Instant
    /// The failure's bounded label (`server_error`, `timeout`, `rate_limited`, …).
    public let kind: String
    public let faultDomain: FaultDomain
    public let detail: String

    public init(at: ContinuousClock.Instant, failure: AttemptFailure, detail: String) {
        self.at = at
        self.kind = failure.label
        self.faultDomain = failure.faultDomain
        self.detail = detail.count > Self.longestDetail ? String(detail.prefix(Self.longestDetail)) + "…" : detail
    }
}

extension AttemptFailure {
    /// Whose fault a failed attempt is: the provider's (it failed, refused or ran out), the gateway's
    /// (its own key for the provider was refused), or the caller's (the request is wrong anywhere).
    public var faultDomain: FaultDomain {
        switch self {
        case .connect, .timeout, .rateLimited, .quotaExhausted, .serverError: .provider
        case .credentials: .gateway
        case .contextTooLong, .caller: .caller
        }
    }
}
