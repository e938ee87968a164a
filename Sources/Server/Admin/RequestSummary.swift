import Engine
import Foundation
import Synchronization

/// One finished request, as the rolling windows, the metrics and the event stream see it.
struct RequestSummary: Sendable {
    var requestID: String
    /// GenAI operation name: "chat" or "embeddings".
    var operation: String
    /// The route that served it; nil when it never got that far.
    var route: String?
    var target: TargetKey?
    var status: Int
    /// Nil for a success.
    var failure: FaultDomain?
    var message: String?
    /// The failure's metric label (`error.type` on its span).
    var errorType: String?
    var latency: Duration
    var timeToFirstToken: Duration?
    var usage: Usage?
    /// Why the model stopped, when the answer said and it was read.
    var finishReason: String?
    var overhead: Duration?
    var caller: Caller = .anonymous
    /// The request's limits, whose reservation its end settles.
    var admission: Admission?
    /// What the answer cost (0 for failures and unknown prices).
    var costUSD = 0.0
    var attempts = 0
    /// hit | semantic-hit | miss | bypass
    var cache = "bypass"
    /// A miss whose semantic match the guard refused, and why.
    var cacheRefusal: SemanticGuard.Refusal?
    /// For a cache hit: what the answer would have cost upstream.
    var costSavedUSD = 0.0
    /// The request's spans, when it is traced.
    var trace: RequestTrace?
}

extension GatewayState {
    /// Accounts for a finished request: telemetry windows, Prometheus, and the live event stream
    /// (built only when someone listens).
    func finish(_ summary: RequestSummary) {
        if let trace = summary.trace {
            trace.finish(summary, providerKind: summary.target.flatMap { self.routing.upstreams[$0.provider]?.settings.kind })
        }
        var outcome = RequestOutcome(failure: summary.failure, latency: summary.latency, timeToFirstToken: summary.timeToFirstToken)
        outcome.inputTokens = summary.usage?.inputTokens ?? 0
        outcome.outputTokens = summary.usage?.outputTokens ?? 0
        outcome.costUSD = summary.costUSD
        let second = self.telemetrySecond
        self.telemetry.withLock { $0.record(outcome, route: summary.route, target: summary.target, at: second) }
        self.metrics.record(summary)
        self.account(summary)
        if summary.failure == .policy, let tenant = summary.caller.tenant {
            let rejection = AdminRejection(
                time: Date().timeIntervalSince1970, reason: summary.errorType ?? "policy", status: summary.status, message: summary.message ?? ""
            )
            let day = BudgetCalendar.shared.dayAndMonth().day
            self.rejections.withLock { $0.record(tenant: tenant, rejection, day: day) }
        }
        guard self.events.hasSubscribers else { return }
        var event = AdminEvent(kind: .request, message: summary.message ?? "ok")
        event.requestId = summary.requestID
        event.route = summary.route
        event.provider = summary.target?.provider
        event.model = summary.target?.model
        event.status = summary.status
        event.latencyMs = summary.latency.seconds * 1000
        event.failure = summary.failure?.rawValue
        self.events.publish(event)
    }
}

extension GatewayState {
    /// Settles the request's reservation to what it really used, and writes its ledger row.
    private func account(_ summary: RequestSummary) {
        if let ticket = summary.admission?.claimTicket() {
            let (day, month) = BudgetCalendar.shared.dayAndMonth()
            // A cache hit used no provider tokens.
            let tokens = summary.cache == "hit" || summary.cache == "semantic-hit" ? 0 : summary.usage?.totalTokens ?? 0
            self.quotas.settle(ticket, tokens: tokens, cost: summary.costUSD, at: .now, day: day, month: month)
        }
        let usage = summary.usage ?? Usage()
        self.ledger.append(LedgerRow(
            requestId: summary.requestID, at: Date().timeIntervalSince1970, tenant: summary.caller.tenant, keyId: summary.caller.key?.id,
            route: summary.route, provider: summary.target?.provider, model: summary.target?.model,
            outcome: summary.failure?.rawValue ?? "success", status: summary.status,
            inputTokens: usage.inputTokens, cachedTokens: usage.cachedInputTokens, outputTokens: usage.outputTokens,
            reasoningTokens: usage.reasoningTokens, costUsd: summary.costUSD, latencyMs: summary.latency.seconds * 1000,
            ttftMs: summary.timeToFirstToken.map { $0.seconds * 1000 }, cache: summary.cache, attempts: summary.attempts,
            costSavedUsd: summary.costSavedUSD, operation: summary.operation, cacheRefusal: summary.cacheRefusal?.rawValue
        ))
    }
}
