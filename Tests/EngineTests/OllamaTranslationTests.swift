import Foundation
import NIOCore
import Testing
@testable import Engine

struct OllamaTranslationTests {
    @Test func aRecordedNDJSONStreamBecomesOpenAIChunksWithItsCounts() throws {
        var decoder = OllamaStreamDecoder(provider: "p")
        var encoder = OpenAIStreamEncoder(model: "phi3", created: 1, includeUsage: true, fallbackID: "req_9")
        var output = ""
        let bytes = Array(try Fixture.text("ollama-chat-stream.ndjson").utf8)
        for start in stride(from: 0, to: bytes.count, by: 13) {
            output += encoder.encode(decoder.feed(ByteBuffer(bytes: bytes[start..<min(bytes.count, start + 13)])))
        }
        // The recording's last line has no newline: `finish` must still read it as the done line.
        output += encoder.encode(decoder.finish())
        #expect(output.hasSuffix("data: [DONE]\n\n"))
        #expect(output.contains(#""id":"chatcmpl-req_9""#))
        #expect(output.contains(#""content":" these""#) && output.contains(#""finish_reason":"stop""#))
        #expect(output.contains(#""usage":{"prompt_tokens":10,"completion_tokens":239,"total_tokens":249"#))
    }

    @Test func toolCallsArriveWholeWithStableIDsAndEndAsToolUse() {
        let line = #"{"model":"m","message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_weather","arguments":{"city":"Tokyo"}}}]},"done":false}"# + "\n"
            + #"{"model":"m","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":3,"eval_count":4}"# + "\n"
        var first = OllamaStreamDecoder(provider: "p")
        var second = OllamaStreamDecoder(provider: "p")
        let events = first.feed(ByteBuffer(string: line))
        #expect(events == second.feed(ByteBuffer(string: line)), "ids are derived, not random")
        guard case .toolCallStart(0, let id, "get_weather") = events[1] else {
            Issue.record("expected a tool call start, got \(events)")
            return
        }
        #expect(id.hasPrefix("call_0_"))
        #expect(events.contains(.toolCallArguments(index: 0, fragment: #"{"city":"Tokyo"}"#)))
        #expect(events.contains(.stop(.toolUse)), "Ollama says stop; a tool call means tool_use")
        #expect(events.last == .end)
    }

    @Test func anErrorLineAndACutStreamAreFailures() {
        var decoder = OllamaStreamDecoder(provider: "p")
        let events = decoder.feed(ByteBuffer(string: #"{"model":"m","message":{"content":"a"},"done":false}"# + "\n" + #"{"error":"model crashed"}"# + "\n"))
        guard case .failure(let error)? = events.last else {
            Issue.record("expected a failure")
            return
        }
        #expect(error.message.contains("model crashed"))
        var cut = OllamaStreamDecoder(provider: "p")
        _ = cut.feed(ByteBuffer(string: #"{"model":"m","message":{"content":"a"},"done":false}"# + "\n"))
        guard case .failure(let interrupted)? = cut.finish().last else {
            Issue.record("expected a failure")
            return
        }
        #expect(interrupted.metricLabel == "stream_interrupted")
    }

    @Test func requestsPutSamplingUnderOptionsAndNameToolResults() throws {
        let request = ChatRequest(
            model: "x", system: "Be brief.",
            messages: [
                ChatMessage(role: .user, content: [.text("Weather?"), .image(.base64(mediaType: "image/png", data: "QUJD"))]),
                ChatMessage(role: .assistant, content: [.toolUse(id: "t1", name: "get_weather", input: .object([(key: "city", value: .string("Paris"))]))]),
                ChatMessage(role: .user, content: [.toolResult(toolUseID: "t1", content: [.text("18C")], isError: false)]),
            ],
            maxTokens: 50, temperature: 0.3, stopSequences: ["END"], stream: true
        )
        let encoded = try OllamaChat.encode(request, upstreamModel: "llama3.2").string
        let expected = #"{"model":"llama3.2","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Weather?","images":["QUJD"]},{"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_weather","arguments":{"city":"Paris"}}}]},{"role":"tool","content":"18C","tool_name":"get_weather"}],"options":{"temperature":0.3,"num_predict":50,"stop":["END"]},"stream":true}"#
        #expect(encoded == expected)
        #expect(throws: GatewayError.self) {
            try OllamaChat.encode(ChatRequest(model: "x", messages: [ChatMessage(role: .user, content: [.image(.url("https://x/y.png"))])]), upstreamModel: "m")
        }
    }

    @Test func embeddingsTranslateBothWaysIncludingBase64() throws {
        let request = try OllamaEmbeddings.encode(ByteBuffer(string: #"{"model":"e","input":["a","b"],"dimensions":2,"encoding_format":"base64"}"#), upstreamModel: "nomic")
        #expect(request.body.string == #"{"model":"nomic","input":["a","b"],"dimensions":2}"#)
        #expect(request.wantsBase64)
        let (json, usage) = try OllamaEmbeddings.decode(ByteBuffer(string: #"{"embeddings":[[1.0,0.5],[0,-2]],"prompt_eval_count":4}"#), model: "nomic", base64: true, provider: "p")
        #expect(usage.inputTokens == 4)
        let decoded = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let first = try #require(((decoded["data"] as? [[String: Any]])?.first?["embedding"]) as? String)
        let floats = try #require(Data(base64Encoded: first)).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        #expect(floats == [1.0, 0.5])
        #expect(throws: GatewayError.self) { try OllamaEmbeddings.encode(ByteBuffer(string: #"{"model":"e","input":[[1,2]]}"#), upstreamModel: "m") }
    }
}
