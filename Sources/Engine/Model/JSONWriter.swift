/// A minimal JSON text builder for the small documents the gateway writes on the hot path
/// (error envelopes, stream error events): cheaper than `JSONEncoder` and it keeps key order stable.
public struct JSONWriter: Sendable {
    public private(set) var output = ""
    private var needsComma = false

    public init() {}

    public mutating func openObject() {
        self.separate()
        self.output.append("{")
        self.needsComma = false
    }

    public mutating func closeObject() {
        self.output.append("}")
        self.needsComma = true
    }

    public mutating func openArray() {
        self.separate()
        self.output.append("[")
        self.needsComma = false
    }

    public mutating func closeArray() {
        self.output.append("]")
        self.needsComma = true
    }

    /// Writes `"name":` and leaves the writer ready for the value.
    public mutating func key(_ name: String) {
        self.separate()
        Self.appendQuoted(name, to: &self.output)
        self.output.append(":")
        self.needsComma = false
    }

    public mutating func field(_ name: String, _ value: String?) {
        self.key(name)
        self.value(value)
    }

    public mutating func field(_ name: String, _ value: Int) {
        self.key(name)
        self.value(value)
    }

    public mutating func field(_ name: String, _ value: Bool) {
        self.key(name)
        self.separate()
        self.output.append(value ? "true" : "false")
        self.needsComma = true
    }

    public mutating func field(_ name: String, _ value: Double) {
        self.key(name)
        self.separate()
        self.output.append(value.isFinite ? "\(value)" : "null")
        self.needsComma = true
    }

    public mutating func value(_ value: String?) {
        self.separate()
        if let value {
            Self.appendQuoted(value, to: &self.output)
        } else {
            self.output.append("null")
        }
        self.needsComma = true
    }

    public mutating func value(_ value: Int) {
        self.separate()
        self.output.append(String(value))
        self.needsComma = true
    }

    /// Appends already-encoded JSON (for example a value copied from another document).
    public mutating func raw(_ json: String) {
        self.separate()
        self.output.append(json)
        self.needsComma = true
    }

    private mutating func separate() {
        if self.needsComma { self.output.append(",") }
    }

    /// Appends `text` as a JSON string literal, escaping what RFC 8259 requires.
    public static func appendQuoted(_ text: String, to output: inout String) {
        output.append("\"")
        defer { output.append("\"") }
        // Most text needs no escaping: then it is appended whole, not a scalar at a time.
        guard text.utf8.contains(where: { $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") || $0 < 0x20 }) else {
            return output.append(text)
        }
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": output.append("\\\"")
            case "\\": output.append("\\\\")
            case "\n": output.append("\\n")
            case "\r": output.append("\\r")
            case "\t": output.append("\\t")
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                output.append("\\u" + String(repeating: "0", count: 4 - hex.count) + hex)
            default:
                output.unicodeScalars.append(scalar)
            }
        }
    }

    public static func quoted(_ text: String) -> String {
        var output = ""
        self.appendQuoted(text, to: &output)
        return output
    }
}
