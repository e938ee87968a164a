#if canImport(Glibc)
import Glibc
#endif
import Engine
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization

/// A request's standing with its limits: who it is, and the reservation to settle when it ends.
struct Admission: Sendable {
    let caller: Caller
    let ticket: AdmissionTicket?
    /// Present with a ticket: whichever path ends the request first (its answer, or a failure after
    /// admission) settles the reservation, and only that one.
    let settlement: SettlementClaim?

    init(caller: Caller, ticket: AdmissionTicket?) {
        self.caller = caller
        self.ticket = ticket
        self.settlement = ticket == nil ? nil : SettlementClaim()
    }

    /// The ticket, for the one caller that gets to settle it.
    func claimTicket() -> AdmissionTicket? {
        guard let ticket = self.ticket, self.settlement?.claim() == true else { return nil }
        return ticket
    }
}

final class SettlementClaim: Sendable {
    private let claimed = Atomic<Bool>(false)

    func claim() -> Bool {
        !self.claimed.exchange(true, ordering: .acquiringAndReleasing)
    }
}

/// A failure after the request was admitted: its reservation must still be given back.
struct AdmittedFailure: Error {
    let error: any Error
    let admission: Admission
}

extension Admission {
    /// Runs what follows admission; a failure carries the admission out, so the reservation is settled.
    func guarding<Value>(_ work: () async throws -> Value) async throws -> Value {
        do {
            return try await work()
        } catch let failure as AdmittedFailure {
            throw failure
        } catch {
            throw AdmittedFailure(error: error, admission: self)
        }
    }
}

/// A request refused by a limit or budget, with what the `x-ratelimit-*` headers should say.
struct PolicyRefusal: Error {
    let error: GatewayError
    let report: RateLimitReport?
}

extension GatewayState {
    /// `max_tokens` assumed for the reservation when a request sets none: conservative, since the
    /// reservation is what keeps concurrent requests from overspending.
    static let assumedMaxTokens = 4_096

    /// The caller a request's `Authorization` (`Bearer …`) or `x-api-key` field names: its key's tenant,
    /// or anonymous where the config allows it. A key that looks like ours (`sk-sy-…`) is always
    /// checked, so a revoked key is never mistaken for anonymous use; other tokens (an SDK's
    /// placeholder) count as no key.
    func identify(authorization: String?, apiKey: String?) throws(GatewayError) -> Caller {
        // Only a virtual key is looked up (and copied out): any other credential is anonymous.
        guard let token = Self.virtualKey(authorization: authorization, apiKey: apiKey) else {
            guard self.server.anonymous else {
                throw .unauthorized("This gateway requires an API key: send 'Authorization: Bearer sk-sy-…' (or x-api-key).")
            }
            return .anonymous
        }
        guard let record = self.keys.record(for: token) else {
            throw .unauthorized("The API key \(token.prefix(12))… is not valid.")
        }
        if record.revokedAt != nil { throw .unauthorized("The API key \(record.prefix)… was revoked.") }
        if let expires = record.expiresAt, expires <= Date().timeIntervalSince1970 {
            throw .unauthorized("The API key \(record.prefix)… expired.")
        }
        return Caller(tenant: record.tenant, key: record)
    }

    /// `identify`, and for a key this replica does not know, a look in the shared database: a key made
    /// on another replica a moment ago works here at once, before its announcement arrives.
    func identifyLookingUp(_ request: Request) async throws(GatewayError) -> Caller {
        let (authorization, apiKey) = (request.headers[.authorization], request.headers[.apiKey])
        do {
            return try self.identify(authorization: authorization, apiKey: apiKey)
        } catch {
            guard self.database.isShared, let token = Self.virtualKey(authorization: authorization, apiKey: apiKey), self.keys.record(for: token) == nil,
                let record = await self.keyLookup.find(hash: KeyRing.hash(token))
            else { throw error }
            self.keys.upsert(record)
            return try self.identify(authorization: authorization, apiKey: apiKey)
        }
    }

    /// The credential of `Authorization: Bearer …` or `x-api-key`, when it is shaped as a virtual key.
    private static func virtualKey(authorization: String?, apiKey: String?) -> String? {
        var credential = Substring(authorization ?? apiKey ?? "")
        if authorization != nil, credential.utf8.starts(with: "Bearer ".utf8) {
            credential = credential[credential.utf8.index(credential.startIndex, offsetBy: 7)...]
        }
        credential = credential.trimmingSpaces
        return credential.utf8.starts(with: KeyRing.keyPrefix.utf8) ? String(credential) : nil
    }

    /// Checks the caller's models, then reserves its limits and budgets for `plan`: the estimate of
    /// prompt tokens plus `max_tokens`, and that many tokens' cost at the dearest target the plan may
    /// reach. All of the tenant's and the key's limits pass, or none is taken.
    /// - Throws: `PolicyRefusal` (403 model not allowed, 429 limits, 429 or 402 budgets).
    /// A traced request's admission is a span (with Redis's round trip under it when limits are shared),
    /// when its caller has a tenant whose limits it checks.
    func admit(_ caller: Caller, plan: FailoverPlan, routing: RoutingSnapshot, features: RequestFeatures, body: ByteBuffer) async throws -> Admission {
        let started = ContinuousClock.now
        let trace = RequestTrace.current
        var asked = false
        do {
            // A caller without a tenant has no limits: no admission to show.
            guard let request = try self.admissionRequest(caller, plan: plan, routing: routing, features: features) else {
                return Admission(caller: caller, ticket: nil)
            }
            let (day, month) = BudgetCalendar.shared.dayAndMonth()
            asked = self.quotas is RedisQuotaStore
            let admission = try self.admission(of: caller, await self.quotas.admit(request, at: .now, day: day, month: month))
            trace?.admitted(from: started, refusal: nil, throughRedis: asked)
            return admission
        } catch {
            trace?.admitted(from: started, refusal: (error as? PolicyRefusal)?.error ?? .internalFailure("admission: \(type(of: error))"), throughRedis: asked)
            throw error
        }
    }

    /// `admit` without waiting, for the event loop's fast lane: nil when the quota store cannot decide
    /// on the spot (the request then takes the asynchronous path, and is admitted there).
    func admitNow(_ caller: Caller, plan: FailoverPlan, routing: RoutingSnapshot, features: RequestFeatures) throws -> Admission? {
        guard let request = try self.admissionRequest(caller, plan: plan, routing: routing, features: features) else {
            return Admission(caller: caller, ticket: nil)
        }
        let (day, month) = BudgetCalendar.shared.dayAndMonth()
        guard let result = self.quotas.admitNow(request, at: .now, day: day, month: month) else { return nil }
        return try self.admission(of: caller, result)
    }

    /// `admit` for the fast lane when the quota store is Redis: a round trip over the event loop's own
    /// connection, answered on the loop (the admission, or a failed future with the `PolicyRefusal`).
    /// Nil when the store decides on the spot (use `admitNow`) or the loop has no connection ready.
    func admitOnLoop(_ caller: Caller, plan: FailoverPlan, routing: RoutingSnapshot, features: RequestFeatures, on eventLoop: any EventLoop) throws -> EventLoopFuture<Admission>? {
        guard let shared = self.quotas as? RedisQuotaStore else { return nil }
        guard let request = try self.admissionRequest(caller, plan: plan, routing: routing, features: features) else {
            return eventLoop.makeSucceededFuture(Admission(caller: caller, ticket: nil))
        }
        let (day, month) = BudgetCalendar.shared.dayAndMonth()
        return shared.admitOnLoop(request, day: day, month: month, on: eventLoop)?.flatMapThrowing { try self.admission(of: caller, $0) }
    }

    /// What the quota store is asked for a tenant's caller (nil for one without a tenant), once its
    /// models are checked.
    private func admissionRequest(_ caller: Caller, plan: FailoverPlan, routing: RoutingSnapshot, features: RequestFeatures) throws -> AdmissionRequest? {
        guard let tenantName = caller.tenant else { return nil }
        let tenant = routing.config.tenant(tenantName)
        let alias = plan.route.alias
        if let tenant, !tenant.models.isEmpty, !tenant.models.contains(where: { Glob.matches($0, alias) }) {
            throw PolicyRefusal(error: .modelNotAllowed(alias, holder: "tenant '\(tenantName)'"), report: nil)
        }
        if let key = caller.key, !key.modelGlobs.isEmpty, !key.modelGlobs.contains(where: { Glob.matches($0, alias) }) {
            throw PolicyRefusal(error: .modelNotAllowed(alias, holder: "key '\(key.name)'"), report: nil)
        }
        var subjects: [(QuotaSubject, LimitSettings)] = [(QuotaSubject(.tenant, tenantName), tenant?.limits ?? LimitSettings())]
        if let key = caller.key { subjects.append((QuotaSubject(.key, key.id), key.limits)) }

        let outputTokens = features.maxTokens ?? Self.assumedMaxTokens
        var worstCost = 0.0
        for candidate in plan.everyCandidate {
            guard let price = routing.price(of: candidate.target) else { continue }
            worstCost = max(worstCost, price.worstCase(promptTokens: features.promptTokens, maxOutputTokens: outputTokens))
        }
        return AdmissionRequest(subjects: subjects, reservedTokens: features.promptTokens + outputTokens, reservedCost: worstCost)
    }

    /// The store's answer as an admission, or the refusal to answer with.
    private func admission(of caller: Caller, _ result: Result<AdmissionTicket, QuotaRejection>) throws -> Admission {
        switch result {
        case .success(let ticket):
            return Admission(caller: caller, ticket: ticket)
        case .failure(let rejection):
            let retry = rejection.retryAfter.map { UntrustedNumber.wholeSeconds($0, atLeast: 1) }
            let error: GatewayError = switch rejection.kind {
            case .budget: .budgetExceeded(rejection.message, status: self.server.budgetStatus)
            case .unavailable: .stateUnavailable(rejection.message)
            default: .rateLimited(rejection.message, retryAfterSeconds: retry)
            }
            throw PolicyRefusal(error: error, report: rejection.report)
        }
    }
}

extension HTTPField.Name {
    /// Anthropic's (and many SDKs') header for the key.
    static let apiKey = HTTPField.Name("x-api-key")!
    /// Made once: a name is validated when it is made, and these go on every keyed answer.
    static let rateLimitRequests = (
        limit: HTTPField.Name("x-ratelimit-limit-requests")!, remaining: HTTPField.Name("x-ratelimit-remaining-requests")!,
        reset: HTTPField.Name("x-ratelimit-reset-requests")!
    )
    static let rateLimitTokens = (
        limit: HTTPField.Name("x-ratelimit-limit-tokens")!, remaining: HTTPField.Name("x-ratelimit-remaining-tokens")!,
        reset: HTTPField.Name("x-ratelimit-reset-tokens")!
    )
}

extension Substring {
    /// Without leading and trailing spaces and tabs (Foundation's `trimmingCharacters` costs a bridge to
    /// `NSString`, and walking `Character`s breaks graphemes; these are ASCII bytes).
    var trimmingSpaces: Substring {
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 }
        guard let first = self.utf8.firstIndex(where: { !isSpace($0) }), let last = self.utf8.lastIndex(where: { !isSpace($0) }) else { return "" }
        return self[first...last]
    }
}

extension ResponseFields {
    /// `x-ratelimit-limit-requests`, `-remaining-`, `-reset-` and the same for tokens, as OpenAI names them.
    mutating func setRateLimitHeaders(_ report: RateLimitReport?) {
        guard let report else { return }
        self.setRateLimitHeaders(HTTPField.Name.rateLimitRequests, report.requests)
        self.setRateLimitHeaders(HTTPField.Name.rateLimitTokens, report.tokens)
    }

    private mutating func setRateLimitHeaders(_ names: (limit: HTTPField.Name, remaining: HTTPField.Name, reset: HTTPField.Name), _ decision: LimitDecision?) {
        guard let decision else { return }
        self.set(names.limit, String(decision.limit))
        self.set(names.remaining, String(decision.remaining))
        self.set(names.reset, "\(UntrustedNumber.wholeSeconds(decision.reset))s")
    }
}

/// The UTC day (`2026-11-25`) and month (`2026-11`) that budgets count in, formatted once a second
/// rather than on every request.
final class BudgetCalendar: Sendable {
    static let shared = BudgetCalendar()
    private let cached = Mutex<(second: time_t, day: String, month: String)>((-1, "", ""))

    func dayAndMonth(at time: time_t = time(nil)) -> (day: String, month: String) {
        if let hit = self.cached.withLock({ $0.second == time ? ($0.day, $0.month) : nil }) { return hit }
        let fresh = Self.format(time)
        self.cached.withLock { $0 = (time, fresh.day, fresh.month) }
        return fresh
    }

    static func format(_ time: time_t) -> (day: String, month: String) {
        var moment = time
        var parts = tm()
        gmtime_r(&moment, &parts)
        let month = String(format: "%04d-%02d", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1)
        return (month + String(format: "-%02d", Int(parts.tm_mday)), month)
    }

    /// When the UTC day and month of `date` began, in seconds since 1970: the ledger's rows that count.
    static func starts(of date: Date) -> (day: Double, month: Double) {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC") ?? .current
        let day = calendar.startOfDay(for: date).timeIntervalSince1970
        let month = calendar.date(from: calendar.dateComponents([.year, .month], from: date))?.timeIntervalSince1970 ?? day
        return (day, month)
    }
}
