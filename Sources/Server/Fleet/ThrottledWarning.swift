import Synchronization

/// At most one log line a second (or `interval`) for a failure that can happen on every request
/// (Redis away under load), saying how many it covers.
final class ThrottledWarning: Sendable {
    private let started = ContinuousClock.now
    private let interval: Duration
    /// The second of the last line, and the failures since.
    private let lastLine = Atomic<Int>(-1)
    private let sinceLine = Atomic<Int>(0)

    init(every interval: Duration = .seconds(1)) {
        self.interval = interval
    }

    /// Counts one failure; calls `log` with the failures since the last line when an interval has passed.
    func note(_ log: (_ failures: Int) -> Void) {
        let second = Int((ContinuousClock.now - self.started) / self.interval)
        let unlogged = self.sinceLine.add(1, ordering: .relaxed).newValue
        if self.lastLine.exchange(second, ordering: .relaxed) != second {
            self.sinceLine.subtract(unlogged, ordering: .relaxed)
            log(unlogged)
        }
    }
}
