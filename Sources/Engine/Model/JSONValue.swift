/// A parsed JSON value that keeps object members in their order, for the parts of a request the
/// gateway must translate (messages, tool schemas, tool inputs) rather than pass through.
public import NIOCore

public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// The number's own text, so no precision is lost on the way through.
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([(key: String, value: JSONValue)])

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.number(let a), .number(let b)): return a == b
        case (.string(let a), .string(let b)): return a == b
        case (.array(let a), .array(let b)): return a == b
        case (.object(let a), .object(let b)): return a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: return false
        }
    }

    // MARK: Parsing

    /// Parses a complete JSON document.
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(JSONScanner.SyntaxError) -> JSONValue {
        try JSONScanner.validate(bytes)
        return try Self.value(in: bytes, range: 0..<bytes.count)
    }

    /// The body as JSON, or nil when it is not valid JSON (upstream answers: the caller says whose fault).
    public static func parse(_ body: ByteBuffer) -> JSONValue? {
        body.withUnsafeReadableBytes { try? JSONValue.parse($0) }
    }

    /// A client's request body as a JSON object.
    /// - Throws: `malformedRequest` (400) saying where the JSON breaks.
    public static func requestObject(_ body: ByteBuffer) throws(GatewayError) -> JSONValue {
        let parsed: Result<JSONValue, JSONScanner.SyntaxError> = body.withUnsafeReadableBytes { bytes in
            do throws(JSONScanner.SyntaxError) {
                return .success(try JSONValue.parse(bytes))
            } catch {
                return .failure(error)
            }
        }
        switch parsed {
        case .success(let value):
            guard case .object = value else { throw .malformedRequest("the body must be a JSON object") }
            return value
        case .failure(let error):
            throw .malformedRequest(error.description)
        }
    }

    public static func parse(_ text: String) throws(JSONScanner.SyntaxError) -> JSONValue {
        var utf8 = Array(text.utf8)
        let result: Result<JSONValue, JSONScanner.SyntaxError> = utf8.withUnsafeMutableBytes { buffer in
            do throws(JSONScanner.SyntaxError) {
                return .success(try Self.parse(UnsafeRawBufferPointer(buffer)))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// The value at `range` of an already validated document (whitespace around it allowed).
    static func value(in bytes: UnsafeRawBufferPointer, range: Range<Int>) throws(JSONScanner.SyntaxError) -> JSONValue {
        var start = range.lowerBound
        var end = range.upperBound
        while start < end, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[start]) { start += 1 }
        while end > start, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[end - 1]) { end -= 1 }
        guard start < end else { throw JSONScanner.SyntaxError(message: "empty value", offset: start) }
        switch bytes[start] {
        case UInt8(ascii: "{"):
            var members: [(key: String, value: JSONValue)] = []
            for member in try JSONScanner.members(ofObjectIn: bytes, range: start..<end) {
                members.append((member.key, try Self.value(in: bytes, range: member.valueRange)))
            }
            return .object(members)
        case UInt8(ascii: "["):
            var elements: [JSONValue] = []
            for element in try JSONScanner.elements(ofArrayIn: bytes, range: start..<end) {
                elements.append(try Self.value(in: bytes, range: element.range))
            }
            return .array(elements)
        case UInt8(ascii: "\""):
            return .string(try JSONScanner.decodeString(in: bytes, range: start..<end))
        case UInt8(ascii: "t"): return .bool(true)
        case UInt8(ascii: "f"): return .bool(false)
        case UInt8(ascii: "n"): return .null
        default:
            return .number(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self))
        }
    }

    // MARK: Access

    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.key == key }?.value
    }

    public var string: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    public var int: Int? {
        if case .number(let text) = self { return Int(text) ?? Double(text).flatMap { $0 == $0.rounded() ? Int(exactly: $0) : nil } }
        return nil
    }

    /// A whole number (`12`, `1e3`, `12.0`), saturated at `Int.min`/`Int.max` when it says more; nil
    /// for fractions and anything but a number.
    public var wholeNumber: Int? {
        guard case .number(let text) = self else { return nil }
        if let exact = Int(text) { return exact }
        guard let value = Double(text), value == value.rounded(.towardZero) else { return nil }
        // 2^63 is exactly representable; anything at or past it saturates.
        guard abs(value) < 9_223_372_036_854_775_808.0 else { return value < 0 ? Int.min : Int.max }
        return Int(value)
    }

    /// A token count from an upstream or a stored answer, held to `0...UntrustedNumber.tokenCeiling`
    /// however large its text; nil for anything but a number.
    public var tokenCount: Int? {
        guard case .number(let text) = self else { return nil }
        if let exact = Int(text) { return UntrustedNumber.tokens(exact) }
        return Double(text).map { UntrustedNumber.count($0, ceiling: UntrustedNumber.tokenCeiling) }
    }

    public var double: Double? {
        if case .number(let text) = self { return Double(text) }
        return nil
    }

    public var bool: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    public var array: [JSONValue]? {
        if case .array(let value) = self { return value }
        return nil
    }

    public var isNull: Bool { self == .null }

    /// An object's member names in order; empty for anything else.
    public var keys: [String] {
        guard case .object(let members) = self else { return [] }
        return members.map(\.key)
    }

    // MARK: Writing

    /// Compact JSON text.
    public var jsonText: String {
        var output = ""
        self.write(to: &output)
        return output
    }

    private func write(to output: inout String) {
        switch self {
        case .null: output += "null"
        case .bool(let value): output += value ? "true" : "false"
        case .number(let text): output += text
        case .string(let value): JSONWriter.appendQuoted(value, to: &output)
        case .array(let elements):
            output += "["
            for (index, element) in elements.enumerated() {
                if index > 0 { output += "," }
                element.write(to: &output)
            }
            output += "]"
        case .object(let members):
            output += "{"
            for (index, member) in members.enumerated() {
                if index > 0 { output += "," }
                JSONWriter.appendQuoted(member.key, to: &output)
                output += ":"
                member.value.write(to: &output)
            }
            output += "}"
        }
    }
}
