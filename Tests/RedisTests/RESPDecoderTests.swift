import NIOCore
import Testing
@testable import Redis

/// RESP3 from bytes: every type, values split anywhere, and a hostile server's lengths and numbers
/// refused before they are used.
struct RESPDecoderTests {
    private func decode(_ text: String, limits: RESPDecoder.Limits = RESPDecoder.Limits()) throws -> (values: [RESPValue], rest: Int) {
        var buffer = ByteBuffer(string: text)
        var values: [RESPValue] = []
        let decoder = RESPDecoder(limits: limits)
        while let value = try decoder.next(from: &buffer) { values.append(value) }
        return (values, buffer.readableBytes)
    }

    private func bulk(_ text: String) -> RESPValue { .bulkString(ByteBuffer(string: text)) }

    @Test func everyTypeIsRead() throws {
        let text = "+OK\r\n-ERR wrong\r\n:-42\r\n$5\r\nhe\r\no\r\n$-1\r\n_\r\n#t\r\n#f\r\n,3.25\r\n,-inf\r\n(123456789012345678901234567890\r\n"
            + "!9\r\nNOSCRIPT.\r\n=8\r\ntxt:some\r\n*2\r\n:1\r\n$0\r\n\r\n*-1\r\n~1\r\n+a\r\n%1\r\n+k\r\n:7\r\n>3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n"
            + "|1\r\n+ttl\r\n:3\r\n:99\r\n"
        let (values, rest) = try self.decode(text)
        #expect(rest == 0)
        #expect(values == [
            .simpleString("OK"), .error(RedisServerError("ERR wrong")), .integer(-42), self.bulk("he\r\no"), .null, .null, .boolean(true), .boolean(false),
            .double(3.25), .double(-.infinity), .bigNumber("123456789012345678901234567890"), .error(RedisServerError("NOSCRIPT.")), self.bulk("some"),
            .array([.integer(1), self.bulk("")]), .null, .set([.simpleString("a")]), .map([RESPPair(key: .simpleString("k"), value: .integer(7))]),
            .push([self.bulk("message"), self.bulk("ch"), self.bulk("x")]),
            // Attributes come before the reply they describe, and are dropped.
            .integer(99),
        ])
        #expect(RedisServerError("NOSCRIPT No matching script").code == "NOSCRIPT")
    }

    @Test func aReplySplitAnywhereIsReadOnceWhole() throws {
        let text = "*3\r\n$5\r\nhello\r\n%1\r\n+k\r\n*2\r\n:1\r\n,2.5\r\n>2\r\n+a\r\n_\r\n+done\r\n"
        let whole = try self.decode(text).values
        let bytes = Array(text.utf8)
        let decoder = RESPDecoder()
        for split in 1..<bytes.count {
            var buffer = ByteBuffer(bytes: bytes[..<split])
            var values: [RESPValue] = []
            while let value = try decoder.next(from: &buffer) { values.append(value) }
            buffer.writeBytes(bytes[split...])
            while let value = try decoder.next(from: &buffer) { values.append(value) }
            #expect(values == whole, "split at \(split)")
            #expect(buffer.readableBytes == 0)
        }
    }

    @Test func anIncompleteValueReadsNothing() throws {
        for partial in ["+OK", "+OK\r", "$5\r\nhel", "$5\r\nhello\r", "*2\r\n:1\r\n", "%1\r\n+k\r\n", ":12"] {
            var buffer = ByteBuffer(string: partial)
            #expect(try RESPDecoder().next(from: &buffer) == nil, "\(partial.debugDescription)")
            #expect(buffer.readableBytes == partial.utf8.count)
        }
    }

    @Test(arguments: [
        ("?x\r\n", "unknown type"),
        (":9223372036854775808\r\n", "64-bit"),
        (":1x\r\n", "64-bit"),
        ("$-2\r\n", "negative"),
        ("*-5\r\n", "negative"),
        ("~-1\r\n", "negative"),
        ("$3\r\nabcd\r\n", "CRLF"),
        ("+a\rb\r\n", "CR without LF"),
        ("#x\r\n", "boolean"),
        (",1e999\r\n", "double"),
        ("(12a\r\n", "big number"),
        ("_x\r\n", "null"),
        ("=2\r\nab\r\n", "verbatim"),
    ])
    func bytesThatAreNotRESPAreRefused(_ text: String, _ detail: String) {
        #expect {
            _ = try self.decode(text)
        } throws: { error in
            (error as? RESPProtocolError)?.detail.contains(detail) == true
        }
    }

    @Test func aServersLengthsAndCountsAreBoundedBeforeAnythingIsKeptForThem() {
        let limits = RESPDecoder.Limits(maxBulkBytes: 1024, maxElements: 100, maxDepth: 4, maxLineBytes: 64)
        for (text, detail) in [
            ("$1025\r\n", "over 1024"),
            ("$9223372036854775807\r\n", "over 1024"),
            ("*101\r\n", "over 100"),
            ("*9223372036854775807\r\n", "over 100"),
            ("%51\r\n", "over 50"),
            (String(repeating: "*1\r\n", count: 6) + ":1\r\n", "nesting"),
            ("+" + String(repeating: "a", count: 100), "longer than 64"),
        ] {
            #expect("\(text.prefix(30))") {
                _ = try self.decode(text, limits: limits)
            } throws: { error in
                (error as? RESPProtocolError)?.detail.contains(detail) == true
            }
        }
    }

    @Test func commandsAreArraysOfBulkStrings() {
        var buffer = ByteBuffer()
        RedisCommand("SET", ["k\r\n", RedisArgument(ByteBuffer(bytes: [0, 255])), 42, RedisArgument(2.5)]).encode(into: &buffer)
        let expected = Array("*5\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$2\r\n".utf8) + [0, 255] + Array("\r\n$2\r\n42\r\n$3\r\n2.5\r\n".utf8)
        #expect(Array(buffer.readableBytesView) == expected)
        // Lengths of every width, written digit by digit; a character of several bytes counts its bytes.
        for length in [0, 9, 10, 99, 100, 1_000, 65_537] {
            var long = ByteBuffer()
            RedisCommand("SET", [RedisArgument(String(repeating: "x", count: length))]).encode(into: &long)
            #expect(Array(long.readableBytesView) == Array("*2\r\n$3\r\nSET\r\n$\(length)\r\n\(String(repeating: "x", count: length))\r\n".utf8))
        }
        var accented = ByteBuffer()
        RedisCommand("GET", ["é"]).encode(into: &accented)
        #expect(Array(accented.readableBytesView) == Array("*2\r\n$3\r\nGET\r\n$2\r\né\r\n".utf8))
    }

    @Test func aScriptIsNamedByItsSHA1() {
        #expect(RedisScript("return 1").sha1 == "e0e1f9fabfc9d4800c877a703b823ac0578ff8db")
    }
}
