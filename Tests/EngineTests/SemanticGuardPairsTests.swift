import Foundation
import Testing
@testable import Engine

/// The guard on the hand-written pairs of `Benchmarks/semantic-quality/hard-pairs.tsv`, without an
/// embedder: every near miss must be refused; the paraphrases it lets through are the most a
/// semantic cache can serve with it (the benchmark measures the rest with a real model).
struct SemanticGuardPairsTests {
    struct Pair {
        let same: Bool
        let category: String
        let first: String
        let second: String
    }

    static func pairs(_ file: String = "hard-pairs.tsv") throws -> [Pair] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Benchmarks/semantic-quality/\(file)")
        return try String(contentsOf: url, encoding: .utf8).split(separator: "\n").dropFirst().map { line in
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            // The older file has no category column.
            if fields.count == 3 { return Pair(same: fields[0] == "1", category: "?", first: fields[1], second: fields[2]) }
            return Pair(same: fields[0] == "1", category: fields[1], first: fields[2], second: fields[3])
        }
    }

    private func verdicts(_ file: String) throws -> (passedNearMisses: [String], refusedParaphrases: [String], paraphrases: Int, nearMisses: Int) {
        let pairs = try Self.pairs(file)
        var passedNearMisses: [String] = []
        var refusedParaphrases: [String] = []
        for pair in pairs {
            let refusal = SemanticGuard.refusal(cached: pair.first, asked: pair.second)
            if pair.same, let refusal { refusedParaphrases.append("\(refusal): \(pair.first) | \(pair.second)") }
            if !pair.same, refusal == nil { passedNearMisses.append("\(pair.category): \(pair.first) | \(pair.second)") }
        }
        return (passedNearMisses, refusedParaphrases, pairs.filter(\.same).count, pairs.filter { !$0.same }.count)
    }

    /// The benchmark's pairs: every near miss refused, at least nine paraphrases in ten let through.
    @Test func everyNearMissOfTheBenchmarkIsRefused() throws {
        let result = try self.verdicts("hard-pairs.tsv")
        #expect(result.passedNearMisses.isEmpty, "\(result.passedNearMisses.joined(separator: "\n"))")
        #expect(result.refusedParaphrases.count * 10 <= result.paraphrases, "\(result.refusedParaphrases.joined(separator: "\n"))")
    }

    /// The older pairs, written before the guard and never tuned against: what it does on questions
    /// it was not shaped by (most near misses refused, most paraphrases let through; the embedding
    /// threshold judges the rest).
    @Test func theOlderPairsKeepTheirMeasuredShare() throws {
        let result = try self.verdicts("pairs.tsv")
        #expect(result.passedNearMisses.count * 10 <= result.nearMisses, "\(result.passedNearMisses.joined(separator: "\n"))")
        #expect(result.refusedParaphrases.count * 4 <= result.paraphrases, "\(result.refusedParaphrases.joined(separator: "\n"))")
    }
}
