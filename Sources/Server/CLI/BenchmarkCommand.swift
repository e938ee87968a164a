import ArgumentParser
import Engine
import Foundation

/// `switchyard benchmark semantic-index`: lookup latency of the semantic index at a given size, for
/// `docs/performance.md`. A benchmark, not a test: build with `-c release` before trusting numbers.
struct BenchmarkCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "benchmark",
        abstract: "Micro-benchmarks of the gateway's own data structures (release builds only).",
        subcommands: [SemanticIndexBenchmark.self]
    )

    struct SemanticIndexBenchmark: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "semantic-index",
            abstract: "Lookup latency, recall and memory of the semantic index for N random unit vectors."
        )
        @Option(name: .long) var entries = 10_000
        @Option(name: .long) var dimensions = 384
        @Option(name: .long) var lookups = 1_000
        @Option(name: .long, help: "Vectors above which a partition uses the HNSW graph (flat search below).") var approximateAbove = 2_000

        func run() async throws {
            var generator = SystemRandomNumberGenerator()
            func unitVector() -> [Float] {
                let vector = (0..<self.dimensions).map { _ in Float.random(in: -1...1, using: &generator) }
                let norm = vector.reduce(0) { $0 + $1 * $1 }.squareRoot()
                return vector.map { $0 / norm }
            }
            var index = SemanticIndex(partitionLimit: self.entries, approximateAbove: self.approximateAbove)
            var stored: [[Float]] = []
            let before = Self.residentBytes()
            let building = ContinuousClock.now
            for number in 0..<self.entries {
                let vector = unitVector()
                if number % max(1, self.entries / self.lookups) == 0 { stored.append(vector) }
                index.insert(vector, key: "entry-\(number)", partition: "p")
            }
            let buildSeconds = (ContinuousClock.now - building).seconds
            let perEntry = Double(Self.residentBytes() - before) / Double(self.entries)
            // Queries near stored vectors (a reworded question): recall = the right entry found.
            var samples: [Double] = []
            var found = 0
            for (number, original) in stored.prefix(self.lookups).enumerated() {
                var query = original.map { $0 + Float.random(in: -0.01...0.01, using: &generator) }
                let norm = query.reduce(0) { $0 + $1 * $1 }.squareRoot()
                query = query.map { $0 / norm }
                let start = ContinuousClock.now
                let hit = index.nearest(query, partition: "p", threshold: 0.9)
                samples.append((ContinuousClock.now - start).seconds * 1_000_000)
                if hit?.key == "entry-\(number * max(1, self.entries / self.lookups))" { found += 1 }
            }
            samples.sort()
            let p50 = samples[samples.count / 2]
            let p99 = samples[min(samples.count - 1, samples.count * 99 / 100)]
            print(String(
                format: "entries %d, %d dims (%@): lookup p50 %.0f µs, p99 %.0f µs, recall %.3f; about %.0f bytes an entry; built in %.1f s",
                self.entries, self.dimensions, self.entries > self.approximateAbove ? "HNSW" : "flat", p50, p99,
                Double(found) / Double(max(1, samples.count)), perEntry, buildSeconds
            ))
        }

        /// Resident set size from /proc (Linux).
        static func residentBytes() -> Int {
            guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
                let pages = text.split(separator: " ").dropFirst().first.flatMap({ Int($0) })
            else { return 0 }
            return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
        }
    }
}
