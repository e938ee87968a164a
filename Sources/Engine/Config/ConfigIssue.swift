/// One thing wrong with a config file, located by line and key path.
public struct ConfigIssue: Sendable, Equatable, CustomStringConvertible {
    public let line: Int?
    public let column: Int?
    /// Dotted key path, e.g. `providers.openai.timeouts.idle`.
    public let path: String
    public let message: String

    public init(line: Int?, column: Int?, path: String, message: String) {
        self.line = line
        self.column = column
        self.path = path
        self.message = message
    }

    public var description: String {
        let location = self.line.map { line in self.column.map { "line \(line):\($0)" } ?? "line \(line)" }
        let subject = self.path.isEmpty ? "" : "\(self.path): "
        return location.map { "\($0): \(subject)\(self.message)" } ?? "\(subject)\(self.message)"
    }
}

/// Every problem found in one config file, reported together so an operator fixes them in one pass.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public let source: String
    public let issues: [ConfigIssue]

    public init(source: String, issues: [ConfigIssue]) {
        self.source = source
        self.issues = issues
    }

    public var description: String {
        let noun = self.issues.count == 1 ? "problem" : "problems"
        return "\(self.source): \(self.issues.count) \(noun):\n" + self.issues.map { "  \(self.source): \($0)" }.joined(separator: "\n")
    }
}

enum Suggestion {
    /// The closest known word, when it is close enough to be a plausible typo.
    static func closest(to word: String, in candidates: [String]) -> String? {
        let scored = candidates.map { ($0, self.distance(word.lowercased(), $0.lowercased())) }
        guard let best = scored.min(by: { $0.1 < $1.1 }) else { return nil }
        return best.1 <= max(2, word.count / 3) ? best.0 : nil
    }

    /// Levenshtein distance.
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a.unicodeScalars)
        let b = Array(b.unicodeScalars)
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}
