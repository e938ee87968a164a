import Synchronization
import Testing

@testable import Server

struct DeadlineTests {
    /// An operation stuck in a library that ignores cancellation (as a PostgreSQL write on a dead
    /// connection was) must not hold its caller past the deadline.
    @Test func anOperationThatIgnoresCancellationDoesNotHoldItsCaller() async throws {
        let release = Mutex<CheckedContinuation<Void, Never>?>(nil)
        let started = ContinuousClock.now
        do {
            _ = try await Deadline.run(within: .milliseconds(100)) {
                await withCheckedContinuation { continuation in release.withLock { $0 = continuation } }
                return 1
            }
            Issue.record("a stuck operation returned")
        } catch is Deadline.Passed {
            // A bound, not a timing assertion: the caller is back long before the operation ends.
            #expect(ContinuousClock.now - started < .seconds(30))
        }
        release.withLock { $0?.resume() }
    }

    @Test func anOperationInTimeGivesItsValueOrItsError() async throws {
        #expect(try await Deadline.run(within: .seconds(30)) { 42 } == 42)
        struct Refused: Error {}
        await #expect(throws: Refused.self) { try await Deadline.run(within: .seconds(30)) { () async throws -> Int in throw Refused() } }
    }
}
