import Engine
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
    var latency: Duration
    var timeToFirstToken: Duration?
    var usage: Usage?
    var overhead: Duration?
}

extension GatewayState {
    /// Accounts for a finished request: telemetry windows, Prometheus, and the live event stream
    /// (built only when someone listens).
    func finish(_ summary: RequestSummary) {
        var outcome = RequestOutcome(failure: summary.failure, latency: summary.latency, timeToFirstToken: summary.timeToFirstToken)
        outcome.inputTokens = summary.usage?.inputTokens ?? 0
        outcome.outputTokens = summary.usage?.outputTokens ?? 0
        let second = self.telemetrySecond
        self.telemetry.withLock { $0.record(outcome, route: summary.route, target: summary.target, at: second) }
        self.metrics.record(summary)
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
