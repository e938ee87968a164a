public import NIOCore
import Synchronization

/// Redis for a whole process: one pipelined connection per event loop (a command goes over its
/// caller's loop's connection, or the loops' in turn), made when first needed and made again after
/// it fails.
///
/// A command never waits longer than the command timeout once connected, nor than the connect
/// timeout to connect; after a failed connect the slot refuses commands at once (`unavailable`) for
/// a backoff that doubles from 50 ms to 2 s, so a dead Redis costs callers nothing but an error.
/// The first command after the backoff tries again, and the client recovers by itself.
public final class RedisClient: Sendable {
    public let configuration: RedisConfiguration
    private let slots: [Slot]
    private let next = Atomic<Int>(0)

    public init(_ configuration: RedisConfiguration, group: any EventLoopGroup) {
        self.configuration = configuration
        self.slots = group.makeIterator().map { Slot(eventLoop: $0) }
    }

    /// Sends `commands` pipelined on one connection and returns their replies in order (error
    /// replies as `.error`).
    public func send(_ commands: [RedisCommand]) async throws(RedisError) -> [RESPValue] {
        let connection = try await self.connection()
        return try await connection.send(commands, timeout: self.configuration.commandTimeout)
    }

    /// One command; an error reply is thrown as `RedisServerError`.
    public func send(_ command: RedisCommand) async throws -> RESPValue {
        let reply = try await self.send([command])[0]
        if case .error(let error) = reply { throw error }
        return reply
    }

    /// Runs `script` by its SHA-1 (`EVALSHA`), loading it with `EVAL` when this server does not
    /// know it yet (`NOSCRIPT`: a new server, a restart, `SCRIPT FLUSH`).
    public func run(_ script: RedisScript, keys: [RedisArgument], arguments: [RedisArgument]) async throws -> RESPValue {
        let reply = try await self.send([script.evalsha(keys: keys, arguments: arguments)])[0]
        switch reply {
        case .error(let error) where error.code == "NOSCRIPT":
            return try await self.send(script.eval(keys: keys, arguments: arguments))
        case .error(let error):
            throw error
        default:
            return reply
        }
    }

    /// `run` for a caller on `eventLoop` that must not suspend, over that loop's connection: nil when
    /// the loop has no connection ready (the caller then takes the asynchronous way, which makes one).
    /// The future completes on the loop, failed with `RedisError` or the server's error reply.
    public func runOnLoop(_ script: RedisScript, keys: [RedisArgument], arguments: [RedisArgument], on eventLoop: any EventLoop) -> EventLoopFuture<RESPValue>? {
        guard let slot = self.slots.first(where: { $0.eventLoop === eventLoop }) else { return nil }
        guard let connection = slot.readyConnection else {
            // This caller goes the asynchronous way; the loop's next ones find the connection up.
            slot.connectSoon(self.configuration)
            return nil
        }
        let timeout = self.configuration.commandTimeout
        return connection.sendOnLoop([script.evalsha(keys: keys, arguments: arguments)], timeout: timeout).flatMap { replies in
            switch replies.first {
            case .error(let error) where error.code == "NOSCRIPT":
                return connection.sendOnLoop([script.eval(keys: keys, arguments: arguments)], timeout: timeout).flatMapThrowing { replies in
                    if case .error(let error) = replies.first { throw error }
                    return replies.first ?? .null
                }
            case .error(let error):
                return eventLoop.makeFailedFuture(error)
            case let reply:
                return eventLoop.makeSucceededFuture(reply ?? .null)
            }
        }
    }

    /// Closes every connection.
    public func shutdown() async {
        for slot in self.slots { await slot.close() }
    }

    private func connection() async throws(RedisError) -> RedisConnection {
        let slot: Slot
        if let current = self.slots.first(where: { $0.eventLoop.inEventLoop }) {
            slot = current
        } else {
            slot = self.slots[self.next.wrappingAdd(1, ordering: .relaxed).oldValue % self.slots.count]
        }
        return try await slot.connection(self.configuration)
    }

    /// One event loop's connection, its making shared by the commands that wait for it, and the
    /// backoff after a failure to make it.
    private final class Slot: Sendable {
        let eventLoop: any EventLoop

        private enum State {
            case idle
            case connecting(Task<RedisConnection, any Error>)
            case connected(RedisConnection)
            case backingOff(until: ContinuousClock.Instant, error: RedisError)
        }

        private struct Guarded {
            var state = State.idle
            /// The next backoff after a failed connect.
            var backoff = Slot.firstBackoff
        }

        private static let firstBackoff = Duration.milliseconds(50)
        private static let longestBackoff = Duration.seconds(2)

        private let guarded = Mutex(Guarded())

        init(eventLoop: any EventLoop) {
            self.eventLoop = eventLoop
        }

        func connection(_ configuration: RedisConfiguration) async throws(RedisError) -> RedisConnection {
            enum Next {
                case ready(RedisConnection)
                case wait(Task<RedisConnection, any Error>)
            }
            let now = ContinuousClock.now
            let next: Next = try self.guarded.withLock { guarded throws(RedisError) in
                switch guarded.state {
                case .connected(let connection) where connection.isActive:
                    return .ready(connection)
                case .connecting(let task):
                    return .wait(task)
                case .backingOff(let until, let error) where now < until:
                    throw RedisError(.unavailable, "\(error.detail) (next try in \(Int((until - now) / .milliseconds(1))) ms)")
                default:
                    let task = Task { [eventLoop] in try await RedisConnection.connect(configuration, on: eventLoop) }
                    guarded.state = .connecting(task)
                    return .wait(task)
                }
            }
            guard case .wait(let task) = next else {
                guard case .ready(let connection) = next else { preconditionFailure() }
                return connection
            }
            do {
                let connection = try await task.value
                self.guarded.withLock { guarded in
                    if case .connecting = guarded.state { guarded.state = .connected(connection) }
                    guarded.backoff = Self.firstBackoff
                }
                return connection
            } catch {
                let failure = error as? RedisError ?? RedisError(.connect, "\(error)")
                self.guarded.withLock { guarded in
                    guard case .connecting = guarded.state else { return }
                    // Jittered, so replicas that lost Redis together do not all come back at once.
                    let wait = guarded.backoff * Double.random(in: 0.5...1)
                    guarded.state = .backingOff(until: .now + wait, error: failure)
                    guarded.backoff = min(guarded.backoff * 2, Self.longestBackoff)
                }
                throw failure
            }
        }

        /// The connection, when it is up now (no connect, no wait).
        var readyConnection: RedisConnection? {
            self.guarded.withLock { guarded in
                if case .connected(let connection) = guarded.state, connection.isActive { return connection }
                return nil
            }
        }

        /// Starts making the connection when none is up or being made (and no backoff holds), without waiting.
        func connectSoon(_ configuration: RedisConfiguration) {
            let now = ContinuousClock.now
            let due = self.guarded.withLock { guarded in
                switch guarded.state {
                case .idle: true
                case .connected(let connection): !connection.isActive
                case .connecting: false
                case .backingOff(let until, _): now >= until
                }
            }
            if due { Task { _ = try? await self.connection(configuration) } }
        }

        func close() async {
            let connection: RedisConnection? = self.guarded.withLock { guarded in
                defer { guarded.state = .idle }
                if case .connected(let connection) = guarded.state { return connection }
                return nil
            }
            await connection?.close()
        }
    }
}
