import Foundation

/// A real PostgreSQL (Debian's `postgresql`, installed by scripts/bootstrap) in a temporary folder, on a
/// free loopback port; started and stopped by the test, every wait bounded. PostgreSQL refuses to run
/// as root, so as root it runs as the `postgres` user.
public final class PostgresServerProcess: @unchecked Sendable {
    public let port: Int
    private let directory: URL
    private var process: Process?

    public init() async throws {
        self.port = try await RedisServerProcess.freePort()
        self.directory = URL(fileURLWithPath: "/tmp/switchyard-postgres-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        if getuid() == 0 { try Self.run(["/bin/chown", "postgres:postgres", self.directory.path]) }
        try Self.run(Self.asServerUser + [Self.binary("initdb"), "-D", self.dataPath, "-A", "trust", "-U", "postgres", "--no-sync"])
        try await self.start()
    }

    private var dataPath: String { self.directory.appendingPathComponent("data").path }

    /// A URL for `database:`, of a database made on first use.
    public func url(database: String) throws -> String {
        _ = try? self.psql("CREATE DATABASE \(database)")
        return "postgres://postgres@127.0.0.1:\(self.port)/\(database)?sslmode=disable"
    }

    /// Starts it (again, on the same port and data) and waits until it takes queries, at most 10 s.
    public func start() async throws {
        let server = (Self.asServerUser + [
            Self.binary("postgres"), "-D", self.dataPath, "-p", "\(self.port)", "-k", self.directory.path, "-c", "listen_addresses=127.0.0.1",
            "-c", "fsync=off", "-c", "max_connections=200",
        ]).map { "'\($0)'" }.joined(separator: " ")
        // SIGINT: PostgreSQL's fast shutdown, which ends open connections.
        let process = try ServerWatchdog.start("\(server) >>'\(self.directory.path)/postgres.log' 2>&1", stopSignal: "INT")
        self.process = process
        for _ in 0..<200 {
            if (try? Self.run([Self.binary("pg_isready"), "-q", "-h", "127.0.0.1", "-p", "\(self.port)"])) != nil { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ServerFailure(message: "PostgreSQL did not start within 10 s")
    }

    /// Stops it (a fast shutdown: open connections are ended) and waits until it has.
    public func stop() {
        guard let process = self.process else { return }
        self.process = nil
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
    }

    /// The output of one statement run by `psql` (unaligned, tuples only).
    @discardableResult
    public func psql(_ statement: String, database: String = "postgres") throws -> String {
        try Self.run([Self.binary("psql"), "-h", "127.0.0.1", "-p", "\(self.port)", "-U", "postgres", "-d", database, "-At", "-v", "ON_ERROR_STOP=1", "-c", statement])
    }

    deinit {
        self.stop()
        try? FileManager.default.removeItem(at: self.directory)
    }

    private static var asServerUser: [String] {
        getuid() == 0 ? ["/usr/bin/setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"] : []
    }

    /// A program of the newest PostgreSQL installed (`/usr/lib/postgresql/N/bin`).
    private static func binary(_ name: String) -> String {
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).compactMap(Int.init).sorted()
        return versions.last.map { "\(root)/\($0)/bin/\(name)" } ?? name
    }

    /// Runs a program to its end (at most 30 s); its output, or a failure with its error output.
    @discardableResult
    private static func run(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0].hasPrefix("/") ? arguments[0] : "/usr/bin/\(arguments[0])")
        process.arguments = Array(arguments.dropFirst())
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        let text = output.fileHandleForReading.readDataToEndOfFile()
        let problem = errors.fileHandleForReading.readDataToEndOfFile()
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw ServerFailure(message: "\(arguments[0]) exited with \(process.terminationStatus): \(String(decoding: problem, as: UTF8.self))")
        }
        return String(decoding: text, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    public struct ServerFailure: Error, CustomStringConvertible {
        public let message: String
        public var description: String { self.message }
    }
}
