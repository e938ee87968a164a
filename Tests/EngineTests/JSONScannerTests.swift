import Testing
@testable import Engine

struct JSONScannerTests {
    private func members(_ text: String) throws -> [JSONScanner.Member] {
        var bytes = Array(text.utf8)
        return try bytes.withUnsafeMutableBytes { try JSONScanner.topLevelMembers(of: UnsafeRawBufferPointer($0)) }
    }

    private func isValid(_ text: String) -> Bool {
        (try? self.members(text)) != nil
    }

    @Test func locatesTopLevelMembersAndTheirKinds() throws {
        let text = #"{"model": "gpt-4o", "n":1, "stream":true, "x":null, "m":[{"a":"}"}], "o":{"k":-1.5e3}}"#
        let found = try self.members(text)
        #expect(found.map(\.key) == ["model", "n", "stream", "x", "m", "o"])
        #expect(found.map(\.kind) == [.string, .number, .bool, .null, .array, .object])
        let model = found[0]
        let bytes = Array(text.utf8)
        #expect(String(decoding: bytes[model.valueRange], as: UTF8.self) == #""gpt-4o""#)
    }

    @Test(arguments: [
        "", "[]", "{", "{\"a\":1,}", "{\"a\":01}", "{\"a\":1.}", "{\"a\":\"\\x\"}", "{\"a\":tru}",
        "{\"a\":1} {}", "{a:1}", "{\"a\":\"line\nbreak\"}", "{\"a\":-}", "{\"a\":1e}", "{\"a\" 1}",
    ])
    func rejectsInvalidDocuments(_ text: String) {
        #expect(!self.isValid(text))
    }

    @Test(arguments: [
        "{}", " { \"a\" : [ 1 , 2 ] } ", "{\"a\":\"\\u00e9\\n\\\"\"}", "{\"a\":0}", "{\"a\":-0.5E+10}", "{\"a\":[[],{}]}",
    ])
    func acceptsValidDocuments(_ text: String) {
        #expect(self.isValid(text))
    }

    /// Strings are skipped eight bytes at a time: whatever ends the plain run (a quote, an escape,
    /// a multi-byte character, a control character) is found wherever it falls in a word.
    @Test func aStringsSpecialBytesAreFoundWhereverTheyFallInAWord() throws {
        for offset in 0..<20 {
            let before = String(repeating: "a", count: offset)
            let after = String(repeating: "b", count: 9)
            for (escaped, decoded) in [(#"\""#, "\""), (#"\n"#, "\n"), ("é", "é"), (#"\u00e9"#, "é"), ("", "")] {
                let text = #"{"k":""# + before + escaped + after + #"","z":1}"#
                let found = try self.members(text)
                #expect(found.map(\.key) == ["k", "z"], "\(text)")
                var bytes = Array(text.utf8)
                let value = try bytes.withUnsafeMutableBytes { try JSONScanner.decodeString(in: UnsafeRawBufferPointer($0), range: found[0].valueRange) }
                #expect(value == before + decoded + after)
            }
            #expect(!self.isValid(#"{"k":""# + before + "\u{01}" + after + #""}"#), "a control character at \(offset)")
            #expect(!self.isValid(#"{"k":""# + before + "\u{1F}" + after + #""}"#), "a control character at \(offset)")
        }
    }

    @Test func refusesNestingThatWouldExhaustTheStack() {
        let deep = "{\"a\":" + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + "}"
        #expect(!self.isValid(deep))
        let fine = "{\"a\":" + String(repeating: "[", count: 200) + String(repeating: "]", count: 200) + "}"
        #expect(self.isValid(fine))
    }

    @Test func decodesEscapedKeysAndSurrogatePairs() throws {
        let found = try self.members(#"{"mod\u0065l":"caf\u00e9 \ud83d\ude00 \/"}"#)
        #expect(found.first?.key == "model")
        var bytes = Array(#"{"mod\u0065l":"caf\u00e9 \ud83d\ude00 \/"}"#.utf8)
        let value = try bytes.withUnsafeMutableBytes {
            try JSONScanner.decodeString(in: UnsafeRawBufferPointer($0), range: found[0].valueRange)
        }
        #expect(value == "café 😀 /")
    }

    private func named(_ text: String, _ names: [JSONScanner.MemberName]) throws -> [(name: String, value: String)] {
        let bytes = Array(text.utf8)
        return try bytes.withUnsafeBytes { raw in
            var found: [(name: String, value: String)] = []
            try JSONScanner.forEachTopLevelMember(of: raw, named: names) { member in
                found.append((names[member.name].name.description, String(decoding: raw[member.valueRange], as: UTF8.self)))
            }
            return found
        }
    }

    @Test func findsMembersByNameInDocumentOrderRepeatsIncluded() throws {
        let text = #"{"model":"a","messages":[{"model":"inner"}],"us\u0061ge":{"n":1},"model":"b","stream":true}"#
        let found = try self.named(text, ["stream", "model", "usage"])
        #expect(found.map(\.name) == ["model", "usage", "model", "stream"])
        #expect(found.map(\.value) == [#""a""#, #"{"n":1}"#, #""b""#, "true"])
    }

    @Test func findsNamesInsideTheObjectsOfNamesFoundInTheSamePass() throws {
        let text = #"{"usage":{"n":1,"d":{"n":2}},"other":{"n":3,"d":{"n":4}},"d":{"n":5}}"#
        let names: [JSONScanner.MemberName] = ["usage", .init("n", inside: 0), .init("d", inside: 0), .init("n", inside: 2)]
        let found = try self.named(text, names)
        // Inner members come before the member holding them; nothing outside `usage` is found.
        #expect(found.map(\.value) == ["1", "2", #"{"n":2}"#, #"{"n":1,"d":{"n":2}}"#])
    }

    @Test func validatesTheWholeDocumentWhileFindingMembersByName() {
        #expect(throws: JSONScanner.SyntaxError.self) { try self.named(#"{"model":"a","x":[1,}"#, ["model"]) }
        #expect(throws: JSONScanner.SyntaxError.self) { try self.named(#"{"model":"a"} x"#, ["model"]) }
    }

    /// Strings are skipped eight bytes at a time: a quote, a backslash or a control character must be
    /// seen wherever it falls in a word, and multi-byte characters must pass.
    @Test func skipsStringsWordByWordWithoutMissingWhatEndsThem() throws {
        for offset in 0..<17 {
            let pad = String(repeating: "é", count: offset / 2) + String(repeating: "x", count: offset % 2)
            let text = "{\"a\":\"\(pad)\\\"q\\\\\(pad)\",\"b\":1}"
            let found = try self.named(text, ["b"])
            #expect(found.map(\.value) == ["1"], "offset \(offset)")
            #expect(!self.isValid("{\"a\":\"\(pad)\u{1}\"}"), "control character at offset \(offset)")
            #expect(!self.isValid("{\"a\":\"\(pad)"), "unterminated at offset \(offset)")
        }
    }
}
