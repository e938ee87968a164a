import Logging

/// What became of finished spans: exported, dropped on a full queue, or lost with a failed export.
/// Counted in `switchyard_trace_spans_total{outcome}`; a failing collector is also logged, once a minute.
struct SpanOutcomes: Sendable {
    enum Outcome: String, CaseIterable, Sendable {
        case exported
        /// The queue was full (`max_queue_size`): the collector is slower than the traffic.
        case dropped
        /// The collector refused the batch, or did not answer within `export_timeout`.
        case failed
    }

    let metrics: GatewayMetrics
    let logger: Logger
    private let failures = ThrottledWarning(every: .seconds(60))

    init(metrics: GatewayMetrics, logger: Logger) {
        self.metrics = metrics
        self.logger = logger
    }

    func count(_ outcome: Outcome, spans: Int, detail: String?) {
        guard spans > 0 else { return }
        self.metrics.recordSpans(outcome, count: spans)
        guard outcome != .exported else { return }
        self.failures.note { batches in
            self.logger.warning(
                "spans could not be exported; requests are not affected",
                metadata: ["gw.outcome": "\(outcome.rawValue)", "gw.batches": "\(batches)", "gw.detail": "\(detail ?? "-")"]
            )
        }
    }
}

/// swift-otel's diagnostic log, read for its batch lines (it has no other report of what it exported
/// or dropped); its other warnings and errors go to the gateway's log, its debug lines nowhere.
struct SpanOutcomeLogHandler: LogHandler {
    let outcomes: SpanOutcomes
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .debug

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let message = event.message.description
        func number(_ key: String) -> Int {
            (event.metadata?[key] ?? self.metadata[key]).flatMap { Int("\($0)") } ?? 0
        }
        switch message {
        case "Exported batch.": self.outcomes.count(.exported, spans: number("batch_size"), detail: nil)
        case "Failed to export batch.":
            self.outcomes.count(.failed, spans: number("batch_size"), detail: event.error.map { "\($0)" } ?? event.metadata?["error"].map { "\($0)" })
        case let text where text.hasPrefix("Spans were dropped"): self.outcomes.count(.dropped, spans: number("dropped_count"), detail: "the span queue was full")
        default:
            guard event.level >= .warning else { return }
            self.outcomes.logger.log(level: event.level, "tracing: \(message)", metadata: event.metadata)
        }
    }
}
