import Foundation

/// Starts a server behind a small watchdog shell: the server goes when the test process does, even one
/// that exits (or crashes) before the object that started it is released, so no server outlives the
/// tests. SIGTERM to the watchdog stops the server with `stopSignal` and waits for it.
enum ServerWatchdog {
    static func start(_ command: String, stopSignal: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = [
            "-c",
            """
            \(command) & server=$!
            trap 'kill -\(stopSignal) $server 2>/dev/null; wait $server; exit 0' TERM
            while kill -0 \(getpid()) 2>/dev/null && kill -0 $server 2>/dev/null; do sleep 0.2; done
            kill -\(stopSignal) $server 2>/dev/null; wait $server
            """,
        ]
        // Not the test process's pipes: a runner that waits for their end before it reaps the test
        // process would wait forever on a watchdog that waits for that process to go.
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return process
    }
}
