import Foundation
import NIOCore
import NIOPosix
import Redis

/// A real `redis-server` (Debian's, installed by scripts/bootstrap) on a free loopback port, with
/// nothing persisted; started and stopped by the test, every wait bounded.
public final class RedisServerProcess: @unchecked Sendable {
    public let port: Int
    private let directory: URL
    private let arguments: [String]
    private var process: Process?

    /// - Parameter arguments: more of redis-server's options (`--requirepass`, …).
    public init(_ arguments: [String] = []) async throws {
        self.port = try await Self.freePort()
        self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-redis-\(UUID().uuidString)")
        self.arguments = arguments
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        try await self.start()
    }

    /// A port below the kernel's ephemeral range (32768 and up), where the other tests' port-0
    /// listeners and connections never land, checked free just before.
    static func freePort() async throws -> Int {
        for _ in 0..<50 {
            let port = Int.random(in: 20_000..<32_000)
            if let channel = try? await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: port).get() {
                try await channel.close()
                return port
            }
        }
        throw RedisError(.connect, "no free port for redis-server")
    }

    public func configuration(password: String? = nil, user: String? = nil, database: Int = 0) -> RedisConfiguration {
        // Generous: the tests share two cores with each other; the ones about timeouts set their own.
        RedisConfiguration(
            host: "127.0.0.1", port: self.port, user: user, password: password, database: database, connectTimeout: .seconds(2), commandTimeout: .seconds(2)
        )
    }

    /// Starts it (again, on the same port) and waits until it answers, at most 5 s.
    public func start() async throws {
        let server = [
            "/usr/bin/redis-server", "--port", "\(self.port)", "--bind", "127.0.0.1", "--save", "''", "--appendonly", "no", "--dir", self.directory.path,
            "--logfile", self.directory.appendingPathComponent("redis.log").path, "--daemonize", "no",
        ] + self.arguments.map { "'\($0)'" }
        // SIGKILL: nothing is saved anyway.
        let process = try ServerWatchdog.start(server.joined(separator: " "), stopSignal: "KILL")
        self.process = process
        for _ in 0..<100 {
            if await Self.accepts(port: self.port) { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw RedisError(.connect, "redis-server did not start within 5 s on port \(self.port)")
    }

    /// How many connections are subscribed to `channel` (`PUBSUB NUMSUB`), asked through redis-cli.
    public func subscribers(_ channel: String) async throws -> Int {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/redis-cli")
        process.arguments = ["-p", "\(self.port)", "--no-raw", "PUBSUB", "NUMSUB", channel]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        process.waitUntilExit()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        // `1) "channel"` then `2) (integer) N`.
        return text.split(separator: "\n").last.flatMap { $0.split(separator: " ").last.flatMap { Int($0) } } ?? 0
    }

    /// Stops it at once and waits until its watchdog has exited.
    public func stop() {
        guard let process = self.process else { return }
        self.process = nil
        // The watchdog's trap stops the server at once.
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
    }

    deinit {
        self.stop()
        try? FileManager.default.removeItem(at: self.directory)
    }

    private static func accepts(port: Int) async -> Bool {
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get()
            try await channel.close()
            return true
        } catch {
            return false
        }
    }
}
