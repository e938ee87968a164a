import Engine
import Logging
import OTel
import ServiceLifecycle
import Tracing

/// The gateway's OpenTelemetry tracer: swift-otel's batching exporter over OTLP/HTTP, made from
/// `tracing:` and the `OTEL_*` variables. Spans are handed to a bounded queue and exported in the
/// background: a slow or dead collector costs spans (counted), never a request's time.
final class GatewayTracer: Sendable {
    let settings: TracingSettings
    private let tracer: any Tracer
    private let exporter: ServiceGroup
    private let outcomes: SpanOutcomes
    /// Decides each request before a span is made; the tracer then records every span it is asked for.
    private let sampler: TraceSampler
    private let draws = SamplingDraws()

    /// - Throws: what swift-otel refuses in the settings (an unusable certificate, say).
    init(_ settings: TracingSettings, metrics: GatewayMetrics, logger: Logger) throws {
        self.settings = settings
        self.sampler = TraceSampler(settings.sampler, ratio: settings.sampleRatio)
        let outcomes = SpanOutcomes(metrics: metrics, logger: logger)
        self.outcomes = outcomes
        var configuration = OTel.Configuration.default
        configuration.serviceName = settings.serviceName
        configuration.resourceAttributes = settings.resourceAttributes
        configuration.propagators = [.traceContext]
        configuration.metrics.enabled = false
        configuration.logs.enabled = false
        // Debug: the exporter's per-batch lines are how exported, dropped and failed spans are counted.
        configuration.diagnosticLogLevel = .debug
        configuration.diagnosticLogger = .custom(Logger(label: "switchyard.tracing") { _ in SpanOutcomeLogHandler(outcomes: outcomes) })
        configuration.traces.enabled = true
        configuration.traces.exporter = .otlp
        configuration.traces.sampler = .alwaysOn
        configuration.traces.batchSpanProcessor.maxQueueSize = settings.maxQueueSize
        configuration.traces.batchSpanProcessor.maxExportBatchSize = min(512, settings.maxQueueSize)
        configuration.traces.batchSpanProcessor.scheduleDelay = .seconds(1)
        configuration.traces.batchSpanProcessor.exportTimeout = settings.exportTimeout
        configuration.traces.otlpExporter.endpoint = settings.tracesURL
        configuration.traces.otlpExporter.timeout = settings.exportTimeout
        configuration.traces.otlpExporter.protocol = settings.wireProtocol == .json ? .httpJSON : .httpProtobuf
        configuration.traces.otlpExporter.headers = settings.headers.sorted { $0.key < $1.key }.map { ($0.key, $0.value.exposedValue) }
        let (tracer, service) = try OTel.makeTracingBackend(configuration: configuration)
        self.tracer = tracer
        self.exporter = ServiceGroup(configuration: .init(services: [service], logger: logger))
    }

    /// Runs the exporter until `shutDown`: apart from the service's own graceful shutdown, so spans of
    /// requests that finish while the listener drains are still sent.
    func run() async {
        do {
            try await self.exporter.run()
        } catch {
            self.outcomes.logger.warning("the trace exporter stopped", metadata: ["gw.error": "\(error)"])
        }
    }

    /// Exports what is queued (within the export timeout) and stops.
    func shutDown() async {
        await self.exporter.triggerGracefulShutdown()
    }

    /// The server span of a request that arrived at `started`, continuing the client's trace when its
    /// `traceparent` is valid. Nil when the sampler drops it: an unsampled request costs a draw.
    func startRequest(method: String, path: String, traceparent: String?, tracestate: String?, at started: ContinuousClock.Instant) -> RequestTrace? {
        let client = traceparent.flatMap { TraceContext.isValidTraceparent($0) ? $0 : nil }
        guard self.sampler.samples(parentSampled: client.map(TraceContext.isSampled), draw: self.draws.next()) else { return nil }
        var parent = InstrumentationContext.topLevel
        if let client {
            let carrier = TraceCarrier(traceparent: client, tracestate: tracestate)
            self.tracer.extract(carrier, into: &parent, using: TraceCarrier.Access())
        }
        let clock = TraceClock()
        let span = self.tracer.startSpan("\(method) \(path)", context: parent, ofKind: .server, at: clock.instant(started))
        guard span.isRecording else { return nil }
        span.updateAttributes { attributes in
            attributes["http.request.method"] = method
            attributes["http.route"] = path
            attributes["url.path"] = path
        }
        return RequestTrace(server: span, tracer: self, clock: clock, captureContent: self.settings.captureContent)
    }

    /// A span under `parent` from `start`.
    func startSpan(_ name: String, under parent: any Span, kind: SpanKind, at start: DefaultTracerClock.Instant) -> any Span {
        self.tracer.startSpan(name, context: parent.context, ofKind: kind, at: start)
    }

    /// The `traceparent` (and `tracestate`) an upstream is sent for `span`.
    func propagation(of span: any Span) -> TraceCarrier {
        var carrier = TraceCarrier(traceparent: nil, tracestate: nil)
        self.tracer.inject(span.context, into: &carrier, using: TraceCarrier.Access())
        return carrier
    }
}

/// The W3C trace context headers, as the tracer reads and writes them.
struct TraceCarrier: Sendable {
    var traceparent: String?
    var tracestate: String?

    struct Access: Extractor, Injector {
        func extract(key: String, from carrier: TraceCarrier) -> String? {
            switch key.lowercased() {
            case "traceparent": carrier.traceparent
            case "tracestate": carrier.tracestate
            default: nil
            }
        }

        func inject(_ value: String, forKey key: String, into carrier: inout TraceCarrier) {
            switch key.lowercased() {
            case "traceparent": carrier.traceparent = value
            case "tracestate": carrier.tracestate = value.isEmpty ? nil : value
            default: break
            }
        }
    }
}

/// Span times from the gateway's monotonic instants, against one reading of both clocks: a trace's
/// spans share one, so instants that are equal stay equal, and order is kept.
struct TraceClock: Sendable {
    private let wall: Int64
    private let monotonic: ContinuousClock.Instant

    init() {
        self.wall = Int64(clamping: DefaultTracerClock.now.nanosecondsSinceEpoch)
        self.monotonic = .now
    }

    func instant(_ moment: ContinuousClock.Instant) -> DefaultTracerClock.Instant {
        let (seconds, attoseconds) = (moment - self.monotonic).components
        // Within a few years either way (a trace lasts minutes): no product can overflow.
        let offset = max(min(seconds, 100_000_000), -100_000_000) * 1_000_000_000 + attoseconds / 1_000_000_000
        return DefaultTracerClock.Instant(nanosecondsSinceEpoch: UInt64(max(self.wall + offset, 0)))
    }
}
