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

    public func configuration(password: String? = nil, user: String? = nil, database: Int = 0) -> RedisConfiguration {
        RedisConfiguration(host: "127.0.0.1", port: self.port, user: user, password: password, database: database, connectTimeout: .milliseconds(500))
    }

    /// Starts it (again, on the same port) and waits until it answers, at most 5 s.
    public func start() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/redis-server")
        process.arguments = [
            "--port", "\(self.port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", self.directory.path,
            "--logfile", self.directory.appendingPathComponent("redis.log").path, "--daemonize", "no",
        ] + self.arguments
        try process.run()
        self.process = process
        for _ in 0..<100 {
            if await Self.accepts(port: self.port) { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw RedisError(.connect, "redis-server did not start within 5 s on port \(self.port)")
    }

    /// Stops it at once (SIGKILL: nothing is saved anyway) and waits until it has exited.
    public func stop() {
        guard let process = self.process else { return }
        self.process = nil
        kill(process.processIdentifier, SIGKILL)
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

    public static func freePort() async throws -> Int {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress?.port ?? 0
        try await channel.close()
        return port
    }
}
