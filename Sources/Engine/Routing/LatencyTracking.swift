import Foundation

/// Peak-EWMA latency: a moving average that jumps up to any slower sample at once and decays back
/// down over `decay`, so a target that just got slow is avoided immediately but one fast answer does
/// not make a slow target look good. (The estimator Finagle and Linkerd balance on.)
public struct PeakEWMA: Sendable, Equatable {
    public let decay: Duration
    /// Seconds; nil until the first sample.
    public private(set) var value: Double?
    private var updated: ContinuousClock.Instant?

    public init(decay: Duration = .seconds(10)) {
        self.decay = decay
    }

    public mutating func record(_ sample: Duration, at now: ContinuousClock.Instant) {
        let seconds = sample.seconds
        defer { self.updated = now }
        guard let current = self.value, let updated = self.updated else {
            self.value = seconds
            return
        }
        if seconds > current {
            self.value = seconds
            return
        }
        let elapsed = max(0, (now - updated).seconds)
        let keep = exp(-elapsed / max(self.decay.seconds, 0.001))
        self.value = current * keep + seconds * (1 - keep)
    }
}

/// The most recent samples of a duration, for quantiles (the hedging delay, the admin snapshot).
/// A fixed ring: memory and the cost of a quantile are bounded by `capacity`.
public struct RecentSamples: Sendable, Equatable {
    public let capacity: Int
    private var ring: [Double] = []
    private var next = 0

    public init(capacity: Int = 256) {
        self.capacity = max(1, capacity)
    }

    public var count: Int { self.ring.count }

    public mutating func record(_ sample: Duration) {
        if self.ring.count < self.capacity {
            self.ring.append(sample.seconds)
        } else {
            self.ring[self.next] = sample.seconds
        }
        self.next = (self.next + 1) % self.capacity
    }

    /// The nearest-rank quantile `q` (0…1) of the samples held, or nil with none.
    public func quantile(_ q: Double) -> Duration? {
        guard !self.ring.isEmpty else { return nil }
        let sorted = self.ring.sorted()
        let rank = Int((min(max(q, 0), 1) * Double(sorted.count)).rounded(.up)) - 1
        return .seconds(sorted[max(0, min(rank, sorted.count - 1))])
    }
}

extension Duration {
    /// The duration in (fractional) seconds.
    public var seconds: Double {
        let parts = self.components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
