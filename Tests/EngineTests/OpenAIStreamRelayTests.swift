import Foundation
import NIOCore
import Testing
@testable import Engine

struct OpenAIStreamRelayTests {
    /// Feeds `text` in pieces of `size` bytes and collects what the relay forwards and how it ended.
    private func relay(_ text: String, pieceSize: Int, forwardUsageChunk: Bool = true) -> (output: String, relay: OpenAIStreamRelay, error: GatewayError?) {
        var relay = OpenAIStreamRelay(provider: "p", forwardUsageChunk: forwardUsageChunk)
        var output = ""
        var failure: GatewayError?
        let bytes = Array(text.utf8)
        var offset = 0
        func take(_ step: OpenAIStreamRelay.Step) {
            switch step {
            case .forward(let buffer): output += buffer.string
            case .fail(let buffer, let error):
                output += buffer.string
                failure = error
            }
        }
        while offset < bytes.count && failure == nil {
            let end = min(bytes.count, offset + pieceSize)
            take(relay.feed(ByteBuffer(bytes: bytes[offset..<end])))
            offset = end
        }
        if failure == nil { take(relay.finish()) }
        return (output, relay, failure)
    }

    @Test(arguments: [1, 7, 64, 1_000_000])
    func passesARecordedStreamThroughByteForByteInAnyChunking(pieceSize: Int) throws {
        let recorded = try Fixture.text("openai-chat-stream-text-usage.sse")
        let result = self.relay(recorded, pieceSize: pieceSize)
        #expect(result.error == nil)
        #expect(result.output == recorded)
        #expect(result.relay.usage == Usage(inputTokens: 14, outputTokens: 30))
        #expect(result.relay.finishReason == "stop")
        #expect(result.relay.sawDone)
    }

    @Test func readsUsageAndFinishReasonOfParallelToolCalls() throws {
        let recorded = try Fixture.text("openai-chat-stream-parallel-tool-calls-usage.sse")
        let result = self.relay(recorded, pieceSize: 100)
        #expect(result.output == recorded)
        #expect(result.relay.finishReason == "tool_calls")
        #expect(result.relay.usage?.outputTokens ?? 0 > 0)
    }

    @Test func stripsTheUsageChunkTheClientDidNotAskFor() throws {
        let recorded = try Fixture.text("openai-chat-stream-text-usage.sse")
        let result = self.relay(recorded, pieceSize: 50, forwardUsageChunk: false)
        #expect(result.error == nil)
        #expect(!result.output.contains("\"usage\""))
        #expect(result.output.hasSuffix("data: [DONE]\n\n"))
        // Usage is still read for accounting.
        #expect(result.relay.usage == Usage(inputTokens: 14, outputTokens: 30))
        let events = recorded.components(separatedBy: "\n\n").filter { !$0.isEmpty && !$0.contains("\"usage\"") }
        #expect(result.output == events.map { $0 + "\n\n" }.joined())
    }

    @Test func aStreamWithoutDoneIsReportedAsInterrupted() throws {
        let recorded = try Fixture.text("openai-chat-stream-text-usage.sse")
        let cut = String(recorded[..<recorded.range(of: "data: [DONE]")!.lowerBound])
        let result = self.relay(cut, pieceSize: 128)
        #expect(result.error?.metricLabel == "stream_interrupted")
        #expect(result.error?.httpStatus == 502)
        #expect(result.output == cut)
    }

    @Test func aHalfEventAtTheCutIsNeverForwarded() {
        let stream = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"choices\":[{\"del"
        let result = self.relay(stream, pieceSize: 10)
        #expect(result.output == "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n")
        #expect(result.error?.metricLabel == "upstream_malformed")
    }

    @Test func invalidJSONInAnEventFailsTheStreamBeforeTheClientSeesIt() {
        let stream = "data: {\"choices\":[]}\n\ndata: {broken\n\ndata: [DONE]\n\n"
        let result = self.relay(stream, pieceSize: 1_000)
        #expect(result.output == "data: {\"choices\":[]}\n\n")
        #expect(result.error?.metricLabel == "upstream_malformed")
    }

    @Test func forwardsAnUpstreamErrorEventAndRecordsIt() {
        let stream = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"error\":{\"message\":\"Overloaded\",\"type\":\"server_error\"}}\n\n"
        let result = self.relay(stream, pieceSize: 1_000)
        #expect(result.error == nil)
        #expect(result.output == stream)
        #expect(result.relay.upstreamErrorMessage == "Overloaded")
    }

    @Test func acceptsCRLFFramingCommentsAndALastEventWithoutItsBlankLine() {
        let stream = ": keep-alive\r\n\r\ndata:{\"choices\":[{\"delta\":{\"content\":\"x\"},\"finish_reason\":\"stop\"}]}\r\n\r\ndata: [DONE]"
        let result = self.relay(stream, pieceSize: 5)
        #expect(result.error == nil)
        #expect(result.relay.finishReason == "stop")
        #expect(result.output == stream + "\n\n")
    }

    @Test func refusesAnEventThatNeverEndsPastTheCapAfterForwardingTheOnesBefore() {
        var relay = OpenAIStreamRelay(provider: "p", forwardUsageChunk: true)
        let first = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
        var forwarded = ""
        var failure: GatewayError?
        if case .forward(let bytes) = relay.feed(ByteBuffer(string: first)) { forwarded += bytes.string }
        let piece = ByteBuffer(repeating: UInt8(ascii: "a"), count: 1 << 20)
        for _ in 0..<9 where failure == nil {
            switch relay.feed(piece) {
            case .forward(let bytes): forwarded += bytes.string
            case .fail(let bytes, let error):
                forwarded += bytes.string
                failure = error
            }
        }
        #expect(forwarded == first)
        #expect(failure?.metricLabel == "upstream_malformed")
        #expect(failure?.httpStatus == 502)
        #expect(failure?.message.contains("longer than \(8 << 20) bytes") == true)
    }

    /// The regression: a large event arriving in small pieces was searched again from its start on
    /// every read (and its buffer copied whole). Counted, not timed.
    @Test func aBigEventFedAByteAtATimeIsSearchedOnce() {
        var relay = OpenAIStreamRelay(provider: "p", forwardUsageChunk: true)
        let event = "data: {\"choices\":[{\"delta\":{\"content\":\"" + String(repeating: "x", count: 200_000) + "\"}}]}\n\n"
        var forwarded = ""
        for byte in event.utf8 {
            guard case .forward(let bytes) = relay.feed(ByteBuffer(bytes: [byte])) else {
                Issue.record("a valid event failed")
                return
            }
            forwarded += bytes.string
        }
        #expect(forwarded == event)
        #expect(relay.bytesExamined <= event.utf8.count)
    }

    @Test func aSmallerCapIsHonoured() {
        var relay = OpenAIStreamRelay(provider: "p", forwardUsageChunk: true, maxEventBytes: 64)
        guard case .fail(_, let error) = relay.feed(ByteBuffer(string: "data: " + String(repeating: "x", count: 100))) else {
            Issue.record("an event over the cap was taken")
            return
        }
        #expect(error.metricLabel == "upstream_malformed")
    }
}

struct OpenAIResponseSummaryTests {
    @Test func readsUsageAndFinishReasonFromARecordedResponse() throws {
        let summary = try OpenAIResponseSummary.read(try Fixture.buffer("openai-chat-nonstream-parallel-tool-calls.json"), provider: "p")
        #expect(summary.usage == Usage(inputTokens: 149, outputTokens: 60))
        #expect(summary.finishReason == "tool_calls")
    }

    @Test func readsCachedAndReasoningTokens() throws {
        let body = #"{"choices":[],"usage":{"prompt_tokens":100,"completion_tokens":50,"prompt_tokens_details":{"cached_tokens":80},"completion_tokens_details":{"reasoning_tokens":20}}}"#
        let summary = try OpenAIResponseSummary.read(ByteBuffer(string: body), provider: "p")
        #expect(summary.usage == Usage(inputTokens: 100, cachedInputTokens: 80, outputTokens: 50, reasoningTokens: 20))
    }

    @Test(arguments: ["{\"id\":\"x\",", "{\"error\":{\"message\":\"m\"}}", "<html>502</html>"])
    func aBodyThatIsNotACompletionIsAProviderFault(_ body: String) {
        #expect {
            try OpenAIResponseSummary.read(ByteBuffer(string: body), provider: "p")
        } throws: { error in
            (error as? GatewayError)?.httpStatus == 502 && (error as? GatewayError)?.domain == .provider
        }
    }
}

struct OpenAIStreamRelayFramingTests {
    @Test func joinsMultiLineDataFieldsAsSSESays() {
        var relay = OpenAIStreamRelay(provider: "p", forwardUsageChunk: true)
        let stream = "data: {\"choices\":\ndata: [{\"finish_reason\":\"length\"}]}\n\ndata: [DONE]\n\n"
        guard case .forward(let bytes) = relay.feed(ByteBuffer(string: stream)) else {
            Issue.record("a valid multi-line event failed")
            return
        }
        #expect(bytes.string == stream)
        #expect(relay.finishReason == "length")
    }
}

/// Request bodies and streams are attacker-controlled: whatever the bytes, the fast path must answer
/// with a value or a `GatewayError`, never crash.
struct FastPathRobustnessTests {
    struct SeededGenerator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            self.state = self.state &* 6364136223846793005 &+ 1442695040888963407
            return self.state
        }
    }

    static let seeds = [
        #"{"model":"m","stream":true,"stream_options":{"include_usage":false},"messages":[{"role":"user","content":"h\u00e9"}]}"#,
        "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\ndata: [DONE]\n\n",
    ]

    @Test func mutatedInputsNeverCrash() {
        var random = SeededGenerator(state: 42)
        let alphabet = Array("{}[]\":,\\u0123456789.eE+-tfnrl data:[DONE]\n\r ".utf8)
        for _ in 0..<3_000 {
            var bytes = Array(Self.seeds[Int.random(in: 0..<2, using: &random)].utf8)
            for _ in 0..<Int.random(in: 1...6, using: &random) {
                let position = Int.random(in: 0..<bytes.count, using: &random)
                switch Int.random(in: 0..<3, using: &random) {
                case 0: bytes[position] = alphabet.randomElement(using: &random)!
                case 1: bytes.insert(alphabet.randomElement(using: &random)!, at: position)
                default: if bytes.count > 1 { bytes.remove(at: position) }
                }
            }
            let buffer = ByteBuffer(bytes: bytes)
            if let patch = try? OpenAIRequestPatch(body: buffer) {
                _ = patch.upstreamBody(model: "x")
            }
            _ = try? OpenAIResponseSummary.read(buffer, provider: "p")
            var relay = OpenAIStreamRelay(provider: "p", forwardUsageChunk: Bool.random(using: &random))
            let cut = Int.random(in: 0...bytes.count, using: &random)
            _ = relay.feed(ByteBuffer(bytes: bytes[..<cut]))
            _ = relay.feed(ByteBuffer(bytes: bytes[cut...]))
            _ = relay.finish()
        }
    }
}

struct OpenAIStreamRelayBufferTests {
    /// Buffers from the network can start past index 0 (a slice, bytes already read): every offset
    /// the relay computes must be relative to the reader index.
    @Test func buffersWithAnAdvancedReaderIndexRelayCorrectly() throws {
        let recorded = try Fixture.text("openai-chat-stream-text-usage.sse")
        let bytes = Array(recorded.utf8)
        var relay = OpenAIStreamRelay(provider: "p", forwardUsageChunk: false)
        var output = ""
        for start in stride(from: 0, to: bytes.count, by: 700) {
            var buffer = ByteBuffer(string: "JUNK-BEFORE-")
            buffer.writeBytes(bytes[start..<min(bytes.count, start + 700)])
            buffer.moveReaderIndex(forwardBy: 12)
            guard case .forward(let forwarded) = relay.feed(buffer) else {
                Issue.record("a valid stream failed")
                return
            }
            output += forwarded.string
        }
        guard case .forward(let rest) = relay.finish() else {
            Issue.record("a complete stream failed")
            return
        }
        output += rest.string
        let expected = recorded.components(separatedBy: "\n\n").filter { !$0.isEmpty && !$0.contains("\"usage\"") }.map { $0 + "\n\n" }.joined()
        #expect(output == expected)
    }
}
