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
}
