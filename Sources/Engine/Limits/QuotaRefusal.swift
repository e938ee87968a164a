/// Which limit of a subject refused a request, with the figures its message names: one wording
/// for every quota store (in memory, or shared through Redis).
public enum QuotaRefusal: Sendable, Equatable {
    case requestsPerMinute(limit: Int, retryAfter: Duration?)
    case requestsPerDay(limit: Int, retryAfter: Duration?)
    /// `reserved`: what this request reserves (prompt estimate plus `max_tokens`).
    case tokensPerMinute(limit: Int, reserved: Int, retryAfter: Duration?)
    case concurrency(limit: Int)
    case dailyBudget(budget: Double, spent: Double, reserved: Double, request: Double)
    case monthlyBudget(budget: Double, spent: Double, reserved: Double, request: Double)
    /// The shared state that holds the limits could not be asked (Redis slow or gone).
    case stateUnavailable(detail: String)

    /// The refusal the client is answered with.
    public func rejection(of subject: QuotaSubject, report: RateLimitReport) -> QuotaRejection {
        QuotaRejection(kind: self.kind, message: self.message(subject), retryAfter: self.retryAfter, report: report)
    }

    var kind: QuotaRejection.Kind {
        switch self {
        case .requestsPerMinute, .requestsPerDay: .requests
        case .tokensPerMinute: .tokens
        case .concurrency: .concurrency
        case .dailyBudget, .monthlyBudget: .budget
        case .stateUnavailable: .unavailable
        }
    }

    var retryAfter: Duration? {
        switch self {
        case .requestsPerMinute(_, let retryAfter), .requestsPerDay(_, let retryAfter), .tokensPerMinute(_, _, let retryAfter): retryAfter
        case .concurrency, .stateUnavailable: .seconds(1)
        case .dailyBudget, .monthlyBudget: nil
        }
    }

    private func message(_ subject: QuotaSubject) -> String {
        switch self {
        case .requestsPerMinute(let limit, _):
            return "Rate limit of \(limit) requests per minute reached for \(subject)."
        case .requestsPerDay(let limit, _):
            return "Rate limit of \(limit) requests per day reached for \(subject)."
        case .tokensPerMinute(let limit, let reserved, _):
            let detail = reserved > limit
                ? "this request needs \(reserved) tokens (prompt estimate + max_tokens), more than the whole limit; lower max_tokens"
                : "this request reserves \(reserved) tokens (prompt estimate + max_tokens)"
            return "Token limit of \(limit) tokens per minute reached for \(subject): \(detail)."
        case .concurrency(let limit):
            return "Concurrency limit of \(limit) requests in flight reached for \(subject)."
        case .dailyBudget(let budget, let spent, let reserved, let request):
            return "Daily budget of $\(Self.money(budget)) for \(subject) would be exceeded (spent $\(Self.money(spent)), reserved $\(Self.money(reserved)), this request up to $\(Self.money(request)))."
        case .monthlyBudget(let budget, let spent, let reserved, let request):
            return "Monthly budget of $\(Self.money(budget)) for \(subject) would be exceeded (spent $\(Self.money(spent)), reserved $\(Self.money(reserved)), this request up to $\(Self.money(request)))."
        case .stateUnavailable(let detail):
            return "The limits of \(subject) are kept in the fleet's shared state, which did not answer (\(detail)); the request was refused (on_state_error: deny). Try again shortly."
        }
    }

    static func money(_ value: Double) -> String {
        let cents = (value * 10_000).rounded() / 10_000
        return "\(cents)"
    }
}
