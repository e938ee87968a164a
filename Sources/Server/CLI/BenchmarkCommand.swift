import ArgumentParser
import Engine
import Foundation
import NIOCore

/// `switchyard benchmark …`: the semantic index, the fast lane's steps and the ledger's writes, for
/// `docs/performance.md`. A benchmark, not a test: build with `-c release` before trusting numbers.
struct BenchmarkCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "benchmark",
        abstract: "Micro-benchmarks of the gateway's own data structures (release builds only).",
        subcommands: [SemanticIndexBenchmark.self, FastPathBenchmark.self, LedgerBenchmark.self]
    )

    /// The fast lane's per-request parsing, each step alone on a typical request and answer: what the
    /// overhead benchmark's CPU per request is made of, without sockets.
    struct FastPathBenchmark: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "fast-path",
            abstract: "Nanoseconds per request of the fast lane's parsing steps (request head, body patch, answer head, usage)."
        )
        @Option(name: .long) var iterations = 200_000

        static let requestBody = #"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a concise assistant that answers questions about HTTP infrastructure. Prefer short, factual answers."},{"role":"user","content":"What is the difference between a reverse proxy and an API gateway? Answer in two sentences."}],"temperature":0.2,"max_tokens":128,"user":"bench-user-42"}"#
        static let requestHead = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:18083\r\nContent-Type: application/json\r\nAccept: application/json\r\nAuthorization: Bearer sk-bench-0000\r\nUser-Agent: bench-wrk/1\r\nContent-Length: 354\r\n\r\n"
        static let answerHead = "HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Thu, 03 Dec 2026 07:29:30 GMT\r\nContent-Type: application/json\r\nContent-Length: 910\r\nConnection: keep-alive\r\nx-request-id: req_mock0001\r\n\r\n"
        static let answerBody = #"{"id":"chatcmpl-0000000000000000000000000001","object":"chat.completion","created":1732500000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"A reverse proxy forwards requests from clients to servers behind it and passes their answers back; it balances load, terminates TLS and caches. An API gateway is a reverse proxy for APIs that also authenticates callers, limits their rates, transforms requests and meters what each consumer uses, with policies per consumer.","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":48,"completion_tokens":61,"total_tokens":109,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_0000000000"}"#

        func run() throws {
            let head = ByteBuffer(string: Self.requestHead)
            let body = ByteBuffer(string: Self.requestBody)
            let answerHead = ByteBuffer(string: Self.answerHead)
            let answer = ByteBuffer(string: Self.answerBody)
            var sink = 0
            /// The fastest of five rounds: the host's noise only ever adds time.
            func time(_ name: String, _ step: () throws -> Int) rethrows {
                for _ in 0..<1_000 { sink &+= try step() }
                var fastest = Double.infinity
                for _ in 0..<5 {
                    let start = ContinuousClock.now
                    for _ in 0..<self.iterations / 5 { sink &+= try step() }
                    let elapsed = (ContinuousClock.now - start).components
                    fastest = min(fastest, (Double(elapsed.seconds) * 1e9 + Double(elapsed.attoseconds) / 1e9) / Double(self.iterations / 5))
                }
                print("\(name.padding(toLength: 34, withPad: " ", startingAt: 0)) \(Int(fastest.rounded())) ns")
            }
            try time("request head (framing, 7 fields)") {
                guard case .head(let parsed) = RequestHead.parse(head) else { throw ValidationError("unframeable head") }
                return parsed.contentLength + (parsed.field("authorization")?.utf8.count ?? 0)
            }
            try time("request body (validate, patch)") {
                let patch = try OpenAIRequestPatch(body: body)
                return patch.upstreamBodyLength(patch.edits(model: "gpt-4o-mini"))
            }
            try time("answer head (framing)") { try ResponseHead.parse(answerHead)?.length ?? 0 }
            try time("answer body (validate, usage)") { try OpenAIResponseSummary.read(answer, provider: "mock", finishReason: false).usage?.outputTokens ?? 0 }
            var config = GatewayConfig()
            config.providers = [ProviderSettings(id: "mock", kind: .openAICompatible, baseURL: "http://127.0.0.1:18080/v1")]
            config.routes = [RouteSettings(alias: "gpt-4o-mini", targets: [RouteTarget(provider: "mock", model: "gpt-4o-mini")])]
            var health = RoutingHealth(config: config)
            let routes = RouteTable(config.routes, rules: config.rules)
            var random = SystemRandomNumberGenerator()
            try time("routing (plan, begin, succeeded)") {
                let now = ContinuousClock.now
                let plan = try routes.plan(RequestFeatures(model: "gpt-4o-mini", streaming: false), health: health, at: now, using: &random)
                guard let ticket = health.begin(plan.first.key, at: now) else { throw ValidationError("not admitted") }
                health.succeeded(ticket, route: plan.first.route, firstToken: nil, total: .microseconds(300), at: now)
                return plan.attemptsStarted
            }
            if sink == 42 { print("") }
        }
    }

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

    struct LedgerBenchmark: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ledger",
            abstract: "Ledger rows a second into SQLite (a temporary file) and, with --database, PostgreSQL, in the writer's batches."
        )
        @Option(name: .long) var rows = 200_000
        @Option(name: .long, help: "A PostgreSQL to measure too (postgres://…); its ledger gets the rows.") var database: String?

        func run() async throws {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-ledger-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            var targets: [(String, any GatewayDatabase)] = [("sqlite", try Store(path: directory + "/switchyard.sqlite"))]
            if let url = self.database {
                targets.append(("postgres", try await PostgresDatabase.forCommandLine(try PostgresSettings.parse(url))))
            }
            let now = Date().timeIntervalSince1970
            let prefix = "bench_\(UUID().uuidString.prefix(8))_"
            let rows = (0..<self.rows).map { number in
                var row = LedgerRow(
                    requestId: "req_\(number)", at: now, tenant: "tenant\(number % 4)", keyId: "key\(number % 8)", route: "route\(number % 3)", provider: "sim",
                    model: "model", outcome: "success", status: 200, inputTokens: 500, cachedTokens: 0, outputTokens: 120, reasoningTokens: 0,
                    costUsd: 0.0012, latencyMs: 180, ttftMs: 40, cache: "miss", attempts: 1
                )
                row.entryId = prefix + String(number)
                return row
            }
            for (name, database) in targets {
                let cpu = Self.processCPUSeconds()
                let started = ContinuousClock.now
                var start = 0
                while start < rows.count {
                    let end = min(start + LedgerWriter.batchSize, rows.count)
                    try await database.append(rows[start..<end])
                    start = end
                }
                let seconds = (ContinuousClock.now - started).seconds
                let used = Self.processCPUSeconds() - cpu
                print(String(
                    format: "%@: %d rows in %.2f s, %.0f rows a second, %.1f us of this process's CPU a row (batches of %d)",
                    name, rows.count, seconds, Double(rows.count) / seconds, used * 1_000_000 / Double(rows.count), LedgerWriter.batchSize
                ))
            }
        }

        /// User and system CPU of this process so far.
        static func processCPUSeconds() -> Double {
            var usage = rusage()
            getrusage(RUSAGE_SELF.rawValue, &usage)
            return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1_000_000
        }
    }
}
