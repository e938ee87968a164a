import Foundation

/// Durations in log-spaced buckets (100 µs to about 12 minutes, each 1.5× the last): constant memory,
/// constant-time recording, quantiles within the bucket's width.
public struct LatencyHistogram: Sendable, Equatable {
    static let bucketCount = 40
    /// Upper bounds in seconds; the last bucket takes everything above.
    static let bounds: [Double] = (0..<bucketCount - 1).map { 0.000_1 * pow(1.5, Double($0)) }

    private(set) var counts = [UInt32](repeating: 0, count: bucketCount)
    public private(set) var total = 0

    public init() {}

    public mutating func record(seconds: Double) {
        var index = 0
        while index < Self.bounds.count && seconds > Self.bounds[index] { index += 1 }
        self.counts[index] &+= 1
        self.total += 1
    }

    mutating func add(_ other: LatencyHistogram) {
        for index in 0..<Self.bucketCount { self.counts[index] &+= other.counts[index] }
        self.total += other.total
    }

    mutating func reset() {
        for index in 0..<Self.bucketCount { self.counts[index] = 0 }
        self.total = 0
    }

    /// Quantile `q` in seconds, interpolated within its bucket by rank; nil when empty.
    public func quantile(_ q: Double) -> Double? {
        guard self.total > 0 else { return nil }
        let rank = max(1, Int((min(max(q, 0), 1) * Double(self.total)).rounded(.up)))
        var seen = 0
        for (index, count) in self.counts.enumerated() where count > 0 {
            guard seen + Int(count) >= rank else {
                seen += Int(count)
                continue
            }
            let lower = index == 0 ? 0 : Self.bounds[index - 1]
            let upper = index < Self.bounds.count ? Self.bounds[index] : Self.bounds[Self.bounds.count - 1] * 1.5
            return lower + (upper - lower) * Double(rank - seen) / Double(count)
        }
        return nil
    }
}

/// What one finished request contributes to the rolling windows.
public struct RequestOutcome: Sendable, Equatable {
    /// Nil for a success.
    public var failure: FaultDomain?
    public var latency: Duration
    public var timeToFirstToken: Duration?
    public var inputTokens = 0
    public var outputTokens = 0
    public var costUSD = 0.0

    public init(failure: FaultDomain?, latency: Duration, timeToFirstToken: Duration? = nil) {
        self.failure = failure
        self.latency = latency
        self.timeToFirstToken = timeToFirstToken
    }
}

/// Counts over the last `span` seconds in one-second buckets, kept incrementally: recording touches
/// one bucket, a summary adds up at most `span` buckets, and nothing ever scans a log.
public struct RollingWindow: Sendable {
    struct Bucket: Sendable {
        var second: Int64 = -1
        var requests = 0
        var failures = [Int](repeating: 0, count: FaultDomain.allCases.count)
        var latency = LatencyHistogram()
        var firstToken = LatencyHistogram()
        var inputTokens = 0
        var outputTokens = 0
        var costUSD = 0.0

        mutating func add(_ other: Bucket) {
            self.requests += other.requests
            for index in self.failures.indices { self.failures[index] += other.failures[index] }
            self.latency.add(other.latency)
            self.firstToken.add(other.firstToken)
            self.inputTokens = self.inputTokens.addingSaturating(other.inputTokens)
            self.outputTokens = self.outputTokens.addingSaturating(other.outputTokens)
            self.costUSD += other.costUSD
        }

        mutating func reset(to second: Int64) {
            self.second = second
            self.requests = 0
            for index in self.failures.indices { self.failures[index] = 0 }
            self.latency.reset()
            self.firstToken.reset()
            self.inputTokens = 0
            self.outputTokens = 0
            self.costUSD = 0
        }
    }

    public let span: Int
    private var buckets: [Bucket]

    public init(span: Int) {
        self.span = max(1, span)
        self.buckets = [Bucket](repeating: Bucket(), count: self.span)
    }

    /// - Parameter second: whole seconds on a monotonic clock.
    public mutating func record(_ outcome: RequestOutcome, at second: Int64) {
        let slot = Int(second % Int64(self.span))
        if self.buckets[slot].second != second { self.buckets[slot].reset(to: second) }
        self.buckets[slot].requests += 1
        if let failure = outcome.failure, let index = FaultDomain.allCases.firstIndex(of: failure) {
            self.buckets[slot].failures[index] += 1
        }
        self.buckets[slot].latency.record(seconds: outcome.latency.seconds)
        if let firstToken = outcome.timeToFirstToken { self.buckets[slot].firstToken.record(seconds: firstToken.seconds) }
        // Token counts are bounded where they are read (`UntrustedNumber`); the sums saturate all the same.
        self.buckets[slot].inputTokens = self.buckets[slot].inputTokens.addingSaturating(outcome.inputTokens)
        self.buckets[slot].outputTokens = self.buckets[slot].outputTokens.addingSaturating(outcome.outputTokens)
        self.buckets[slot].costUSD += outcome.costUSD
    }

    /// The last `seconds` seconds up to `now` (the current, partial second included).
    public func summary(last seconds: Int, now: Int64) -> WindowSummary {
        let covered = min(max(1, seconds), self.span)
        var total = Bucket()
        for bucket in self.buckets where bucket.second > now - Int64(covered) && bucket.second <= now {
            total.add(bucket)
        }
        let perSecond = Double(covered)
        let failed = total.failures.reduce(0, +)
        return WindowSummary(
            seconds: covered,
            requests: total.requests,
            requestsPerSecond: Double(total.requests) / perSecond,
            errorRate: total.requests == 0 ? 0 : Double(failed) / Double(total.requests),
            errors: Dictionary(uniqueKeysWithValues: zip(FaultDomain.allCases.map(\.rawValue), total.failures)),
            latencyMs: Percentiles(total.latency),
            timeToFirstTokenMs: Percentiles(total.firstToken),
            inputTokens: total.inputTokens,
            outputTokens: total.outputTokens,
            costPerMinuteUsd: total.costUSD * 60 / perSecond
        )
    }
}

/// One window's numbers, as the admin snapshot carries them.
public struct WindowSummary: Codable, Sendable, Equatable {
    public var seconds: Int
    public var requests: Int
    public var requestsPerSecond: Double
    /// Failed share of all requests (caller mistakes included; `errors` splits them by domain).
    public var errorRate: Double
    /// Failures by fault domain: caller, policy, provider, gateway.
    public var errors: [String: Int]
    public var latencyMs: Percentiles
    public var timeToFirstTokenMs: Percentiles
    public var inputTokens: Int
    public var outputTokens: Int
    public var costPerMinuteUsd: Double

    public init(
        seconds: Int,
        requests: Int,
        requestsPerSecond: Double,
        errorRate: Double,
        errors: [String: Int],
        latencyMs: Percentiles,
        timeToFirstTokenMs: Percentiles,
        inputTokens: Int,
        outputTokens: Int,
        costPerMinuteUsd: Double
    ) {
        self.seconds = seconds
        self.requests = requests
        self.requestsPerSecond = requestsPerSecond
        self.errorRate = errorRate
        self.errors = errors
        self.latencyMs = latencyMs
        self.timeToFirstTokenMs = timeToFirstTokenMs
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.costPerMinuteUsd = costPerMinuteUsd
    }
}

public struct Percentiles: Codable, Sendable, Equatable {
    public var p50: Double?
    public var p95: Double?
    public var p99: Double?

    public init(p50: Double? = nil, p95: Double? = nil, p99: Double? = nil) {
        self.p50 = p50
        self.p95 = p95
        self.p99 = p99
    }

    init(_ histogram: LatencyHistogram) {
        self.p50 = histogram.quantile(0.5).map { $0 * 1000 }
        self.p95 = histogram.quantile(0.95).map { $0 * 1000 }
        self.p99 = histogram.quantile(0.99).map { $0 * 1000 }
    }
}
