import Foundation
import NIOCore
import Testing
@testable import Engine

/// Numbers from clients, upstreams and stored rows are bounded before arithmetic (issue: one request
/// with `max_tokens` 2^63 trapped the process). Each test here trapped or misbehaved before the rule.
struct UntrustedNumberTests {
    private static let hugeNumbers = ["9223372036854775808", "9223372036854775807", "100000000000000000", "1e300", "-9223372036854775809"]

    // MARK: Client limits

    @Test(arguments: ["max_tokens", "max_completion_tokens"], Self.hugeNumbers + ["-1", "0", "1.5", "\"12\"", "true"])
    func aTokenLimitOutOfRangeIsRefusedWith400(name: String, value: String) {
        let body = #"{"model":"m","messages":[],"\#(name)":\#(value)}"#
        #expect {
            _ = try OpenAIRequestPatch(body: ByteBuffer(string: body))
        } throws: { error in
            guard let error = error as? GatewayError else { return false }
            return error.httpStatus == 400 && error.param == name && error.message.contains("from 1 to 1000000000")
        }
    }

    @Test func aTokenLimitInRangeIsReadAndNullIsNone() throws {
        #expect(try OpenAIRequestPatch(body: ByteBuffer(string: #"{"model":"m","max_tokens":1000000000}"#)).maxTokens == 1_000_000_000)
        #expect(try OpenAIRequestPatch(body: ByteBuffer(string: #"{"model":"m","max_tokens":1e3}"#)).maxTokens == 1_000)
        #expect(try OpenAIRequestPatch(body: ByteBuffer(string: #"{"model":"m","max_tokens":null}"#)).maxTokens == nil)
    }

    @Test func bothLimitsReserveForTheLargerWhicheverComesLast() throws {
        let first = try OpenAIRequestPatch(body: ByteBuffer(string: #"{"model":"m","max_completion_tokens":100000,"max_tokens":1}"#))
        #expect(first.maxTokens == 100_000)
        let second = try OpenAIRequestPatch(body: ByteBuffer(string: #"{"model":"m","max_tokens":1,"max_completion_tokens":100000}"#))
        #expect(second.maxTokens == 100_000)
    }

    @Test func aRepeatedTokenLimitIsRefused() {
        #expect(throws: GatewayError.self) {
            try OpenAIRequestPatch(body: ByteBuffer(string: #"{"model":"m","max_tokens":100000,"max_tokens":1}"#))
        }
    }

    @Test(arguments: Self.hugeNumbers + ["-5", "0"])
    func translatedRequestsHoldTheSameRule(value: String) {
        #expect(throws: GatewayError.self) {
            try OpenAIRequestDecoder.decode(ByteBuffer(string: #"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":\#(value)}"#))
        }
        #expect(throws: GatewayError.self) {
            try AnthropicRequestDecoder.decode(ByteBuffer(string: #"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":\#(value)}"#))
        }
    }

    // MARK: Upstream usage

    @Test(arguments: Self.hugeNumbers)
    func anUpstreamsHugeUsageIsClampedOnEveryDecoder(value: String) throws {
        let ceiling = UntrustedNumber.tokenCeiling
        let openAI = try OpenAIResponseDecoder.decode(
            ByteBuffer(string: #"{"id":"x","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":\#(value),"completion_tokens":\#(value),"prompt_tokens_details":{"cached_tokens":\#(value)}}}"#),
            provider: "p"
        )
        #expect(openAI.usage.inputTokens <= ceiling && openAI.usage.outputTokens <= ceiling && openAI.usage.inputTokens >= 0)
        let anthropic = try AnthropicResponseDecoder.decode(
            ByteBuffer(string: #"{"id":"x","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":\#(value),"cache_read_input_tokens":\#(value),"cache_creation_input_tokens":\#(value),"output_tokens":\#(value)}}"#),
            provider: "p"
        )
        #expect(anthropic.usage.inputTokens <= 3 * ceiling && anthropic.usage.outputTokens <= ceiling)
        let price = ModelPrice(input: 1_000, cachedInput: 100, cacheWrite: 1_250, output: 4_000, checked: "test")
        #expect(price.cost(anthropic.usage).isFinite)
    }

    @Test func usageReadFromBytesSaturatesInsteadOfTrapping() throws {
        for value in Self.hugeNumbers where !value.contains("e") {
            let text = #"{"prompt_tokens":\#(value),"completion_tokens":\#(value)}"#
            let usage = try Array(text.utf8).withUnsafeBytes { bytes in try OpenAIUsage.parse(bytes, range: 0..<bytes.count) }
            #expect((0...UntrustedNumber.tokenCeiling).contains(usage.inputTokens))
            #expect((0...UntrustedNumber.tokenCeiling).contains(usage.outputTokens))
            #expect(usage.totalTokens <= 2 * UntrustedNumber.tokenCeiling)
        }
    }

    @Test func aStreamChunksHugeUsageIsClamped() {
        var relay = OpenAIStreamDecoder(provider: "p")
        let events = relay.feed(ByteBuffer(string: "data: {\"id\":\"x\",\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":9223372036854775807,\"completion_tokens\":9223372036854775807}}\n\n"))
        let usages = events.compactMap { event -> Usage? in
            if case .usage(let usage) = event { return usage }
            return nil
        }
        #expect(!usages.isEmpty)
        #expect(usages.allSatisfy { $0.totalTokens <= 2 * UntrustedNumber.tokenCeiling })
    }

    // MARK: Headers and load reports

    @Test func retryAfterIsHeldToAnHour() {
        #expect(RetryAfter.parse(milliseconds: "1e300", header: nil) == UntrustedNumber.longestRetryAfter)
        #expect(RetryAfter.parse(milliseconds: nil, header: "1e20") == UntrustedNumber.longestRetryAfter)
        #expect(RetryAfter.parse(milliseconds: "inf", header: nil) == UntrustedNumber.longestRetryAfter)
        #expect(RetryAfter.parse(milliseconds: "nan", header: "2") == .seconds(2))
        #expect(RetryAfter.parse(milliseconds: "-5", header: nil) == nil)
        #expect(RetryAfter.parse(milliseconds: "1500", header: nil) == .milliseconds(1_500))
        #expect(UntrustedNumber.wholeSeconds(UntrustedNumber.longestRetryAfter) == 3_600)
    }

    @Test func aBackendsHugeLoadIsClamped() {
        let load = BackendLoad.vllm(metrics: "vllm:num_requests_waiting{model=\"a\"} 1e300\nvllm:num_requests_running{model=\"a\"} 1e308\n")
        #expect(load?.queued == UntrustedNumber.queueCeiling)
    }

    // MARK: Sums that live long

    @Test func windowsAndCountersSaturate() {
        #expect(Int.max.addingSaturating(1) == Int.max)
        #expect(Int.min.addingSaturating(-1) == Int.min)
        var window = RollingWindow(span: 60)
        var outcome = RequestOutcome(failure: nil, latency: .milliseconds(5))
        outcome.inputTokens = Int.max
        outcome.outputTokens = Int.max
        window.record(outcome, at: 1)
        window.record(outcome, at: 1)
        window.record(outcome, at: 2)
        #expect(window.summary(last: 60, now: 2).requests == 3)
    }

    @Test func storedCountsConvertWithoutTrapping() {
        #expect(UntrustedNumber.count(.nan) == 0)
        #expect(UntrustedNumber.count(.infinity) == Int.max)
        #expect(UntrustedNumber.count(1e30) == Int.max)
        #expect(UntrustedNumber.count(-1e30) == 0)
        #expect(UntrustedNumber.count(1e30, ceiling: 10) == 10)
        #expect(UntrustedNumber.count(42.9) == 42)
    }

    // MARK: Text

    @Test(arguments: [[0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82], [0xFF], [0x80], [0xF0, 0x9F, 0x98]] as [[UInt8]])
    func invalidUTF8InAStringIsRefused(bytes: [UInt8]) {
        let document = Array(#"{"model":"m","messages":[{"role":"user","content":"ab"#.utf8) + bytes + Array(#"cd"}]}"#.utf8)
        #expect(throws: GatewayError.self) { try OpenAIRequestPatch(body: ByteBuffer(bytes: document)) }
    }

    @Test func wellFormedUTF8OfEveryLengthIsKept() throws {
        let body = #"{"model":"m","messages":[{"role":"user","content":"café – 日本語 😀 and more plain text after it"}]}"#
        let patch = try OpenAIRequestPatch(body: ByteBuffer(string: body))
        #expect(patch.upstreamBody(model: "m").string == body)
    }
}
