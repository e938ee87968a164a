import Synchronization

/// Whether a request is traced, decided before any span is made: an unsampled request then costs
/// one draw, where asking the tracer would make ids and a context for a span that is dropped.
/// Follows `OTEL_TRACES_SAMPLER`'s rules; the client's `traceparent` flag is the parent's decision.
public struct TraceSampler: Sendable {
    public let sampler: TracingSettings.Sampler
    public let ratio: Double

    public init(_ sampler: TracingSettings.Sampler, ratio: Double) {
        self.sampler = sampler
        self.ratio = ratio
    }

    /// - Parameters:
    ///   - parentSampled: the client's `traceparent` flag, nil when it sent none (or an invalid one).
    ///   - draw: a uniformly random number.
    public func samples(parentSampled: Bool?, draw: UInt64) -> Bool {
        switch self.sampler {
        case .alwaysOn: true
        case .alwaysOff: false
        case .traceIDRatio: self.keeps(draw)
        case .parentBasedAlwaysOn: parentSampled ?? true
        case .parentBasedAlwaysOff: parentSampled ?? false
        case .parentBasedTraceIDRatio: parentSampled ?? self.keeps(draw)
        }
    }

    /// True for `ratio` of draws: the draw's top 53 bits as a fraction of one.
    private func keeps(_ draw: UInt64) -> Bool {
        Double(draw >> 11) * 0x1p-53 < self.ratio
    }
}

/// Random draws for sampling without a system call each: SplitMix64 over an atomic counter, which
/// any thread may advance (its numbers pass BigCrush; sampling needs no secrecy).
public final class SamplingDraws: Sendable {
    private let state: Atomic<UInt64>

    public init(seed: UInt64 = UInt64.random(in: .min ... .max)) {
        self.state = Atomic(seed)
    }

    public func next() -> UInt64 {
        var mixed = self.state.wrappingAdd(0x9E37_79B9_7F4A_7C15, ordering: .relaxed).newValue
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }
}
