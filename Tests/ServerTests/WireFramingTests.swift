import HTTPTypes
import NIOCore
import Testing
@testable import Server

/// The fast lane's own HTTP/1.1 framing: request heads in front of Hummingbird's decoder, upstream
/// answers on its own connections, and the answers it writes. No sockets.
struct WireFramingTests {
    private func request(_ text: String, searchedUpTo: Int = 0) -> RequestHead.Parse {
        RequestHead.parse(ByteBuffer(string: text), searchedUpTo: searchedUpTo)
    }

    private func head(_ text: String) throws -> RequestHead {
        guard case .head(let head) = self.request(text) else {
            Issue.record("not framed: \(text.debugDescription)")
            throw CancellationError()
        }
        return head
    }

    // MARK: Request heads

    @Test(arguments: [1, 9, 10, 15, 16, 255, 256, 4_096, 65_537, 1 << 20])
    func aChunksSizeIsItsLengthInHex(length: Int) {
        // Appended in two parts, as a read's events are, into less room than they need.
        var outgoing = OutgoingChunk(capacity: 16, allocator: ByteBufferAllocator())
        outgoing.append(ByteBuffer(repeating: UInt8(ascii: "x"), count: length / 2))
        outgoing.append(String(repeating: "x", count: length - length / 2))
        let chunk = outgoing.framed()
        let text = String(buffer: chunk)
        #expect(text.hasPrefix(String(length, radix: 16) + "\r\n") && text.hasSuffix("x\r\n"))
        #expect(chunk.readableBytes == String(length, radix: 16).utf8.count + 2 + length + 2)
    }

    @Test func framesACleanHeadAndFindsItsFields() throws {
        let text = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization:  Bearer sk-1 \r\nContent-Length: 12\r\n\r\n{\"model\":1}"
        let head = try self.head(text)
        #expect(head.isPost && head.targets("/v1/chat/completions") && !head.targets("/v1/chat"))
        #expect(head.contentLength == 12 && !head.closes && !head.expects)
        #expect(head.bytes.readableBytes == text.utf8.count - 11)
        #expect(head.field("authorization") == "Bearer sk-1")
        #expect(head.field("host") == "x")
        #expect(head.field("x-request-id") == nil)
    }

    @Test func findsAKeyInAFieldWithoutCopyingIt() throws {
        let head = try self.head("POST / HTTP/1.1\r\nAuthorization: Bearer sk-sy-abc\r\nX-Api-Key: other\r\n\r\n")
        #expect(head.field("authorization", contains: "sk-sy-"))
        #expect(!head.field("x-api-key", contains: "sk-sy-"))
        #expect(!head.field("x-missing", contains: "sk-sy-"))
        #expect(!head.field("authorization", contains: "sk-sy-abcd"))
    }

    @Test func notesWhatTheFrameworkMustAnswer() throws {
        #expect(try self.head("POST /x HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n").closes)
        #expect(try self.head("POST /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n").expects)
        #expect(try !self.head("GET /v1/models HTTP/1.1\r\n\r\n").isPost)
        #expect(try self.head("POST /v1/chat/completions?x=1 HTTP/1.1\r\n\r\n").targets("/v1/chat/completions") == false)
    }

    @Test func waitsForTheBlankLineWithoutSearchingAgainFromTheStart() {
        #expect(self.request("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n") == .incomplete)
        #expect(self.request("POST / HTTP/1.1\r\n\r") == .incomplete)
        // The blank line straddles two reads: a search that resumes three bytes back still finds it.
        let text = "POST / HTTP/1.1\r\nHost: x\r\n\r\n"
        guard case .head(let head) = self.request(text, searchedUpTo: text.utf8.count - 2) else {
            Issue.record("not found across reads")
            return
        }
        #expect(head.bytes.readableBytes == text.utf8.count)
    }

    /// Anything another parser could frame differently is not framed here: the connection is handed
    /// to Hummingbird's decoder for good.
    @Test(arguments: [
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 1234567890123456\r\n\r\n",
        "POST / HTTP/1.1\nHost: x\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\ny: z\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
        "POST / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        "POST / HTTP/1.1\r\n: x\r\n\r\n",
        "POST / HTTP/1.1\r\nX: a\u{1}b\r\n\r\n",
        "POST / HTTP/1.0\r\n\r\n",
        "POST  / HTTP/1.1\r\n\r\n",
        "POST /a b HTTP/1.1\r\n\r\n",
        "\r\nPOST / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        "PO(ST / HTTP/1.1\r\n\r\n",
    ])
    func leavesUnusualBytesToTheFramework(_ text: String) {
        #expect(self.request(text) == .unframeable)
    }

    @Test func aHeadTooLongIsLeftToTheFramework() {
        let long = "POST / HTTP/1.1\r\nX: " + String(repeating: "a", count: RequestHead.maxLength)
        #expect(self.request(long) == .unframeable)
        #expect(self.request(long + "\r\n\r\n") == .unframeable)
    }

    // MARK: Upstream answers

    private func answer(_ text: String) throws -> ResponseHead? {
        try ResponseHead.parse(ByteBuffer(string: text))?.head
    }

    @Test func framesAnswersAsRFC9112Says() throws {
        let sized = try #require(try self.answer("HTTP/1.1 200 OK\r\nContent-Length: 910\r\n\r\n"))
        #expect(sized.status == 200 && sized.body == .length(910) && sized.keepAlive)
        #expect(try self.answer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")?.body == .chunked)
        #expect(try self.answer("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")?.body == .chunked)
        let gzip = try #require(try self.answer("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"))
        #expect(gzip.body == .untilClose && !gzip.keepAlive)
        let unsized = try #require(try self.answer("HTTP/1.1 200 OK\r\n\r\n"))
        #expect(unsized.body == .untilClose && !unsized.keepAlive)
        #expect(try self.answer("HTTP/1.1 204 No Content\r\n\r\n")?.body == ResponseHead.Body.none)
        #expect(try self.answer("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")?.body == ResponseHead.Body.none)
        #expect(try self.answer("HTTP/1.1 100 Continue\r\n\r\n")?.status == 100)
        #expect(try self.answer("HTTP/1.1 503\r\nContent-Length: 2\r\n\r\n")?.status == 503)
        // Both framings: chunked wins, and the connection is not trusted with another request.
        let both = try #require(try self.answer("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"))
        #expect(both.body == .chunked && !both.keepAlive)
    }

    @Test func keepAliveFollowsTheVersionAndConnection() throws {
        #expect(try self.answer("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n")?.keepAlive == false)
        #expect(try self.answer("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n")?.keepAlive == false)
        #expect(try self.answer("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n")?.keepAlive == true)
    }

    @Test func aFailedAnswerKeepsItsFieldsAndASuccessfulOneNeedsNone() throws {
        let limited = try #require(try self.answer("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n"))
        #expect(limited.failureHeaders.first(name: "retry-after") == "7")
        #expect(try self.answer("HTTP/1.1 200 OK\r\nRetry-After: 7\r\n\r\n")?.failureHeaders.isEmpty == true)
    }

    @Test(arguments: [
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 20x OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        "HTTP/1.1 200 OK\nContent-Length: 1\r\n\r\n",
    ])
    func refusesWhatIsNotHTTP(_ text: String) {
        #expect(throws: UpstreamFramingError.self) { try ResponseHead.parse(ByteBuffer(string: text)) }
    }

    @Test func waitsForTheWholeHead() throws {
        #expect(try ResponseHead.parse(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-")) == nil)
        let tooLong = ByteBuffer(string: "HTTP/1.1 200 OK\r\nX: " + String(repeating: "a", count: ResponseHead.maxLength))
        #expect(throws: UpstreamFramingError.self) { try ResponseHead.parse(tooLong) }
    }

    // MARK: Chunked bodies

    /// Feeds `text` to a decoder in pieces of `size` bytes, as reads would bring it.
    private func dechunk(_ text: String, piecesOf size: Int) throws -> (data: String, done: Bool, rest: String) {
        var decoder = ChunkedBodyDecoder()
        var data = ""
        var pending = ByteBuffer()
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count, !decoder.isDone {
            pending.writeBytes(bytes[offset..<min(offset + size, bytes.count)])
            offset += size
            try decoder.decode(&pending) { data += String(buffer: $0) }
        }
        pending.writeBytes(bytes[min(offset, bytes.count)...])
        return (data, decoder.isDone, String(buffer: pending))
    }

    @Test(arguments: [1, 2, 3, 7, 1000])
    func decodesChunksHoweverTheyAreSplit(_ size: Int) throws {
        let body = "5\r\nhello\r\n1;name=value\r\n,\r\nA\r\n world!!!!\r\n0\r\nTrailer: x\r\n\r\nNEXT"
        let decoded = try self.dechunk(body, piecesOf: size)
        #expect(decoded.data == "hello, world!!!!")
        #expect(decoded.done)
        #expect(decoded.rest == "NEXT")
    }

    @Test(arguments: ["x\r\n", "5\r\nhelloXX", "\r\n", "1234567890123456\r\n", ";ext\r\n", "1;" + String(repeating: "x", count: 5000) + "\r\n"])
    func refusesBrokenChunks(_ body: String) {
        #expect(throws: UpstreamFramingError.self) { try self.dechunk(body, piecesOf: 100) }
    }

    // MARK: Answers written

    @Test func writesAHeadWithItsFramingAndDate() {
        var head = WireResponse.Head(.ok, allocator: ByteBufferAllocator())
        head.set(.contentType, "application/json")
        head.set(.requestID, "a\r\nb")
        let whole = String(buffer: head.finish(contentLength: 2, date: "Thu, 03 Dec 2026 07:46:10 GMT", body: ByteBuffer(string: "{}")))
        #expect(whole == "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nx-request-id: a  b\r\nContent-Length: 2\r\nDate: Thu, 03 Dec 2026 07:46:10 GMT\r\n\r\n{}")

        var streamHead = WireResponse.Head(.ok, allocator: ByteBufferAllocator())
        let stream = String(buffer: streamHead.finish(contentLength: nil, date: "D"))
        #expect(stream == "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nDate: D\r\n\r\n")
    }

    @Test(arguments: [(0.0, "0.00000000"), (0.0000438, "0.00004380"), (12.5, "12.50000000"), (0.000000004, "0.00000000"), (-1.0, "0.00000000"), (1234.987654321, "1234.98765432")])
    func formatsCostsWithEightDecimals(_ usd: Double, _ text: String) {
        var fields = HTTPFields()
        fields.setCost(usd)
        #expect(fields[.cost] == text)
    }

    @Test func formatsTheDateAsIMFFixdate() {
        #expect(HTTPDateCache.format(1_796_283_970) == "Thu, 03 Dec 2026 07:46:10 GMT")
        #expect(HTTPDateCache.format(0) == "Thu, 01 Jan 1970 00:00:00 GMT")
    }
}

extension RequestHead.Parse: Equatable {
    public static func == (lhs: Self, rhs: Self) -> Bool {
        switch (lhs, rhs) {
        case (.incomplete, .incomplete), (.unframeable, .unframeable): return true
        case (.head(let left), .head(let right)): return left.bytes == right.bytes
        default: return false
        }
    }
}
