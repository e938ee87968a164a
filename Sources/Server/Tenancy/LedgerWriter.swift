import Foundation
import Logging
import Synchronization

/// Writes ledger rows to SQLite in batches, off the request path: a request only appends to a queue.
///
/// The queue is soft-bounded: past `softLimit` rows waiting (the disk stalls, say) nothing is dropped;
/// the overflow is counted and logged once per stall, and the rows stay queued until written. A
/// batch that fails to write is kept and retried. `close()` writes everything before shutdown.
final class LedgerWriter: Sendable {
    static let batchSize = 2000
    /// Short, so each write is short: on a core shared with the event loop, a write of 200 ms of
    /// rows held requests back long enough to show in their p99.
    static let interval = Duration.milliseconds(25)
    static let softLimit = 50_000

    private struct Queue {
        var rows: [LedgerRow] = []
        var overflowed = 0
        var warned = false
    }

    private let store: Store
    private let logger: Logger
    private let queue = Mutex(Queue())
    private let written = Atomic<Int>(0)

    init(store: Store, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    func append(_ row: LedgerRow) {
        let stalled = self.queue.withLock { queue -> Int? in
            queue.rows.append(row)
            guard queue.rows.count > Self.softLimit else { return nil }
            queue.overflowed += 1
            if queue.warned { return nil }
            queue.warned = true
            return queue.rows.count
        }
        if let waiting = stalled {
            self.logger.error("ledger writer behind: \(waiting) rows waiting; requests continue and no row is dropped")
        }
    }

    /// Rows written so far, and rows that arrived while more than `softLimit` were waiting.
    var counts: (written: Int, overflowed: Int) {
        (self.written.load(ordering: .relaxed), self.queue.withLock { $0.overflowed })
    }

    /// Writes batches every `interval` until cancelled. The last rows are the stopper's to flush: a
    /// write from this cancelled task would only be refused (GRDB honours the cancellation).
    func run() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: Self.interval)
            guard !Task.isCancelled else { return }
            await self.flush()
        }
    }

    /// Writes everything queued now, in batches (the queue is taken whole: taking a batch at a time off
    /// its front moved every row behind it). What fails to write goes back to the front of the queue.
    func flush() async {
        let rows = self.queue.withLock { queue -> [LedgerRow] in
            queue.warned = false
            defer { queue.rows = [] }
            return queue.rows
        }
        var start = rows.startIndex
        while start < rows.endIndex {
            let batch = rows[start..<min(start + Self.batchSize, rows.endIndex)]
            do {
                try await self.store.append(batch)
                self.written.add(batch.count, ordering: .relaxed)
                start = batch.endIndex
            } catch {
                self.queue.withLock { $0.rows.insert(contentsOf: rows[start...], at: 0) }
                self.logger.error("ledger write failed; the rows stay queued", metadata: ["gw.error": "\(error)", "gw.rows": "\(rows.count - start)"])
                return
            }
        }
    }
}
