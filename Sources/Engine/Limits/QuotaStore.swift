import Synchronization

/// Where limits and budgets are kept. In memory for one process now; a shared implementation (Redis,
/// one round trip a request) lets several replicas enforce the same limits.
public protocol QuotaStore: Sendable {
    func admit(_ request: AdmissionRequest, at now: ContinuousClock.Instant, day: String, month: String) async -> Result<AdmissionTicket, QuotaRejection>
    /// The same decision taken on the spot, for a caller that cannot wait (the event loop's fast lane);
    /// nil from a store that needs I/O to decide, whose requests take the asynchronous path.
    func admitNow(_ request: AdmissionRequest, at now: ContinuousClock.Instant, day: String, month: String) -> Result<AdmissionTicket, QuotaRejection>?
    /// Never waits: a store that needs I/O to settle queues it, so an answer is never held up by its accounting.
    func settle(_ ticket: AdmissionTicket, tokens: Int, cost: Double, at now: ContinuousClock.Instant, day: String, month: String)
    func usage(of subject: QuotaSubject) async -> QuotaBook.Usage?
}

/// The single-process store: a `QuotaBook` behind a lock. Admission is atomic across every limit of
/// a request, so concurrent requests can never together pass a limit or a budget.
public final class InMemoryQuotaStore: QuotaStore {
    private let book = Mutex(QuotaBook())

    public init() {}

    public func admit(_ request: AdmissionRequest, at now: ContinuousClock.Instant, day: String, month: String) async -> Result<AdmissionTicket, QuotaRejection> {
        self.book.withLock { $0.admit(request, at: now, day: day, month: month) }
    }

    public func admitNow(_ request: AdmissionRequest, at now: ContinuousClock.Instant, day: String, month: String) -> Result<AdmissionTicket, QuotaRejection>? {
        self.book.withLock { $0.admit(request, at: now, day: day, month: month) }
    }

    public func settle(_ ticket: AdmissionTicket, tokens: Int, cost: Double, at now: ContinuousClock.Instant, day: String, month: String) {
        self.book.withLock { $0.settle(ticket, tokens: tokens, cost: cost, at: now, day: day, month: month) }
    }

    public func usage(of subject: QuotaSubject) async -> QuotaBook.Usage? {
        self.book.withLock { $0.usage(of: subject) }
    }

    /// Spend already in the ledger, loaded at start so budgets survive a restart.
    public func preload(_ subject: QuotaSubject, spentToday: Double, spentThisMonth: Double, requestsToday: Int, tokensToday: Int, day: String, month: String) {
        self.book.withLock {
            $0.preload(subject, spentToday: spentToday, spentThisMonth: spentThisMonth, requestsToday: requestsToday, tokensToday: tokensToday, day: day, month: month)
        }
    }
}
