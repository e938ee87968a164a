import Synchronization

/// Runs an operation with a deadline that holds even when the operation ignores cancellation: at the
/// deadline the caller gets `Deadline.Passed` and the operation, cancelled, is left to end on its own.
/// (A task group's timeout waits for every child, so an operation stuck in a library holds its caller.)
enum Deadline {
    struct Passed: Error, CustomStringConvertible {
        let limit: Duration
        var description: String { "no answer within \(self.limit)" }
    }

    static func run<Value: Sendable>(within limit: Duration, _ operation: @escaping @Sendable () async throws -> Value) async throws -> Value {
        let outcome = Mutex<CheckedContinuation<Value, any Error>?>(nil)
        let work = Mutex<Task<Void, Never>?>(nil)
        let timer = Mutex<Task<Void, Never>?>(nil)
        /// The first of the operation and the timer to end resumes the caller; the other is cancelled.
        let finish = { @Sendable (result: Result<Value, any Error>) in
            guard let continuation = outcome.withLock({ pending -> CheckedContinuation<Value, any Error>? in
                defer { pending = nil }
                return pending
            }) else { return }
            work.withLock { $0?.cancel() }
            timer.withLock { $0?.cancel() }
            continuation.resume(with: result)
        }
        return try await withCheckedThrowingContinuation { continuation in
            outcome.withLock { $0 = continuation }
            work.withLock {
                $0 = Task {
                    do {
                        finish(.success(try await operation()))
                    } catch {
                        finish(.failure(error))
                    }
                }
            }
            timer.withLock {
                $0 = Task {
                    guard (try? await Task.sleep(for: limit)) != nil else { return }
                    finish(.failure(Passed(limit: limit)))
                }
            }
        }
    }
}
