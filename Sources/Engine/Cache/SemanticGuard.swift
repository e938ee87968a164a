/// The check of meaning a semantic hit must pass after the similarity threshold: two last turns
/// that an embedding model finds close may still ask different things, and the cached answer to one
/// is then a confident wrong answer to the other. The guard reads both questions for the details an
/// embedding blurs, and refuses the hit, naming why, when they differ in any of them: numbers and
/// quantities (digits or words), units, dates and times, negation, comparison and direction
/// (opposite words, or the same things in another order around "to", "than", "from"), names,
/// quoted strings, code (identifiers, paths, URLs, flags), or the language of the question.
///
/// Deterministic and pure: the same two questions always get the same verdict. It errs towards
/// refusing: a refused paraphrase costs one upstream call, a wrong hit a wrong answer.
public enum SemanticGuard {
    public enum Refusal: String, Sendable, CaseIterable {
        case number, unit, date, negation, direction, entity, quote, code, language
        /// The cached answer does not say which question it answered (filed before the guard).
        case unverifiable
        /// A question longer than `longestQuestion`: too long to read whole, so never matched.
        case length
    }

    /// The longest question the guard reads (UTF-8 bytes): past it, a match is refused rather
    /// than read in part (and its reading stays bounded, whatever a client sends).
    public static let longestQuestion = 4_096

    /// Why the cached answer to `cached` must not answer `asked`; nil when it may.
    public static func refusal(cached: String, asked: String) -> Refusal? {
        if cached == asked { return nil }
        guard cached.utf8.count <= Self.longestQuestion, asked.utf8.count <= Self.longestQuestion else { return .length }
        let first = QuestionReading(cached)
        let second = QuestionReading(asked)
        if first.language != second.language { return .language }
        if Self.unmatchedQuote(first.quotes, in: asked) || Self.unmatchedQuote(second.quotes, in: cached) { return .quote }
        if first.code != second.code { return .code }
        if first.dates != second.dates { return .date }
        if Set(first.numbers.map(\.value)) != Set(second.numbers.map(\.value)) { return .number }
        if Self.unitsDiffer(first, second) { return .unit }
        if first.negations != second.negations || Self.flipped(first.words, second.words) { return .negation }
        if Self.opposed(first.poles, second.poles) || Self.crossed(first, second) || Self.reordered(first.words, second.words)
            || Self.unitsReordered(first, second)
        {
            return .direction
        }
        if Self.unmatchedName(first, second) || Self.unmatchedName(second, first) || Self.swappedWords(first.words, second.words) { return .entity }
        return nil
    }

    /// A name of one question that the other does not have, as a name or as a word ("String" and
    /// "string" are one; "Austria" and "Australia" are not).
    private static func unmatchedName(_ one: QuestionReading, _ other: QuestionReading) -> Bool {
        let words = Set(other.words)
        return one.names.contains { !other.names.contains($0) && !words.contains($0) && !other.initialWords.contains($0) }
    }

    /// A quoted string of one question that the other does not contain (quoted or not).
    private static func unmatchedQuote(_ quotes: Set<String>, in other: String) -> Bool {
        let folded = other.lowercased()
        return quotes.contains { !folded.contains($0.lowercased()) }
    }

    /// Units that differ: a value both name with other units ("5 km", "5 miles"), or measurement
    /// units named without a number ("in miles", "in kilometres").
    private static func unitsDiffer(_ first: QuestionReading, _ second: QuestionReading) -> Bool {
        for (one, other) in [(first, second), (second, first)] {
            for quantity in one.numbers {
                guard let unit = quantity.unit else { continue }
                let others = other.numbers.filter { $0.value == quantity.value }.compactMap(\.unit)
                if !others.isEmpty && !others.contains(unit) { return true }
            }
        }
        return Set(first.bareUnits) != Set(second.bareUnits)
    }

    /// A word one question has that is the other's word with a negating prefix ("unsafe" and "safe").
    private static func flipped(_ first: [String], _ second: [String]) -> Bool {
        let firstSet = Set(first)
        let secondSet = Set(second)
        func negates(_ words: Set<String>, _ others: Set<String>) -> Bool {
            words.subtracting(others).contains { word in
                SemanticGuardLexicon.negatingPrefixes.contains { prefix in
                    guard word.hasPrefix(prefix), word.count - prefix.count >= 3 else { return false }
                    return others.contains(String(word.dropFirst(prefix.count)))
                }
            }
        }
        return negates(firstSet, secondSet) || negates(secondSet, firstSet)
    }

    /// Whether a family of opposites that both questions use points to other poles in each.
    private static func opposed(_ first: [String: Set<Int>], _ second: [String: Set<Int>]) -> Bool {
        first.contains { family, poles in second[family].map { $0 != poles } ?? false }
    }

    /// Whether the two ends trade places: what one question goes from (or puts first: "X than Y",
    /// "X to Y") is what the other goes to, and the other way round ("km to miles" and "miles to km",
    /// "from the server to my machine" and back).
    private static func crossed(_ first: QuestionReading, _ second: QuestionReading) -> Bool {
        let swapped = !first.origins.isDisjoint(with: second.destinations) && !first.destinations.isDisjoint(with: second.origins)
        // Around a comparison ("X than Y", "X instead of Y") one side moving over is enough.
        let compared = !first.compared.isDisjoint(with: second.comparedTo) || !first.comparedTo.isDisjoint(with: second.compared)
        return swapped || compared
    }

    /// Units named in another order in questions that convert the same way ("100 °F in Celsius" and
    /// "100 °C in Fahrenheit").
    private static func unitsReordered(_ first: QuestionReading, _ second: QuestionReading) -> Bool {
        let connectors: Set<String> = ["to", "in", "into"]
        guard first.unitOrder.count >= 2, Set(first.unitOrder) == Set(second.unitOrder), first.unitOrder != second.unitOrder else { return false }
        return Set(first.words).intersection(connectors) == Set(second.words).intersection(connectors)
    }

    /// The questions are the same words but for one or two small edits (up to three words each), and
    /// each edit says something: a swapped or added name or thing ("side effects of ibuprofen" and
    /// "of naproxen", "chmod 755" and "chown 755", "a whale" and "a whale shark", "drink water" and
    /// "eat protein"), which an embedding rates as close as a synonym. A rewording changes more.
    private static func swappedWords(_ first: [String], _ second: [String]) -> Bool {
        let edits = Self.edits(first, second)
        guard (1...2).contains(edits.count), edits.allSatisfy({ $0.removed.count <= 3 && $0.added.count <= 3 }) else { return false }
        let content = { (words: [String]) in words.contains { !SemanticGuardLexicon.common.contains($0) } }
        return edits.allSatisfy { edit in
            guard Set(edit.removed.map(QuestionReading.stem)) != Set(edit.added.map(QuestionReading.stem)) else { return false }
            // Added words must say something; swapped ones must on both sides ("what is" for "can you state" does not).
            return edit.removed.isEmpty || edit.added.isEmpty ? content(edit.removed + edit.added) : content(edit.removed) && content(edit.added)
        }
    }

    /// The edits that turn one word sequence into the other, from their longest common subsequence.
    private static func edits(_ first: [String], _ second: [String]) -> [(removed: [String], added: [String])] {
        let (n, m) = (first.count, second.count)
        guard n <= 200, m <= 200 else { return [(first, second)] }
        var lengths = [[Int]](repeating: [Int](repeating: 0, count: m + 1), count: n + 1)
        for i in stride(from: n - 1, through: 0, by: -1) {
            for j in stride(from: m - 1, through: 0, by: -1) {
                lengths[i][j] = first[i] == second[j] ? lengths[i + 1][j + 1] + 1 : max(lengths[i + 1][j], lengths[i][j + 1])
            }
        }
        var edits: [(removed: [String], added: [String])] = []
        var current: (removed: [String], added: [String]) = ([], [])
        var (i, j) = (0, 0)
        while i < n || j < m {
            if i < n, j < m, first[i] == second[j] {
                if !current.removed.isEmpty || !current.added.isEmpty { edits.append(current) }
                current = ([], [])
                (i, j) = (i + 1, j + 1)
            } else if j < m, i == n || lengths[i][j + 1] >= lengths[i + 1][j] {
                current.added.append(second[j])
                j += 1
            } else {
                current.removed.append(first[i])
                i += 1
            }
        }
        if !current.removed.isEmpty || !current.added.isEmpty { edits.append(current) }
        return edits
    }

    /// The same words in another order: who does what to whom has changed ("runs in the terminal
    /// but not in cron" and the other way round).
    private static func reordered(_ first: [String], _ second: [String]) -> Bool {
        first != second && first.sorted() == second.sorted()
    }
}

/// What `SemanticGuard` reads in one question.
struct QuestionReading {
    struct Quantity: Equatable {
        var value: Double
        var unit: String?
    }

    private(set) var words: [String] = []
    private(set) var numbers: [Quantity] = []
    /// Measurement units named without a number ("in miles").
    private(set) var bareUnits: [String] = []
    /// Every unit named, in the order of the text, each once.
    private(set) var unitOrder: [String] = []
    private(set) var dates: Set<String> = []
    private(set) var negations = 0
    /// Each family of opposites the question uses, and which poles.
    private(set) var poles: [String: Set<Int>] = [:]
    private(set) var names: Set<String> = []
    /// Capitalised words that start a sentence: names, or not ("Pride and Prejudice was…", "Explain…").
    private(set) var initialWords: Set<String> = []
    private(set) var quotes: Set<String> = []
    private(set) var code: Set<String> = []
    private(set) var language = "en"
    /// What the question goes from, or puts first ("from X", "X to", "X than") and what it goes to
    /// ("to Y", "than Y"): content words beside its direction words.
    private(set) var origins: Set<String> = []
    private(set) var destinations: Set<String> = []
    /// The sides of a comparison ("X than Y", "X instead of Y").
    private(set) var compared: Set<String> = []
    private(set) var comparedTo: Set<String> = []

    init(_ text: String) {
        self.quotes = Self.quoted(in: text)
        self.language = Self.language(of: text)
        let chunks = Self.chunks(of: text)
        var index = 0
        var pendingNumber: Double?
        var previousWasNumber = false
        while index < chunks.count {
            let chunk = chunks[index]
            defer { index += 1 }
            if Self.isCode(chunk.text) { self.code.insert(chunk.text) }
            if let (value, unit, time) = Self.numeral(chunk.text) {
                if let time { self.dates.insert(time) }
                var quantity = QuestionReading.Quantity(value: value, unit: unit)
                // Numbers join the words as values, so "2" and "two" read alike ("2-day" as "2 day").
                self.words.append(Self.spelled(value))
                if let glued = chunk.text.lowercased().drop(while: { !$0.isLetter }).split(separator: "-").first, !glued.isEmpty, time == nil {
                    self.words.append(String(glued))
                }
                if index + 1 < chunks.count {
                    let next = Self.folded(chunks[index + 1].text)
                    if ["am", "pm", "a.m.", "p.m."].contains(next) {
                        self.dates.insert("\(Self.spelled(value))\(next.prefix(1))m")
                        index += 1
                    } else if unit == nil, let named = SemanticGuardLexicon.units[next] {
                        quantity.unit = named
                        self.words.append(next)
                        index += 1
                    }
                }
                if value >= 1600, value <= 2199, value == value.rounded(), unit == nil, !chunk.text.contains(",") { self.dates.insert("year \(Int(value))") }
                if let unit = quantity.unit, !self.unitOrder.contains(unit) { self.unitOrder.append(unit) }
                self.numbers.append(quantity)
                previousWasNumber = true
                continue
            }
            for word in Self.words(of: chunk.text) {
                self.read(word, chunk: chunk, previousWasNumber: &previousWasNumber, pendingNumber: &pendingNumber, next: index + 1 < chunks.count ? chunks[index + 1] : nil)
            }
        }
        if let pendingNumber { self.numbers.append(Quantity(value: pendingNumber, unit: nil)) }
        self.readDirections()
        self.readPeriods()
    }

    // MARK: Words

    private mutating func read(_ word: String, chunk: Chunk, previousWasNumber: inout Bool, pendingNumber: inout Double?, next: Chunk?) {
        let lexicon = SemanticGuardLexicon.self
        var lower = word.lowercased()
        // A possessive is its word ("last week's" is "last week").
        if lower.hasSuffix("'s") || lower.hasSuffix("’s"), lower.count > 3 { lower.removeLast(2) }
        self.words.append(lexicon.numberWords[lower].map(Self.spelled) ?? lower)
        // Number words, added up where they make one number ("twenty five", "two hundred"); any other
        // word, or a second number that does not continue the first ("two sixes"), ends a run.
        if let value = lexicon.numberWords[lower] {
            if lexicon.multipliers.contains(lower) {
                pendingNumber = (pendingNumber ?? 1) * value
            } else if let pending = pendingNumber, pending.truncatingRemainder(dividingBy: 10) == 0, pending >= 20, value < 10 || (pending >= 100 && value < 100) {
                pendingNumber = pending + value
            } else {
                if let pending = pendingNumber { self.numbers.append(Quantity(value: pending, unit: nil)) }
                pendingNumber = value
            }
            previousWasNumber = true
            return
        }
        if let number = pendingNumber {
            pendingNumber = nil
            var quantity = Quantity(value: number, unit: nil)
            if let unit = lexicon.units[lower] { quantity.unit = unit }
            self.numbers.append(quantity)
            if quantity.unit != nil {
                previousWasNumber = false
                return
            }
        }
        // "one" is a number only before a unit ("one cup"), else a pronoun ("which one").
        if lower == "one", let next, let unit = lexicon.units[Self.folded(next.text)] {
            self.numbers.append(Quantity(value: 1, unit: unit))
            return
        }
        if let ordinal = lexicon.ordinalWords[lower], !(lower == "second" && previousWasNumber) {
            self.numbers.append(Quantity(value: ordinal, unit: "th"))
            previousWasNumber = false
            return
        }
        // Roman numerals in capitals ("World War II", "Henry VIII").
        if word.count >= 2, let value = lexicon.romanNumerals[word] {
            self.numbers.append(Quantity(value: value, unit: "th"))
            self.words[self.words.count - 1] = Self.spelled(value)
            previousWasNumber = false
            return
        }
        previousWasNumber = false
        if lexicon.negations.contains(lower) || lower.hasSuffix("n't") { self.negations += 1 }
        for (family, pole) in lexicon.poles[lower] ?? [] { self.poles[family, default: []].insert(pole) }
        // "in" and "out" point somewhere only after the verbs they complete ("zoom in", "log out").
        if lower == "in" || lower == "out", let verb = self.words.dropLast().last, lexicon.phrasalVerbs.contains(verb) {
            self.poles["in-out", default: []].insert(lower == "in" ? 0 : 1)
        }
        if let unit = lexicon.units[lower], lexicon.measureUnits.contains(unit), !lexicon.unitsOnlyAfterNumbers.contains(lower) {
            self.bareUnits.append(unit)
            if !self.unitOrder.contains(unit) { self.unitOrder.append(unit) }
        }
        if let month = lexicon.months[lower], !lexicon.ambiguousMonths.contains(lower) || Self.isCapitalized(word) {
            self.dates.insert("month \(month)")
        }
        if lexicon.dayWords.contains(lower) { self.dates.insert(lower) }
        if let name = self.name(word, lower: lower, chunk: chunk) { self.names.insert(name) }

    }

    /// The name a word is, if it is one: a capitalised word past the start of a sentence, an
    /// acronym, a word with a capital inside (JavaScript), or a well-known name in any case.
    private mutating func name(_ word: String, lower: String, chunk: Chunk) -> String? {
        let lexicon = SemanticGuardLexicon.self
        let bare = lower.hasSuffix("'s") || lower.hasSuffix("’s") ? String(lower.dropLast(2)) : lower
        let canonical = lexicon.aliases[bare] ?? bare
        guard bare.count > 0, bare != "i" else { return nil }
        let capitalized = Self.isCapitalized(word)
        let letters = word.filter(\.isLetter)
        let acronym = letters.count >= 2 && letters.allSatisfy(\.isUppercase)
        let innerCapital = zip(word, word.dropFirst()).contains { $0.isLowercase && $1.isUppercase }
        if lexicon.names.contains(bare) || lexicon.aliases[bare] != nil {
            if lexicon.namesOnlyCapitalized.contains(bare) && !capitalized { return nil }
            return canonical
        }
        if acronym || innerCapital { return canonical }
        guard capitalized, !lexicon.common.contains(bare) else { return nil }
        guard !chunk.startsSentence else {
            self.initialWords.insert(canonical)
            return nil
        }
        // Words the other readings own (months, days, units, opposites) are not names as well.
        if lexicon.months[bare] != nil || lexicon.dayWords.contains(bare) || lexicon.poles[bare] != nil || lexicon.negations.contains(bare) {
            return nil
        }
        return canonical
    }

    /// The content words on either side of each direction word, up to three, not past another one.
    private mutating func readDirections() {
        let lexicon = SemanticGuardLexicon.self
        let words = self.words
        let stops = words.indices.filter { lexicon.connectors.contains(words[$0]) }
        for stop in stops {
            let previousStop = stops.last { $0 < stop } ?? -1
            let nextStop = stops.first { $0 > stop } ?? words.count
            let before = words[(previousStop + 1)..<stop].filter(Self.isContent).suffix(3)
            let after = words[(stop + 1)..<nextStop].filter(Self.isContent).prefix(3)
            if words[stop] == "from" {
                self.origins.formUnion(after)
            } else {
                self.origins.formUnion(before)
                self.destinations.formUnion(after)
            }
            if lexicon.comparisons.contains(words[stop]) {
                self.compared.formUnion(before)
                self.comparedTo.formUnion(after)
            }
        }
        // A word on both sides in one question says nothing about its direction.
        let both = self.origins.intersection(self.destinations)
        self.origins.subtract(both)
        self.destinations.subtract(both)
        let sides = self.compared.intersection(self.comparedTo)
        self.compared.subtract(sides)
        self.comparedTo.subtract(sides)
        // "keep X from doing", "stop X from doing": an exclusion, counted with the negations.
        for stop in stops where words[stop] == "from" && stop + 1 < words.count && words[stop + 1].hasSuffix("ing") {
            self.negations += 1
        }
    }

    private static func isContent(_ word: String) -> Bool {
        !SemanticGuardLexicon.common.contains(word) && !SemanticGuardLexicon.connectors.contains(word) && word.count >= 2
    }

    /// How often ("every day", "a week", "per month") and which period ("next week", "last year").
    private mutating func readPeriods() {
        let lexicon = SemanticGuardLexicon.self
        for (index, word) in self.words.enumerated() {
            if let frequency = lexicon.frequencies[word] { self.dates.insert(frequency) }
            guard index > 0 else { continue }
            let before = self.words[index - 1]
            let singular = word.hasSuffix("s") && lexicon.frequencyOf[String(word.dropLast())] != nil ? String(word.dropLast()) : word
            // "a week" is how often only after an amount ("200 a week", "twice a day"); "for a week" is how long.
            let afterAmount = index > 1 && (Double(self.words[index - 2]) != nil || lexicon.numberWords[self.words[index - 2]] != nil || self.words[index - 2] == "times")
            if lexicon.frequencyWords.contains(before), before != "a" && before != "an" || afterAmount, let frequency = lexicon.frequencyOf[singular] {
                self.dates.insert(frequency)
            }
            if lexicon.relativePeriod.contains(before), lexicon.periods.contains(singular) || lexicon.dayWords.contains(word) {
                self.dates.insert("\(before) \(singular)")
            }
        }
    }

    // MARK: Pieces

    struct Chunk {
        /// Without the punctuation around it.
        let text: String
        let startsSentence: Bool
    }

    /// The text split at white space, each piece without the punctuation around it.
    static func chunks(of text: String) -> [Chunk] {
        var chunks: [Chunk] = []
        var sentenceStart = true
        for raw in text.split(whereSeparator: \.isWhitespace) {
            var trimmed = Self.trimmed(raw, Self.surrounding)
            // A sentence's full stop is not part of its last word ("7am.", "os.path.join.").
            while trimmed.hasSuffix(".") && trimmed.count > 1 && !trimmed.hasSuffix("..") { trimmed.removeLast() }
            // "carbon-14", "COVID-19": the number stands apart, as in "carbon 14".
            let parts = trimmed.split(separator: "-")
            if parts.count == 2, parts[1].allSatisfy(\.isNumber), parts[0].allSatisfy(\.isLetter), !Self.isCode(trimmed) {
                chunks.append(Chunk(text: String(parts[0]), startsSentence: sentenceStart))
                chunks.append(Chunk(text: String(parts[1]), startsSentence: false))
            } else if !trimmed.isEmpty {
                chunks.append(Chunk(text: trimmed, startsSentence: sentenceStart))
            }
            if let last = raw.last { sentenceStart = ".?!:;".contains(last) && !Self.isCode(trimmed) } else { sentenceStart = false }
            if trimmed.isEmpty && raw.contains(where: { ".?!".contains($0) }) { sentenceStart = true }
        }
        return chunks
    }

    private static let surrounding = Set<Character>(",;:!?()[]{}\"'“”‘’«»¿¡…`*")

    /// A chunk's words: letters and digits, apostrophes and hyphens inside a word kept.
    static func words(of chunk: String) -> [String] {
        chunk.split { !($0.isLetter || $0.isNumber || $0 == "'" || $0 == "’" || $0 == "-" || $0 == "+" || $0 == "#") }
            .flatMap { piece -> [String] in
                let word = Self.trimmed(piece, Set("-'’"))
                // Hyphenated number words ("twenty-five") are their parts; other hyphenated words stay whole.
                let parts = word.split(separator: "-").map(String.init)
                if parts.count > 1, SemanticGuardLexicon.numberWords[parts[0].lowercased()] != nil { return parts }
                return word.isEmpty ? [] : [word]
            }
    }

    /// A numeral: digits (with thousands separators, a decimal point, a sign), a fraction, a
    /// currency before it, a unit glued after it ("5km", "50%", "3.5GB"), or a clock time.
    /// - Returns: its value, its unit, and the time it names when it is one.
    static func numeral(_ chunk: String) -> (Double, String?, String?)? {
        var text = Substring(chunk)
        var unit: String?
        if let first = text.first, let currency = SemanticGuardLexicon.units[String(first)], "$€£¥₹".contains(first) {
            unit = currency
            text = text.dropFirst()
        }
        guard let first = text.first, first.isNumber || ((first == "-" || first == "+" || first == ".") && text.dropFirst().first?.isNumber == true) else {
            return nil
        }
        // A clock time: 3:30, 15:00.
        if let colon = text.firstIndex(of: ":"), text[..<colon].allSatisfy(\.isNumber), text[text.index(after: colon)...].prefix(2).allSatisfy(\.isNumber) {
            let rest = text[text.index(after: colon)...]
            let suffix = rest.drop(while: \.isNumber).lowercased()
            return (Double(text[..<colon]) ?? 0, nil, "\(text[..<colon]):\(rest.prefix(while: \.isNumber))\(suffix)")
        }
        var digits = ""
        var index = text.startIndex
        while index < text.endIndex {
            let character = text[index]
            if character.isNumber || character == "." || character == "-" || character == "+" {
                if (character == "-" || character == "+") && !digits.isEmpty { break }
                digits.append(character)
            } else if character == ",", text[text.index(after: index)...].prefix(3).allSatisfy(\.isNumber), text[text.index(after: index)...].count >= 3 {
                // A thousands separator.
            } else if character == "/", let slash = Double(digits), let denominator = Double(text[text.index(after: index)...].prefix(while: \.isNumber)), denominator != 0 {
                return (slash / denominator, unit, nil)
            } else {
                break
            }
            index = text.index(after: index)
        }
        if digits.hasSuffix(".") { digits.removeLast() }
        guard let value = Double(digits), value.isFinite else { return nil }
        let suffix = String(text[index...].drop { $0 == "-" }).lowercased()
        if !suffix.isEmpty {
            if ["st", "nd", "rd", "th"].contains(suffix) { return (value, "th", nil) }
            if suffix == "am" || suffix == "pm" { return (value, nil, "\(value)\(suffix)") }
            if suffix == "s", value >= 1000 { return (value, "decade", nil) }
            unit = SemanticGuardLexicon.units[suffix] ?? suffix
        }
        return (value, unit, nil)
    }

    /// A piece of code: a URL, a path, a flag, an identifier with `_`, `.`, `::` or a call's
    /// parentheses, or a camelCase name.
    static func isCode(_ chunk: String) -> Bool {
        let letters = chunk.contains { $0.isLetter }
        guard letters, chunk.count >= 2 else { return false }
        if chunk.contains("://") { return true }
        if chunk.hasPrefix("/") || chunk.hasPrefix("~/") || chunk.hasPrefix("./") || chunk.hasPrefix("../") || chunk.hasPrefix("\\") { return true }
        if chunk.hasPrefix("--") || (chunk.hasPrefix("-") && chunk.dropFirst().first?.isLetter == true && chunk.count <= 3) { return true }
        if chunk.contains("_") || chunk.contains("::") || chunk.contains("->") || chunk.contains("()") || chunk.contains("(") || chunk.contains("=") {
            return true
        }
        if chunk.contains("/") && chunk.contains(".") { return true }
        let parts = chunk.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count >= 2, parts.allSatisfy({ $0.count >= 2 && $0.first?.isLetter == true }) { return true }
        // camelCase: a capital right after a small letter, in a word that starts small.
        if chunk.first?.isLowercase == true, zip(chunk, chunk.dropFirst()).contains(where: { $0.isLowercase && $1.isUppercase }) { return true }
        return false
    }

    /// What is between quotes: "…", “…”, `…`, and '…' when the quotes are not apostrophes.
    static func quoted(in text: String) -> Set<String> {
        var found: Set<String> = []
        let characters = Array(text)
        let pairs: [Character: Character] = ["\"": "\"", "“": "”", "`": "`", "'": "'", "‘": "’", "«": "»"]
        var index = 0
        while index < characters.count {
            let character = characters[index]
            guard let closing = pairs[character] else {
                index += 1
                continue
            }
            // A single quote opens a quotation only after a space or a bracket, never inside a word.
            if character == "'" || character == "‘", index > 0, !(characters[index - 1].isWhitespace || "([{".contains(characters[index - 1])) {
                index += 1
                continue
            }
            var end = index + 1
            while end < characters.count {
                if characters[end] == closing, character != "'" || end + 1 == characters.count || !characters[end + 1].isLetter { break }
                end += 1
            }
            guard end < characters.count, end > index + 1 else {
                index += 1
                continue
            }
            found.insert(String(characters[(index + 1)..<end]))
            index = end + 1
        }
        return found
    }

    /// The question's language: its script, and for Latin script another language than English when
    /// its words or letters say so (a tie between two of them is "foreign").
    static func language(of text: String) -> String {
        var scripts: [String: Int] = [:]
        for scalar in text.unicodeScalars where scalar.properties.isAlphabetic {
            scripts[Self.script(scalar), default: 0] += 1
        }
        guard let (script, _) = scripts.max(by: { $0.value < $1.value }) else { return "none" }
        guard script == "latin" else { return script }
        // Words in capitals are names or acronyms ("LA", "DE"), not a language's words.
        let words = Self.chunks(of: text).flatMap { Self.words(of: $0.text) }.filter { $0 != $0.uppercased() }.map { $0.lowercased() }
        let letters = text.lowercased().filter { SemanticGuardLexicon.foreignLetters.contains($0) }.count
        let scores = SemanticGuardLexicon.languages.map { language in (language.name, words.filter { language.words.contains($0) }.count) }
            .sorted { $0.1 > $1.1 }
        let english = words.filter { SemanticGuardLexicon.english.contains($0) }.count
        guard let best = scores.first, best.1 + min(letters, 2) > english else { return "en" }
        return scores.count > 1 && scores[1].1 == best.1 ? "foreign" : best.0
    }

    private static func script(_ scalar: Unicode.Scalar) -> String {
        switch scalar.value {
        case 0x0000...0x024F, 0x1E00...0x1EFF: "latin"
        case 0x0370...0x03FF: "greek"
        case 0x0400...0x04FF: "cyrillic"
        case 0x0590...0x05FF: "hebrew"
        case 0x0600...0x06FF, 0x0750...0x077F: "arabic"
        case 0x0900...0x097F: "devanagari"
        case 0x0E00...0x0E7F: "thai"
        case 0x3040...0x30FF: "japanese"
        case 0xAC00...0xD7AF, 0x1100...0x11FF: "korean"
        case 0x4E00...0x9FFF, 0x3400...0x4DBF: "han"
        default: "other"
        }
    }

    /// A word without its commonest endings, so "walk" and "walked" count as one word.
    static func stem(_ word: String) -> String {
        for suffix in ["ing", "ed", "es", "s", "ly"] where word.count - suffix.count >= 3 && word.hasSuffix(suffix) {
            return String(word.dropLast(suffix.count))
        }
        return word
    }

    static func trimmed(_ text: Substring, _ characters: Set<Character>) -> String {
        String(text.drop { characters.contains($0) }.reversed().drop { characters.contains($0) }.reversed())
    }

    static func spelled(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }

    static func folded(_ text: String) -> String {
        text.lowercased()
    }

    static func isCapitalized(_ word: String) -> Bool {
        word.first?.isUppercase == true
    }
}
