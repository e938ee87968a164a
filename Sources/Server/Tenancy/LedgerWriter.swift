import Engine
import Foundation
import Logging
import Synchronization

/// Writes ledger rows to the database in batches, off the request path: a request only appends to a
/// queue. Each row gets an entry id unique across the fleet, so a batch written twice (retried after
/// a failure that came after its commit, or replayed from the journal) is stored once.
///
/// SQLite (one process): past `softLimit` rows waiting (the disk stalls, say) nothing is dropped; the
/// overflow is counted and logged once per stall, the rows stay queued until written, and a batch that
/// fails to write is kept and retried.
///
/// PostgreSQL (a fleet): a batch the database does not take within `writeTimeout` goes to the journal,
/// a table of the replica's own SQLite file, and so does every batch after it, each at its flush, until
/// a replay of the journal (in the background, every `pause` at most) finds PostgreSQL answering again.
/// So `kill -9` loses at most the rows of the last interval (and of the batch being written: while
/// PostgreSQL is healthy a few milliseconds of rows, at the start of an outage up to `writeTimeout`'s).
/// At shutdown the stopper's `flush()` writes everything left (to the journal if PostgreSQL is away).
final class LedgerWriter: Sendable {
    static let batchSize = 2000
    /// Short, so each write is short: on a core shared with the event loop, a write of 200 ms of
    /// rows held requests back long enough to show in their p99.
    static let interval = Duration.milliseconds(25)
    static let softLimit = 50_000
    /// How long a write to a shared database may take before its rows are journalled instead.
    static let writeTimeout = Duration.seconds(2)
    /// How long the writer journals without asking a shared database that failed.
    static let pause = Duration.seconds(1)

    private struct Queue {
        var rows: [LedgerRow] = []
        var overflowed = 0
        var warned = false
    }

    /// Where the ledger stands: what is written, what waits where, and since when.
    struct Backlog: Sendable, Equatable {
        var written: Int
        var overflowed: Int
        var queued: Int
        var journalled: Int
        /// The time (seconds since 1970) of the oldest row not yet in the database; nil when none waits.
        var oldestWaiting: Double?
        /// Whether the writer is journalling because the shared database failed.
        var databaseDown: Bool
    }

    private struct Outage {
        var since: ContinuousClock.Instant?
        var retryAt: ContinuousClock.Instant?
        var oldestJournalled: Double?
    }

    private let database: any GatewayDatabase
    /// The replica's own SQLite file, for rows a shared database did not take; nil when the database
    /// is that file.
    private let journal: Store?
    private let logger: Logger
    private let queue = Mutex(Queue())
    private let written = Atomic<Int>(0)
    private let journalled = Atomic<Int>(0)
    private let outage = Mutex(Outage())
    /// `led_`, ten random base-36 characters, `_`: entry ids are this plus a counter.
    private let entryPrefix: String
    private let entries = Atomic<UInt64>(0)
    /// Whether a replay of the journal runs.
    private let replaying = Atomic<Bool>(false)

    init(database: any GatewayDatabase, journal: Store?, logger: Logger) {
        self.database = database
        self.journal = database.isShared ? journal : nil
        self.logger = logger
        var generator = SystemRandomNumberGenerator()
        let span: UInt64 = 3_656_158_440_062_976  // 36^10
        self.entryPrefix = "led_" + String(generator.next(upperBound: span) + span, radix: 36).dropFirst() + "_"
    }

    /// Counts the rows an earlier run left in the journal, so the backlog shows them from the start.
    func start() async {
        guard let journal = self.journal, let (waiting, oldest) = try? await journal.journalBacklog(), waiting > 0 else { return }
        self.journalled.store(waiting, ordering: .relaxed)
        self.outage.withLock { $0.oldestJournalled = oldest }
        self.logger.notice("ledger rows journalled by an earlier run will be written to the shared database", metadata: ["gw.rows": "\(waiting)"])
    }

    func append(_ row: LedgerRow) {
        var row = row
        row.entryId = self.entryPrefix + String(self.entries.add(1, ordering: .relaxed).newValue, radix: 36)
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

    var backlog: Backlog {
        let (queued, overflowed, oldestQueued) = self.queue.withLock { ($0.rows.count, $0.overflowed, $0.rows.first?.at) }
        let outage = self.outage.withLock { $0 }
        let oldest = [oldestQueued, outage.oldestJournalled].compactMap { $0 }.min()
        return Backlog(
            written: self.written.load(ordering: .relaxed), overflowed: overflowed, queued: queued, journalled: self.journalled.load(ordering: .relaxed),
            oldestWaiting: oldest, databaseDown: outage.since != nil
        )
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
    /// its front moved every row behind it); then the journal's rows are replayed in the background.
    func flush() async {
        let rows = self.queue.withLock { queue -> [LedgerRow] in
            queue.warned = false
            defer { queue.rows = [] }
            return queue.rows
        }
        var start = rows.startIndex
        while start < rows.endIndex {
            let batch = rows[start..<min(start + Self.batchSize, rows.endIndex)]
            guard await self.write(batch) else {
                self.queue.withLock { $0.rows.insert(contentsOf: rows[start...], at: 0) }
                return
            }
            start = batch.endIndex
        }
        self.replayInBackground()
    }

    /// One batch into the database; for a shared database that failed, into the journal at once (the
    /// replay finds out when it is back), and into the journal too when it fails now.
    /// - Returns: false when the batch is still only in memory (it goes back to the queue).
    private func write(_ batch: ArraySlice<LedgerRow>) async -> Bool {
        if self.journal == nil || self.outage.withLock({ $0.since == nil }) {
            do {
                try await self.withinWriteTimeout { try await self.database.append(batch) }
                self.written.add(batch.count, ordering: .relaxed)
                return true
            } catch {
                guard self.journal != nil else {
                    self.logger.error("ledger write failed; the rows stay queued", metadata: ["gw.error": "\(error)", "gw.rows": "\(batch.count)"])
                    return false
                }
                self.failed(error)
            }
        }
        return await self.journalRows(batch)
    }

    private func journalRows(_ batch: ArraySlice<LedgerRow>) async -> Bool {
        guard let journal = self.journal else { return false }
        do {
            try await journal.journal(batch)
        } catch {
            self.logger.error("ledger rows could not be journalled either; they stay queued", metadata: ["gw.error": "\(error)", "gw.rows": "\(batch.count)"])
            return false
        }
        self.journalled.add(batch.count, ordering: .relaxed)
        let oldest = batch.map(\.at).min()
        self.outage.withLock { outage in outage.oldestJournalled = [outage.oldestJournalled, oldest].compactMap { $0 }.min() }
        return true
    }

    /// Starts replaying the journal unless a replay runs, the journal is empty, or the database failed
    /// less than `pause` ago. Apart from the flushes, so they keep journalling every `interval` while a
    /// replay waits for a database that does not answer.
    private func replayInBackground() {
        guard self.journal != nil, self.journalled.load(ordering: .relaxed) > 0 || self.outage.withLock({ $0.since != nil }),
            self.outage.withLock({ $0.retryAt.map { ContinuousClock.now >= $0 } ?? true }),
            self.replaying.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged
        else { return }
        Task {
            await self.replayJournal()
            self.replaying.store(false, ordering: .relaxed)
        }
    }

    /// Writes journalled rows to the shared database, oldest first, while it takes them.
    private func replayJournal() async {
        guard let journal = self.journal else { return }
        while !Task.isCancelled {
            do {
                let (rows, through) = try await journal.journalled(limit: Self.batchSize)
                guard !rows.isEmpty else {
                    // Nothing journalled (the journal could not be written either): the next flush asks
                    // the database itself.
                    self.journalled.store(0, ordering: .relaxed)
                    self.outage.withLock { ($0.oldestJournalled, $0.since, $0.retryAt) = (nil, nil, nil) }
                    return
                }
                try await self.withinWriteTimeout { try await self.database.append(rows[...]) }
                self.recovered()
                // Written before forgotten: a crash between the two replays rows the database skips.
                try await journal.forgetJournal(through: through)
                self.written.add(rows.count, ordering: .relaxed)
                self.journalled.subtract(min(rows.count, self.journalled.load(ordering: .relaxed)), ordering: .relaxed)
            } catch {
                self.failed(error)
                return
            }
        }
    }

    private func failed(_ error: any Error) {
        let first = self.outage.withLock { outage -> Bool in
            defer {
                outage.since = outage.since ?? .now
                outage.retryAt = .now + Self.pause
            }
            return outage.since == nil
        }
        if first {
            self.logger.error(
                "the shared database does not take ledger rows; they are journalled on this replica's disk and written when it answers",
                metadata: ["gw.error": "\(String(reflecting: error))"]
            )
        }
    }

    private func recovered() {
        let since = self.outage.withLock { outage -> ContinuousClock.Instant? in
            defer { (outage.since, outage.retryAt) = (nil, nil) }
            return outage.since
        }
        if let since {
            self.logger.notice("the shared database takes ledger rows again", metadata: ["gw.outage_seconds": "\((ContinuousClock.now - since).seconds)"])
        }
    }

    /// Runs `write`, failing after `writeTimeout` (the write itself may still finish: entry ids make
    /// the journal's copy harmless). A write that does not end in time may hold a connection that
    /// never answers: the database drops its connections and opens new ones.
    private func withinWriteTimeout(_ write: @escaping @Sendable () async throws -> Void) async throws {
        guard self.journal != nil else { return try await write() }
        do {
            try await Deadline.run(within: Self.writeTimeout, write)
        } catch let passed as Deadline.Passed {
            self.database.reconnect()
            throw passed
        }
    }
}
