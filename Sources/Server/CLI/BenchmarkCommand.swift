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
        @Option(name: .long, help: "The HNSW search width of a lookup.") var searchWidth = SemanticIndex.defaultSearchWidth
        @Option(name: .long, help: "random: uniform on the sphere (the hardest case for a graph); clustered: 1,000 topics, entries about 0.5 alike within one, like real sentence embeddings.")
        var distribution: Distribution = .clustered
        @Option(name: .long, help: "How alike a lookup is to the entry it should find (a reworded question).") var querySimilarity = 0.92

        enum Distribution: String, ExpressibleByArgument {
            case random, clustered
        }

        func run() async throws {
            var generator = SplitMix(seed: 7)
            func gaussian() -> Float {
                // Box–Muller.
                let (u, v) = (Float.random(in: Float.ulpOfOne...1, using: &generator), Float.random(in: 0..<1, using: &generator))
                return (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
            }
            func normalized(_ vector: [Float]) -> [Float] {
                let norm = vector.reduce(0) { $0 + $1 * $1 }.squareRoot()
                return vector.map { $0 / norm }
            }
            /// `base` moved by a random direction to about `similarity` with it.
            func near(_ base: [Float], similarity: Double) -> [Float] {
                let noise = normalized((0..<self.dimensions).map { _ in gaussian() })
                let spread = Float(tan(acos(min(max(similarity, 0), 1))))
                return normalized(zip(base, noise).map { $0 + spread * $1 })
            }
            let topics = (0..<1_000).map { _ in normalized((0..<self.dimensions).map { _ in gaussian() }) }
            func entry() -> [Float] {
                switch self.distribution {
                case .random: return normalized((0..<self.dimensions).map { _ in gaussian() })
                case .clustered: return near(topics[Int.random(in: 0..<topics.count, using: &generator)], similarity: 0.7)
                }
            }
            var index = SemanticIndex(partitionLimit: self.entries, approximateAbove: self.approximateAbove, searchWidth: self.searchWidth)
            let every = max(1, self.entries / self.lookups)
            var stored: [[Float]] = []
            let before = Self.residentBytes()
            let building = ContinuousClock.now
            for number in 0..<self.entries {
                let vector = entry()
                if number % every == 0 { stored.append(vector) }
                index.insert(vector, key: "entry-\(number)", partition: "p")
            }
            let buildSeconds = (ContinuousClock.now - building).seconds
            let perEntry = Double(Self.residentBytes() - before) / Double(self.entries)
            // Lookups near stored vectors: recall = the entry it was made from is what comes back.
            var samples: [Double] = []
            var found = 0
            for (number, original) in stored.prefix(self.lookups).enumerated() {
                let query = near(original, similarity: self.querySimilarity)
                let start = ContinuousClock.now
                let hit = index.nearest(query, partition: "p", threshold: self.querySimilarity - 0.1)
                samples.append((ContinuousClock.now - start).seconds * 1_000_000)
                if hit?.key == "entry-\(number * every)" { found += 1 }
            }
            samples.sort()
            let p50 = Int(samples[samples.count / 2].rounded())
            let p99 = Int(samples[min(samples.count - 1, samples.count * 99 / 100)].rounded())
            let recall = Double(found) / Double(max(1, samples.count))
            let kind = self.entries > self.approximateAbove ? "HNSW, search width \(self.searchWidth)" : "flat"
            let summary = "entries \(self.entries), \(self.dimensions) dims, \(self.distribution.rawValue) (\(kind)): lookup p50 \(p50) µs, p99 \(p99) µs, "
                + "recall \((recall * 1000).rounded() / 1000); about \(Int(perEntry.rounded())) bytes an entry; built in \((buildSeconds * 10).rounded() / 10) s"
            FileHandle.standardOutput.write(Data((summary + "\n").utf8))
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
