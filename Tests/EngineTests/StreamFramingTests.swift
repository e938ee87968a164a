import NIOCore
import Testing
@testable import Engine

/// Every stream decoder frames events with `EventBoundaryScanner`: each byte searched once, one
/// event capped, whichever line endings SSE allows.
struct StreamFramingTests {
    /// The events of `text` fed in pieces of `size` bytes, as their content, and how it ended.
    private func frame(_ text: String, pieceSize: Int, _ separator: EventBoundaryScanner.Separator = .blankLine, maxEventBytes: Int = 1024)
        -> (events: [String], failure: GatewayError?, rest: String?, framer: StreamEventFramer)
    {
        var framer = StreamEventFramer(separator, provider: "p", maxEventBytes: maxEventBytes)
        var events: [String] = []
        let bytes = Array(text.utf8)
        for start in stride(from: 0, to: bytes.count, by: pieceSize) {
            let framed = framer.feed(ByteBuffer(bytes: bytes[start..<min(bytes.count, start + pieceSize)]))
            events += framed.events.map { String(buffer: $0.content) }
            if let failure = framed.failure { return (events, failure, nil, framer) }
        }
        return (events, nil, framer.finish().map { String(buffer: $0) }, framer)
    }

    @Test(arguments: [1, 2, 3, 5, 1000])
    func everySSELineEndingEndsAnEventHoweverTheBytesAreSplit(_ size: Int) {
        let stream = "data: a\n\ndata: b\r\n\r\ndata: c\r\rdata: d\n\r\ndata: e\r\n\ndata: f"
        let framed = self.frame(stream, pieceSize: size)
        #expect(framed.failure == nil)
        // Every event ends in the same place whatever the split: a CR that may be a CRLF's waits for its next byte.
        #expect(framed.events == ["data: a\n", "data: b\r\n", "data: c\r", "data: d\n", "data: e\r\n"])
        #expect(framed.rest == "data: f")
        let payloads = framed.events.compactMap { event in ByteBuffer(string: event).withUnsafeReadableBytes(SSE.data) }
        #expect(payloads == ["a", "b", "c", "d", "e"])
    }

    /// Lines are searched eight bytes at a time: a break is found at every place in a word, and
    /// bytes close to CR and LF (0x0B, 0x0C, 0x8A, 0x8D) are no break.
    @Test func aLineBreakIsFoundWhereverItFallsInAWord() {
        for length in 0...40 {
            let filler: [UInt8] = (0..<length).map { [0x78, 0x0B, 0x0C, 0x8A, 0x8D, 0x09][$0 % 6] }
            filler.withUnsafeBytes { #expect(LineBreaks.first(in: $0, from: 0) == length) }
            for position in 0..<length {
                for lineBreak: UInt8 in [0x0A, 0x0D] {
                    var bytes = filler
                    bytes[position] = lineBreak
                    for from in [0, position / 2, position] {
                        bytes.withUnsafeBytes { #expect(LineBreaks.first(in: $0, from: from) == position, "length \(length), break at \(position), from \(from)") }
                    }
                }
            }
        }
    }

    @Test(arguments: [1, 7, 8, 9, 1000])
    func longLinesEndWhereTheirLineEndingIs(_ size: Int) {
        let lines = (0..<12).map { "data: {\"n\":\"" + String(repeating: "y", count: 3 + $0 * 5) + "\"}" }
        let endings = ["\n\n", "\r\n\r\n", "\r\r", "\n\r\n"]
        let stream = lines.enumerated().map { $0.element + endings[$0.offset % endings.count] }.joined()
        let framed = self.frame(stream, pieceSize: size)
        #expect(framed.failure == nil)
        let expected = lines.enumerated().map { $0.element + ["\n", "\r\n", "\r", "\n"][$0.offset % endings.count] }
        #expect(framed.events == expected)
        #expect(framed.rest == nil)
    }

    @Test func multiLineDataJoinsWhicheverLineEndingSeparatesIt() {
        let event = "event: x\rdata: one\r\ndata:two\ndata:  three\r"
        #expect(ByteBuffer(string: event).withUnsafeReadableBytes(SSE.data) == "one\ntwo\n three")
    }

    @Test func ndjsonLinesEndAtEachLineFeed() {
        let framed = self.frame("{\"a\":1}\n{\"b\":2}\r\n\n{\"c\"", pieceSize: 2, .lineFeed)
        #expect(framed.events == ["{\"a\":1}", "{\"b\":2}\r", ""])
        #expect(framed.rest == "{\"c\"")
    }

    /// The regression: an event arriving a byte at a time was searched again from its start on every
    /// read (quadratic). Counted, not timed.
    @Test(arguments: [EventBoundaryScanner.Separator.blankLine, .lineFeed])
    func aBigEventFedAByteAtATimeIsSearchedOnce(_ separator: EventBoundaryScanner.Separator) {
        let size = 200_000
        let ending = separator == .blankLine ? "\n\n" : "\n"
        let text = "data: " + String(repeating: "x", count: size) + ending
        let framed = self.frame(text, pieceSize: 1, separator, maxEventBytes: size * 2)
        #expect(framed.events.count == 1)
        #expect(framed.framer.bytesExamined <= text.utf8.count)
    }

    @Test func anEventOverTheCapEndsTheStreamAfterTheEventsBeforeIt() {
        let framed = self.frame("data: ok\n\n" + "data: " + String(repeating: "x", count: 2000), pieceSize: 100, maxEventBytes: 1024)
        #expect(framed.events == ["data: ok\n"])
        #expect(framed.failure?.metricLabel == "upstream_malformed")
        #expect(framed.failure?.httpStatus == 502)
        #expect(framed.failure?.domain == .provider)
        #expect(framed.failure?.message.contains("longer than 1024 bytes") == true)
        // One that arrives whole, with its blank line, is refused too.
        let whole = self.frame("data: " + String(repeating: "x", count: 2000) + "\n\n", pieceSize: 10_000, maxEventBytes: 1024)
        #expect(whole.events.isEmpty && whole.failure?.metricLabel == "upstream_malformed")
    }

    @Test func theCapIsEightMiBByDefault() {
        #expect(EventBoundaryScanner.defaultMaxEventBytes == 8 << 20)
        var framer = StreamEventFramer(.blankLine, provider: "p")
        let piece = ByteBuffer(repeating: UInt8(ascii: "a"), count: 1 << 20)
        var failure: GatewayError?
        for _ in 0..<9 where failure == nil { failure = framer.feed(piece).failure }
        #expect(failure?.metricLabel == "upstream_malformed")
    }

    // MARK: Every decoder

    /// Feeds `first`, then an event that never ends, 1 MiB at a time, past the default cap.
    private func overCap(_ decoder: inout some StreamDecoder, first: String) -> [StreamEvent] {
        var events = decoder.feed(ByteBuffer(string: first))
        events += decoder.feed(ByteBuffer(string: "data: {\"x\":\""))
        let piece = ByteBuffer(repeating: UInt8(ascii: "a"), count: 1 << 20)
        for _ in 0..<9 {
            events += decoder.feed(piece)
            if case .failure? = events.last { break }
        }
        return events
    }

    @Test func everyStreamDecoderEndsWithAnUpstreamMalformedFailureOnAnEventOverTheCap() {
        var openAI = OpenAIStreamDecoder(provider: "p")
        var anthropic = AnthropicStreamDecoder(provider: "p")
        var gemini = GeminiStreamDecoder(provider: "p")
        var ollama = OllamaStreamDecoder(provider: "p")
        let results: [(String, [StreamEvent])] = [
            ("openai", self.overCap(&openAI, first: "data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n")),
            ("anthropic", self.overCap(&anthropic, first: "event: ping\ndata: {\"type\":\"ping\"}\n\n")),
            ("gemini", self.overCap(&gemini, first: "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"hi\"}]}}]}\n\n")),
            ("ollama", self.overCap(&ollama, first: "{\"model\":\"m\",\"message\":{\"content\":\"hi\"},\"done\":false}\n")),
        ]
        for (name, events) in results {
            guard case .failure(let error)? = events.last else {
                Issue.record("\(name): no failure in \(events.suffix(3))")
                continue
            }
            #expect(error.metricLabel == "upstream_malformed", "\(name)")
            #expect(error.httpStatus == 502, "\(name)")
        }
        #expect(results[0].1.contains(.textDelta("hi")) && results[2].1.contains(.textDelta("hi")) && results[3].1.contains(.textDelta("hi")))
        // Finished: nothing more comes out of them.
        #expect(openAI.feed(ByteBuffer(string: "\n\n")).isEmpty && openAI.finish().isEmpty)
        #expect(ollama.feed(ByteBuffer(string: "\n")).isEmpty && ollama.finish().isEmpty)
    }
}
