import NIOCore
@testable import Engine

/// The JSON scanner (Sources/Engine/Dialects/JSONScanner.swift), `JSONValue` and the fast path's
/// in-place patcher (`OpenAIRequestPatch`).
enum JSONTargets {
    /// Every entry point of the scanner on the same bytes; they must agree with one another, and a
    /// parsed value written out must parse back to itself.
    static func scanner(_ bytes: UnsafeRawBufferPointer) {
        let valid = (try? JSONScanner.validate(bytes)) != nil
        let value = try? JSONValue.parse(bytes)
        require(valid == (value != nil), "validate says \(valid), JSONValue.parse says \(value != nil)")

        let members = try? JSONScanner.topLevelMembers(of: bytes)
        var isObject = false
        if case .object? = value { isObject = true }
        require((members != nil) == isObject, "topLevelMembers and JSONValue disagree on an object")

        var named: [JSONScanner.NamedMember] = []
        let names: [JSONScanner.MemberName] = ["model", "usage"] + OpenAIUsage.names(inside: 1, from: 2)
        let namedOK = (try? JSONScanner.forEachTopLevelMember(of: bytes, named: names) { named.append($0) }) != nil
        require(namedOK == (members != nil), "forEachTopLevelMember and topLevelMembers disagree")

        if let members {
            let models = members.filter { $0.key == "model" }.map(\.valueRange)
            require(named.filter { $0.name == 0 }.map(\.valueRange) == models, "the two scans find different 'model' members")
            for member in members { Self.explore(bytes, member.valueRange, member.kind, depth: 0) }
            var usage = Usage()
            for member in named where member.name >= 2 { OpenAIUsage.take(member, from: 2, in: bytes, into: &usage) }
        }

        if let value {
            Self.touch(value)
            let text = value.jsonText
            guard let again = try? JSONValue.parse(text) else {
                require(false, "JSONValue wrote text it cannot parse: \(text)")
                return
            }
            require(again == value, "JSONValue changed on a round trip: \(text)")
            require(again.jsonText == text, "JSONValue's text changed on a second round trip")
        }
    }

    /// The scanner's entry points for values inside an already validated document.
    private static func explore(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ kind: JSONScanner.ValueKind, depth: Int) {
        guard depth < 4 else { return }
        switch kind {
        case .string:
            require((try? JSONScanner.decodeString(in: bytes, range: range)) != nil, "a validated string does not decode")
        case .number:
            let member = JSONScanner.NamedMember(name: 0, valueRange: range, kind: kind)
            // Whole numbers read exactly, or saturated when their digits say more than an Int holds.
            if let integer = JSONScanner.integer(in: bytes, member) {
                let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
                require(integer == Int(text) ?? (text.hasPrefix("-") ? Int.min : Int.max), "integer \(integer) misreads \(text)")
            }
        case .object:
            guard let inner = try? JSONScanner.members(ofObjectIn: bytes, range: range) else {
                require(false, "a validated object does not scan")
                return
            }
            _ = try? OpenAIUsage.parse(bytes, range: range)
            for member in inner { Self.explore(bytes, member.valueRange, member.kind, depth: depth + 1) }
        case .array:
            let elements: [(range: Range<Int>, kind: JSONScanner.ValueKind)]
            let first: (range: Range<Int>, kind: JSONScanner.ValueKind)?
            do {
                elements = try JSONScanner.elements(ofArrayIn: bytes, range: range)
                first = try JSONScanner.firstElement(ofArrayIn: bytes, range: range)
            } catch {
                require(false, "a validated array does not scan: \(error)")
                return
            }
            require(first?.range == elements.first?.range, "firstElement and elements disagree")
            for element in elements { Self.explore(bytes, element.range, element.kind, depth: depth + 1) }
        case .bool, .null:
            break
        }
    }

    /// The accessors the decoders use on every value.
    private static func touch(_ value: JSONValue) {
        switch value {
        case .number:
            _ = value.int
            _ = value.double
        case .array(let elements):
            for element in elements { Self.touch(element) }
        case .object(let members):
            _ = value.keys
            for member in members {
                _ = value[member.key]
                Self.touch(member.value)
            }
        default:
            break
        }
    }

    /// `OpenAIRequestPatch` on a client body, then the upstream bodies it writes: valid JSON, with the
    /// new model and, for a stream, `stream_options.include_usage` true, and exactly the length it said.
    static func openAIPatch(_ bytes: UnsafeRawBufferPointer) {
        guard let patch = try? OpenAIRequestPatch(body: ByteBuffer(bytes: bytes)) else { return }
        if let maxTokens = patch.maxTokens { require(maxTokens >= 0, "a negative max_tokens \(maxTokens)") }
        for (model, requestStreamUsage) in [("gpt-4o-mini", true), ("a \"quoted\" \\ model \u{1F600}\n", false)] {
            let edits = patch.edits(model: model, requestStreamUsage: requestStreamUsage)
            let body = patch.upstreamBody(model: model, requestStreamUsage: requestStreamUsage)
            require(body.readableBytes == patch.upstreamBodyLength(edits), "the upstream body's length is not the one computed")
            let upstream = body.withUnsafeReadableBytes { try? JSONValue.parse($0) }
            guard let upstream else {
                require(false, "the patched body is not JSON: \(String(buffer: body))")
                return
            }
            require(Self.all("model", in: upstream) == [.string(model)], "the patched body's model is not the one routed to: \(String(buffer: body))")
            if patch.isStreaming && requestStreamUsage {
                let options = Self.all("stream_options", in: upstream)
                require(options.count == 1 && Self.all("include_usage", in: options[0]).last == .bool(true), "a stream without include_usage: \(String(buffer: body))")
            }
            // The patched body goes through the same gate as a client's.
            guard let again = try? OpenAIRequestPatch(body: body) else {
                require(false, "the patched body is refused by the patcher: \(String(buffer: body))")
                return
            }
            require(again.clientModel == model && again.isStreaming == patch.isStreaming && again.maxTokens == patch.maxTokens, "the patched body reads differently")
        }
    }

    /// The values of every member called `key` of an object, in order.
    private static func all(_ key: String, in value: JSONValue) -> [JSONValue] {
        guard case .object(let members) = value else { return [] }
        return members.filter { $0.key == key }.map(\.value)
    }
}
