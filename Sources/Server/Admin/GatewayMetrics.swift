import Engine
import Prometheus
import Synchronization

/// Prometheus metrics of one gateway (its own registry, so several gateways in one test process do
/// not mix). Names follow the OpenTelemetry GenAI conventions where they exist; label values come
/// only from the configuration (route aliases, provider ids) or small fixed sets, never from clients.
final class GatewayMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    /// Requests answered on the fast lane (the rest of the OpenAI chat traffic went through the framework).
    private let fastLaneRequests: Counter
    /// Requests the fast lane left to the framework lane, by reason.
    private let fastLaneSkips: [FastLaneSkip: Counter]
    private let overhead: ValueHistogram
    /// Client connections closed for a limit of `server` (by phase), and refused past `max_connections`.
    private let clientTimeouts: [ClientTimeout: Counter]
    private let refusedConnections: Counter
    private let openConnections: Gauge
    /// What became of finished spans, when tracing is on.
    private let spans: [SpanOutcomes.Outcome: Counter]

    init() {
        self.overhead = self.registry.makeValueHistogram(
            descriptor: MetricNameDescriptor(metricName: "switchyard_overhead", unitName: "seconds", helpText: "Time spent in the gateway itself, upstream waits excluded."),
            buckets: Self.overheadBuckets
        )
        self.clientTimeouts = Self.counters(
            in: self.registry, "switchyard_client_timeouts", label: "phase",
            help: "Client connections closed for sending too slowly (header, body) or staying idle between requests (idle)."
        )
        self.refusedConnections = self.registry.makeCounter(
            descriptor: MetricNameDescriptor(
                metricName: "switchyard_client_connections_refused", unitName: "total", helpText: "Client connections answered 503 past server.max_connections."
            )
        )
        self.openConnections = self.registry.makeGauge(
            descriptor: MetricNameDescriptor(metricName: "switchyard_client_connections", unitName: "", helpText: "Client connections open on the public listener.")
        )
        self.fastLaneRequests = self.registry.makeCounter(
            descriptor: MetricNameDescriptor(
                metricName: "switchyard_fast_lane_requests", unitName: "total", helpText: "Chat completions answered on the event loop's fast lane."
            )
        )
        self.fastLaneSkips = Self.counters(
            in: self.registry, "switchyard_fast_lane_skipped", label: "reason",
            help: "Requests the fast lane left to the framework lane (Hummingbird and AsyncHTTPClient), by reason."
        )
        self.spans = Self.counters(
            in: self.registry, "switchyard_trace_spans", label: "outcome",
            help: "Finished spans exported to the OTLP collector, dropped on a full queue, or lost with a failed export."
        )
    }

    /// A `…_total` counter for each value of a small fixed set, made up front so every series shows from the start.
    private static func counters<Value: CaseIterable & RawRepresentable & Hashable>(
        in registry: PrometheusCollectorRegistry, _ name: String, label: String, help: String
    ) -> [Value: Counter] where Value.RawValue == String {
        Dictionary(uniqueKeysWithValues: Value.allCases.map { value in
            (value, registry.makeCounter(
                descriptor: MetricNameDescriptor(metricName: name, unitName: "total", helpText: help), labels: [(label, value.rawValue)]
            ))
        })
    }

    func recordSpans(_ outcome: SpanOutcomes.Outcome, count: Int) {
        self.spans[outcome]?.increment(by: Int64(count))
    }

    /// Seconds, for request durations and time to first token.
    static let durationBuckets: [Double] = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
    /// Tokens, the GenAI conventions' advice: powers of 4.
    static let tokenBuckets: [Double] = [1, 4, 16, 64, 256, 1_024, 4_096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304, 16_777_216, 67_108_864]
    /// The gateway's own time: microseconds to tens of milliseconds.
    static let overheadBuckets: [Double] = [0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05]

    func recordFastLane() {
        self.fastLaneRequests.increment()
    }

    func recordFastLaneSkip(_ reason: FastLaneSkip) {
        self.fastLaneSkips[reason]?.increment()
    }

    func recordClientTimeout(_ timeout: ClientTimeout) {
        self.clientTimeouts[timeout]?.increment()
    }

    func recordRefusedConnection() {
        self.refusedConnections.increment()
    }

    /// The series one kind of finished request feeds, made once: the registry's `make…` checks
    /// names and labels and takes its lock on every call, which cost 5 % of a fast-lane request.
    private struct RequestSeries: Hashable {
        let operation: String
        let route: String
        let provider: String
        let failure: FaultDomain?
        let cache: String
        /// Which of the optional series this kind of request feeds (a series appears once it has a value).
        let streamed: Bool
        let hasUsage: Bool
        let costly: Bool
        let saved: Bool
    }

    /// A class: a request takes its series out of the lock's dictionary, one retain rather than eight.
    private final class SeriesHandles: Sendable {
        init(
            requests: Counter, duration: ValueHistogram, timeToFirstToken: ValueHistogram?, inputTokens: ValueHistogram?, outputTokens: ValueHistogram?,
            cost: Counter?, cacheLookups: Counter?, cacheSaved: Counter?
        ) {
            self.requests = requests
            self.duration = duration
            self.timeToFirstToken = timeToFirstToken
            self.inputTokens = inputTokens
            self.outputTokens = outputTokens
            self.cost = cost
            self.cacheLookups = cacheLookups
            self.cacheSaved = cacheSaved
        }

        let requests: Counter
        let duration: ValueHistogram
        let timeToFirstToken: ValueHistogram?
        let inputTokens: ValueHistogram?
        let outputTokens: ValueHistogram?
        let cost: Counter?
        let cacheLookups: Counter?
        let cacheSaved: Counter?
    }

    private let series = Mutex<[RequestSeries: SeriesHandles]>([:])
    /// Spend per tenant (names from the config and the key store, never from clients).
    private let tenantCosts = Mutex<[String: Counter]>([:])

    private func tenantCost(_ tenant: String) -> Counter {
        if let known = self.tenantCosts.withLock({ $0[tenant] }) { return known }
        let made = self.registry.makeCounter(
            descriptor: MetricNameDescriptor(metricName: "switchyard_tenant_cost_usd", unitName: "total", helpText: "What each tenant's answers cost, in US dollars."),
            labels: [("tenant", tenant)]
        )
        self.tenantCosts.withLock { $0[tenant] = made }
        return made
    }

    private func handles(_ key: RequestSeries) -> SeriesHandles {
        if let known = self.series.withLock({ $0[key] }) { return known }
        let made = self.makeHandles(key)
        self.series.withLock { $0[key] = made }
        return made
    }

    private func makeHandles(_ key: RequestSeries) -> SeriesHandles {
        let outcome = key.failure?.rawValue ?? "success"
        var durationLabels = [("gen_ai_operation_name", key.operation), ("gen_ai_request_model", key.route), ("gen_ai_provider_name", key.provider)]
        if let failure = key.failure { durationLabels.append(("error_type", failure.rawValue)) }
        let genAILabels = [("gen_ai_operation_name", key.operation), ("gen_ai_request_model", key.route), ("gen_ai_provider_name", key.provider)]
        let tokens = { (type: String) in
            self.registry.makeValueHistogram(
                descriptor: MetricNameDescriptor(metricName: "gen_ai_client_token_usage", unitName: "", helpText: "Tokens per request, by type (input, output)."),
                labels: genAILabels + [("gen_ai_token_type", type)],
                buckets: Self.tokenBuckets
            )
        }
        return SeriesHandles(
            requests: self.registry.makeCounter(
                descriptor: MetricNameDescriptor(metricName: "switchyard_requests", unitName: "total", helpText: "Requests by route, provider and outcome (success or the fault domain)."),
                labels: [("route", key.route), ("provider", key.provider), ("outcome", outcome)]
            ),
            duration: self.registry.makeValueHistogram(
                descriptor: MetricNameDescriptor(metricName: "gen_ai_server_request_duration", unitName: "seconds", helpText: "Time from request to the last byte of the answer."),
                labels: durationLabels,
                buckets: Self.durationBuckets
            ),
            timeToFirstToken: !key.streamed ? nil : self.registry.makeValueHistogram(
                descriptor: MetricNameDescriptor(metricName: "gen_ai_server_time_to_first_token", unitName: "seconds", helpText: "Time to the first chunk of a streamed answer."),
                labels: genAILabels,
                buckets: Self.durationBuckets
            ),
            inputTokens: key.hasUsage ? tokens("input") : nil,
            outputTokens: key.hasUsage ? tokens("output") : nil,
            cost: !key.costly ? nil : self.registry.makeCounter(
                descriptor: MetricNameDescriptor(metricName: "switchyard_cost_usd", unitName: "total", helpText: "What answers cost at their targets' prices, in US dollars."),
                labels: [("route", key.route), ("provider", key.provider)]
            ),
            cacheLookups: key.cache == CacheOutcome.bypass.rawValue ? nil : self.registry.makeCounter(
                descriptor: MetricNameDescriptor(metricName: "switchyard_cache_lookups", unitName: "total", helpText: "Cache lookups by route and result (hit, semantic-hit, miss)."),
                labels: [("route", key.route), ("result", key.cache)]
            ),
            cacheSaved: !key.saved ? nil : self.registry.makeCounter(
                descriptor: MetricNameDescriptor(metricName: "switchyard_cache_saved_usd", unitName: "total", helpText: "What cache hits would have cost upstream, in US dollars."),
                labels: [("route", key.route)]
            )
        )
    }

    /// One finished request.
    func record(_ summary: RequestSummary) {
        let handles = self.handles(RequestSeries(
            operation: summary.operation, route: summary.route ?? "none", provider: summary.target?.provider ?? "none", failure: summary.failure,
            cache: summary.cache, streamed: summary.timeToFirstToken != nil, hasUsage: summary.usage != nil, costly: summary.costUSD > 0,
            saved: summary.costSavedUSD > 0
        ))
        handles.requests.increment()
        handles.duration.record(summary.latency.seconds)
        if let firstToken = summary.timeToFirstToken { handles.timeToFirstToken?.record(firstToken.seconds) }
        if let usage = summary.usage {
            handles.inputTokens?.record(Double(usage.inputTokens))
            handles.outputTokens?.record(Double(usage.outputTokens))
        }
        handles.cost?.increment(by: summary.costUSD)
        if summary.costUSD > 0, let tenant = summary.caller.tenant { self.tenantCost(tenant).increment(by: summary.costUSD) }
        handles.cacheLookups?.increment()
        handles.cacheSaved?.increment(by: summary.costSavedUSD)
        if let overhead = summary.overhead { self.overhead.record(overhead.seconds) }
        if let refusal = summary.cacheRefusal {
            self.registry.makeCounter(
                descriptor: MetricNameDescriptor(
                    metricName: "switchyard_cache_guard_refusals", unitName: "total",
                    helpText: "Semantic matches the meaning check refused (the request went upstream), by route and reason."
                ),
                labels: [("route", summary.route ?? "none"), ("reason", refusal.rawValue)]
            ).increment()
        }
    }

    /// A call to a route's embedder that failed or was too slow (its request went on as a miss).
    func recordEmbeddingFailure(route: String, embedder: EmbedderSettings) {
        self.registry.makeCounter(
            descriptor: MetricNameDescriptor(metricName: "switchyard_cache_embedding_failures", unitName: "total", helpText: "Semantic-cache embedding calls that failed or timed out."),
            labels: [("route", route), ("provider", embedder.provider)]
        ).increment()
    }

    /// The text exposition, with the targets' current state set just before.
    /// - Parameter upstreams: the providers, whose TLS handshakes their session caches count.
    /// - Parameter sharedState: admissions Redis could not decide, denied and allowed (in a fleet).
    /// - Parameter ledger: the ledger's rows written and waiting.
    func exposition(
        targets: [TargetStatus], clientConnections: Int, upstreams: [String: UpstreamPool.Upstream], sharedState: (denied: Int, allowed: Int)?, ledger: AdminLedger
    ) -> [UInt8] {
        self.openConnections.set(to: Double(clientConnections))
        for status in targets {
            let labels = [("provider", status.target.provider), ("model", status.target.model)]
            let breaker: Double = switch status.breaker {
            case "open": 2
            case "half_open": 1
            default: 0
            }
            self.registry.makeGauge(
                descriptor: MetricNameDescriptor(metricName: "switchyard_breaker_state", unitName: "", helpText: "Circuit breaker per target: 0 closed, 1 half-open, 2 open."),
                labels: labels
            ).set(to: breaker)
            self.registry.makeGauge(
                descriptor: MetricNameDescriptor(metricName: "switchyard_target_available", unitName: "", helpText: "1 when the target takes new requests (not drained, resting or broken)."),
                labels: labels
            ).set(to: status.unavailable == nil ? 1 : 0)
            self.registry.makeGauge(
                descriptor: MetricNameDescriptor(metricName: "switchyard_target_in_flight", unitName: "", helpText: "Requests the gateway has in flight to the target."),
                labels: labels
            ).set(to: Double(status.inFlight))
        }
        return self.registry.emitToBuffer() + Self.tlsHandshakes(upstreams) + Self.sharedStateFailures(sharedState) + Self.ledger(ledger)
    }

    /// The ledger's progress: rows written, rows waiting (in memory, or journalled on this replica's
    /// disk while a shared database is away) and the age of the oldest waiting row.
    private static func ledger(_ ledger: AdminLedger) -> [UInt8] {
        let text = """
            # HELP switchyard_ledger_rows_written_total Ledger rows written to the database by this replica.
            # TYPE switchyard_ledger_rows_written_total counter
            switchyard_ledger_rows_written_total \(ledger.rowsWritten)
            # HELP switchyard_ledger_backlog_rows Ledger rows not yet in the database: queued in memory, or journalled on disk.
            # TYPE switchyard_ledger_backlog_rows gauge
            switchyard_ledger_backlog_rows{place="queue"} \(ledger.rowsQueued)
            switchyard_ledger_backlog_rows{place="journal"} \(ledger.rowsJournalled)
            # HELP switchyard_ledger_lag_seconds Age of the oldest ledger row not yet in the database (0 when none waits).
            # TYPE switchyard_ledger_lag_seconds gauge
            switchyard_ledger_lag_seconds \(ledger.secondsBehind)
            # HELP switchyard_ledger_database_up 0 while the shared database does not take ledger rows.
            # TYPE switchyard_ledger_database_up gauge
            switchyard_ledger_database_up \(ledger.databaseDown ? 0 : 1)

            """
        return Array(text.utf8)
    }

    /// `switchyard_shared_state_unavailable_total{on_error}`: admissions Redis did not answer in time,
    /// refused (`deny`) or let through unlimited (`allow`).
    private static func sharedStateFailures(_ counts: (denied: Int, allowed: Int)?) -> [UInt8] {
        guard let counts else { return [] }
        let text = """
            # HELP switchyard_shared_state_unavailable_total Admissions the fleet's shared state (Redis) did not answer in time, by what on_error made of them.
            # TYPE switchyard_shared_state_unavailable_total counter
            switchyard_shared_state_unavailable_total{on_error="deny"} \(counts.denied)
            switchyard_shared_state_unavailable_total{on_error="allow"} \(counts.allowed)

            """
        return Array(text.utf8)
    }

    /// `switchyard_upstream_tls_handshakes_total{provider, resumed}`, from the counts each provider's
    /// session cache keeps (the handshake ends in BoringSSL, outside any registry's reach). A reload
    /// that changes a provider starts its counts again, which Prometheus reads as a counter reset.
    private static func tlsHandshakes(_ upstreams: [String: UpstreamPool.Upstream]) -> [UInt8] {
        let counted = upstreams.compactMap { id, upstream in upstream.tlsSessions.map { (id, $0.handshakes) } }.sorted { $0.0 < $1.0 }
        guard !counted.isEmpty else { return [] }
        var text = "# HELP switchyard_upstream_tls_handshakes_total TLS handshakes with https upstreams: full, or resuming a session.\n"
        text += "# TYPE switchyard_upstream_tls_handshakes_total counter\n"
        for (provider, handshakes) in counted {
            let label = provider.flatMap { character -> [Character] in
                switch character {
                case "\\", "\"": ["\\", character]
                case "\n": ["\\", "n"]
                default: [character]
                }
            }.map(String.init).joined()
            text += "switchyard_upstream_tls_handshakes_total{provider=\"\(label)\",resumed=\"false\"} \(handshakes.full)\n"
            text += "switchyard_upstream_tls_handshakes_total{provider=\"\(label)\",resumed=\"true\"} \(handshakes.resumed)\n"
        }
        return Array(text.utf8)
    }
}
