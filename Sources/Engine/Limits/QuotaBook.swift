/// Whose limits and budgets a request counts against.
public struct QuotaSubject: Hashable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable { case tenant, key }
    public let kind: Kind
    public let id: String

    public init(_ kind: Kind, _ id: String) {
        self.kind = kind
        self.id = id
    }

    public var description: String { "\(self.kind.rawValue) '\(self.id)'" }
}

/// What admission needs to know about a request.
public struct AdmissionRequest: Sendable {
    /// The tenant's and the key's limits; the stricter wins because every one must pass.
    public var subjects: [(QuotaSubject, LimitSettings)]
    /// Estimated prompt tokens plus `max_tokens`: reserved against tokens-per-minute.
    public var reservedTokens: Int
    /// The most the request can cost at the dearest target it may reach: reserved against budgets.
    public var reservedCost: Double

    public init(subjects: [(QuotaSubject, LimitSettings)], reservedTokens: Int, reservedCost: Double) {
        self.subjects = subjects
        self.reservedTokens = reservedTokens
        self.reservedCost = reservedCost
    }
}

/// An admitted request's hold on its limits, settled once when its answer is known.
public struct AdmissionTicket: Sendable, Equatable {
    public let subjects: [QuotaSubject]
    public let reservedTokens: Int
    public let reservedCost: Double
    /// What the `x-ratelimit-*` headers report: the tightest request and token limits.
    public let report: RateLimitReport
    /// The lease a shared store took for it (concurrency, reserved money), freed when it settles.
    public let lease: String?
    /// Each subject's tokens per minute, which its settlement gives back to.
    public let tokensPerMinute: [Int?]

    public init(subjects: [QuotaSubject], reservedTokens: Int, reservedCost: Double, report: RateLimitReport, lease: String? = nil, tokensPerMinute: [Int?] = []) {
        self.subjects = subjects
        self.reservedTokens = reservedTokens
        self.reservedCost = reservedCost
        self.report = report
        self.lease = lease
        self.tokensPerMinute = tokensPerMinute
    }
}

public struct RateLimitReport: Sendable, Equatable {
    public var requests: LimitDecision?
    public var tokens: LimitDecision?

    public init(requests: LimitDecision? = nil, tokens: LimitDecision? = nil) {
        self.requests = requests
        self.tokens = tokens
    }

    /// Keeps the decision with less room left.
    mutating func tighten(requests: LimitDecision?, tokens: LimitDecision?) {
        if let requests, self.requests.map({ requests.remaining < $0.remaining }) ?? true { self.requests = requests }
        if let tokens, self.tokens.map({ tokens.remaining < $0.remaining }) ?? true { self.tokens = tokens }
    }
}

public struct QuotaRejection: Sendable, Equatable, Error {
    public enum Kind: String, Sendable {
        case requests, tokens, concurrency, budget
        /// The shared state could not be asked.
        case unavailable
    }
    public let kind: Kind
    /// Names the limit and its holder, for the client.
    public let message: String
    public let retryAfter: Duration?
    public let report: RateLimitReport
}

/// Every subject's limits and spend as one value: admission checks all of a request's limits and
/// takes them only if all pass (no half-taken limits), settlement returns what was not used. The
/// in-memory `QuotaStore` keeps it behind a lock; time and the calendar day come in as arguments.
public struct QuotaBook: Sendable {
    struct SubjectState: Sendable {
        var perMinute: GCRA?
        var perDay: GCRA?
        var tokens: TokenBucket?
        var inFlight = 0
        var reservedCost = 0.0
        var day = ""
        var month = ""
        var spentToday = 0.0
        var spentThisMonth = 0.0
        var rejections = 0
        var requestsToday = 0
        var tokensToday = 0
    }

    private var subjects: [QuotaSubject: SubjectState] = [:]

    public init() {}

    /// Spend already recorded (from the ledger at startup), so budgets survive a restart.
    public mutating func preload(_ subject: QuotaSubject, spentToday: Double, spentThisMonth: Double, requestsToday: Int, tokensToday: Int, day: String, month: String) {
        var state = self.subjects[subject] ?? SubjectState()
        state.day = day
        state.month = month
        state.spentToday = spentToday
        state.spentThisMonth = spentThisMonth
        state.requestsToday = requestsToday
        state.tokensToday = tokensToday
        self.subjects[subject] = state
    }

    /// - Parameters:
    ///   - day: the UTC calendar day (`2026-11-25`), where daily budgets restart.
    ///   - month: the UTC month (`2026-11`).
    public mutating func admit(_ request: AdmissionRequest, at now: ContinuousClock.Instant, day: String, month: String) -> Result<AdmissionTicket, QuotaRejection> {
        var report = RateLimitReport()
        var states: [QuotaSubject: SubjectState] = [:]
        for (subject, limits) in request.subjects {
            var state = self.prepared(subject, limits, day: day, month: month)
            let minute = state.perMinute?.check(at: now)
            let daily = state.perDay?.check(at: now)
            let tokens = state.tokens?.check(request.reservedTokens, at: now)
            report.tighten(requests: [minute, daily].compactMap { $0 }.min { $0.remaining < $1.remaining }, tokens: tokens)
            if let refusal = self.refusal(limits, state: state, request: request, minute: minute, daily: daily, tokens: tokens) {
                state.rejections += 1
                self.subjects[subject] = state
                return .failure(refusal.rejection(of: subject, report: report))
            }
            states[subject] = state
        }
        for (subject, var state) in states {
            state.perMinute?.take(at: now)
            state.perDay?.take(at: now)
            state.tokens?.take(request.reservedTokens, at: now)
            state.inFlight += 1
            state.reservedCost += request.reservedCost
            state.requestsToday += 1
            self.subjects[subject] = state
        }
        return .success(AdmissionTicket(subjects: request.subjects.map(\.0), reservedTokens: request.reservedTokens, reservedCost: request.reservedCost, report: report))
    }

    /// The answer is known: tokens and money move from reserved to actual, the concurrency slot frees.
    public mutating func settle(_ ticket: AdmissionTicket, tokens actualTokens: Int, cost actualCost: Double, at now: ContinuousClock.Instant, day: String, month: String) {
        for subject in ticket.subjects {
            guard var state = self.subjects[subject] else { continue }
            self.roll(&state, day: day, month: month)
            state.tokens?.settle(reserved: ticket.reservedTokens, actual: actualTokens, at: now)
            state.inFlight = max(0, state.inFlight - 1)
            state.reservedCost = max(0, state.reservedCost - ticket.reservedCost)
            state.spentToday += actualCost
            state.spentThisMonth += actualCost
            state.tokensToday = state.tokensToday.addingSaturating(actualTokens)
            self.subjects[subject] = state
        }
    }

    public struct Usage: Sendable, Equatable {
        public var spentToday: Double
        public var spentThisMonth: Double
        public var reserved: Double
        public var inFlight: Int
        public var rejections: Int
        public var requestsToday: Int
        public var tokensToday: Int

        public init(spentToday: Double, spentThisMonth: Double, reserved: Double, inFlight: Int, rejections: Int, requestsToday: Int, tokensToday: Int) {
            self.spentToday = spentToday
            self.spentThisMonth = spentThisMonth
            self.reserved = reserved
            self.inFlight = inFlight
            self.rejections = rejections
            self.requestsToday = requestsToday
            self.tokensToday = tokensToday
        }
    }

    public func usage(of subject: QuotaSubject) -> Usage? {
        self.subjects[subject].map {
            Usage(
                spentToday: $0.spentToday, spentThisMonth: $0.spentThisMonth, reserved: $0.reservedCost, inFlight: $0.inFlight,
                rejections: $0.rejections, requestsToday: $0.requestsToday, tokensToday: $0.tokensToday
            )
        }
    }

    // MARK: -

    /// The subject's state with limiters matching its current settings and budgets rolled to today.
    private func prepared(_ subject: QuotaSubject, _ limits: LimitSettings, day: String, month: String) -> SubjectState {
        var state = self.subjects[subject] ?? SubjectState()
        if state.day.isEmpty { (state.day, state.month) = (day, month) }
        self.roll(&state, day: day, month: month)
        if let rpm = limits.requestsPerMinute {
            if state.perMinute?.limit != rpm { state.perMinute = GCRA(limit: rpm, period: .seconds(60)) }
        } else {
            state.perMinute = nil
        }
        if let rpd = limits.requestsPerDay {
            if state.perDay?.limit != rpd { state.perDay = GCRA(limit: rpd, period: .seconds(86_400)) }
        } else {
            state.perDay = nil
        }
        if let tpm = limits.tokensPerMinute {
            if state.tokens?.capacity != tpm { state.tokens = TokenBucket(capacity: tpm, period: .seconds(60)) }
        } else {
            state.tokens = nil
        }
        return state
    }

    private func roll(_ state: inout SubjectState, day: String, month: String) {
        if state.day != day {
            state.day = day
            state.spentToday = 0
            state.requestsToday = 0
            state.tokensToday = 0
        }
        if state.month != month {
            state.month = month
            state.spentThisMonth = 0
        }
    }

    private func refusal(
        _ limits: LimitSettings, state: SubjectState, request: AdmissionRequest, minute: LimitDecision?, daily: LimitDecision?, tokens: LimitDecision?
    ) -> QuotaRefusal? {
        if let minute, !minute.allowed { return .requestsPerMinute(limit: minute.limit, retryAfter: minute.retryAfter) }
        if let daily, !daily.allowed { return .requestsPerDay(limit: daily.limit, retryAfter: daily.retryAfter) }
        if let tokens, !tokens.allowed { return .tokensPerMinute(limit: tokens.limit, reserved: request.reservedTokens, retryAfter: tokens.retryAfter) }
        if let concurrency = limits.concurrency, state.inFlight >= concurrency { return .concurrency(limit: concurrency) }
        if let budget = limits.dailyBudgetUSD, state.spentToday + state.reservedCost + request.reservedCost > budget {
            return .dailyBudget(budget: budget, spent: state.spentToday, reserved: state.reservedCost, request: request.reservedCost)
        }
        if let budget = limits.monthlyBudgetUSD, state.spentThisMonth + state.reservedCost + request.reservedCost > budget {
            return .monthlyBudget(budget: budget, spent: state.spentThisMonth, reserved: state.reservedCost, request: request.reservedCost)
        }
        return nil
    }
}
