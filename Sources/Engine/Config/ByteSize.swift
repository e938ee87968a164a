/// Sizes in the config file: `8MiB`, `512KiB`, `1GiB`, `100kB`, or a plain number of bytes.
public enum ByteSize {
    private static let units: [(suffix: String, factor: Int)] = [
        ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10),
        ("GB", 1_000_000_000), ("MB", 1_000_000), ("kB", 1_000), ("KB", 1_000), ("B", 1),
    ]

    public static func parse(_ text: String) -> Int? {
        let trimmed = text.trimmingWhitespace()
        for unit in self.units where trimmed.hasSuffix(unit.suffix) {
            let number = trimmed.dropLast(unit.suffix.count).trimmingWhitespace()
            guard let value = Double(number), value >= 0, value * Double(unit.factor) < Double(Int.max) else { return nil }
            return Int(value * Double(unit.factor))
        }
        guard let value = Int(trimmed), value >= 0 else { return nil }
        return value
    }

    /// `8388608` → `8 MiB`; exact multiples only, else bytes.
    public static func format(_ bytes: Int) -> String {
        for unit in self.units.prefix(3) where bytes >= unit.factor && bytes % unit.factor == 0 {
            return "\(bytes / unit.factor) \(unit.suffix)"
        }
        return "\(bytes) bytes"
    }
}

/// Durations in the config file: `500ms`, `30s`, `10m`, `1h`, `1m30s`.
public enum DurationText {
    public static func parse(_ text: String) -> Duration? {
        var rest = Substring(text.trimmingWhitespace())
        guard !rest.isEmpty else { return nil }
        var total = Duration.zero
        while !rest.isEmpty {
            let number = rest.prefix { $0.isNumber || $0 == "." }
            guard !number.isEmpty, let value = Double(number) else { return nil }
            rest = rest.dropFirst(number.count)
            let unit = rest.prefix { $0.isLetter }
            rest = rest.dropFirst(unit.count)
            let millis: Double
            switch unit {
            case "ms": millis = value
            case "s": millis = value * 1_000
            case "m": millis = value * 60_000
            case "h": millis = value * 3_600_000
            default: return nil
            }
            // Past a thousand years a duration is a typo; `Int64(_:)` would trap on 1e20h.
            guard millis < 3e13 else { return nil }
            total += .milliseconds(Int64(millis.rounded()))
        }
        return total
    }

    /// `Duration` → `1.5s`, `250ms`, `10m`: the inverse of `parse` for messages and logs.
    public static func format(_ duration: Duration) -> String {
        let millis = duration.milliseconds
        if millis < 1_000 { return "\(millis)ms" }
        if millis % 3_600_000 == 0 { return "\(millis / 3_600_000)h" }
        if millis % 60_000 == 0 { return "\(millis / 60_000)m" }
        if millis % 1_000 == 0 { return "\(millis / 1_000)s" }
        return "\(Double(millis) / 1_000)s"
    }
}

extension Duration {
    /// Whole milliseconds, truncated.
    public var milliseconds: Int64 {
        let (seconds, attoseconds) = self.components
        return seconds * 1_000 + attoseconds / 1_000_000_000_000_000
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> String {
        let scalars = self.unicodeScalars.drop { $0.properties.isWhitespace }
        var end = scalars.endIndex
        while end > scalars.startIndex {
            let before = scalars.index(before: end)
            guard scalars[before].properties.isWhitespace else { break }
            end = before
        }
        return String(String.UnicodeScalarView(scalars[scalars.startIndex..<end]))
    }
}
