import Foundation
import NIOCore
import Testing
@testable import Engine

struct GeminiTranslationTests {
    /// The recording holds one `data:` payload a line; SSE frames them with blank lines.
    private func recordedStream() throws -> String {
        try Fixture.text("gemini-stream-tool-call.data.jsonl").split(separator: "\n").map { "data: \($0)\n\n" }.joined()
    }

    @Test func aRecordedToolCallStreamBecomesOpenAIChunksWithThoughtsCountedAsOutput() throws {
        var decoder = GeminiStreamDecoder(provider: "p")
        var encoder = OpenAIStreamEncoder(model: "gemini", created: 1, includeUsage: true, fallbackID: "req_1")
        var output = ""
        let bytes = Array(try self.recordedStream().utf8)
        for start in stride(from: 0, to: bytes.count, by: 31) {
            output += encoder.encode(decoder.feed(ByteBuffer(bytes: bytes[start..<min(bytes.count, start + 31)])))
        }
        output += encoder.encode(decoder.finish())
        #expect(output.contains(#""name":"weather""#))
        #expect(output.contains(#""arguments":"{\"location\":\"San Francisco\"}""#))
        #expect(output.contains(#""finish_reason":"tool_calls""#), "Gemini says STOP after a call; OpenAI clients need tool_calls")
        // 15 candidate tokens + 45 thought tokens are the output; the 29 prompt tokens the input.
        #expect(output.contains(#""usage":{"prompt_tokens":29,"completion_tokens":60,"total_tokens":89,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":45}}"#))
        #expect(output.hasSuffix("data: [DONE]\n\n"))
    }

    @Test func aStreamThatEndsWithoutAFinishReasonWasCut() throws {
        var decoder = GeminiStreamDecoder(provider: "p")
        let first = try self.recordedStream().components(separatedBy: "\n\n")[0] + "\n\n"
        _ = decoder.feed(ByteBuffer(string: first))
        guard case .failure(let error)? = decoder.finish().last else {
            Issue.record("expected a failure")
            return
        }
        #expect(error.metricLabel == "stream_interrupted")
    }

    @Test func requestsUseGeminisShapes() throws {
        let request = ChatRequest(
            model: "g", system: "Be brief.",
            messages: [
                ChatMessage(role: .user, content: [.text("Weather?"), .image(.base64(mediaType: "image/png", data: "QUJD"))]),
                ChatMessage(role: .assistant, content: [.toolUse(id: "c1", name: "weather", input: .object([(key: "location", value: .string("SF"))]))]),
                ChatMessage(role: .user, content: [.toolResult(toolUseID: "c1", content: [.text("18C")], isError: false)]),
            ],
            tools: [ToolDefinition(name: "weather", parameters: .object([(key: "type", value: .string("object"))]))],
            toolChoice: .tool(name: "weather"), maxTokens: 64, temperature: 0.5, stopSequences: ["END"]
        )
        let expected = #"{"systemInstruction":{"parts":[{"text":"Be brief."}]},"contents":[{"role":"user","parts":[{"text":"Weather?"},{"inlineData":{"mimeType":"image/png","data":"QUJD"}}]},{"role":"model","parts":[{"functionCall":{"name":"weather","args":{"location":"SF"}},"thoughtSignature":"skip_thought_signature_validator"}]},{"role":"user","parts":[{"functionResponse":{"name":"weather","response":{"result":"18C"}}}]}],"tools":[{"functionDeclarations":[{"name":"weather","parametersJsonSchema":{"type":"object"}}]}],"toolConfig":{"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["weather"]}},"generationConfig":{"temperature":0.5,"maxOutputTokens":64,"stopSequences":["END"]}}"#
        #expect(try GeminiGenerateContent.encode(request).string == expected)
        #expect(GeminiAdapter().path(model: "gemini-2.5-flash", streaming: true) == "/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
        #expect(GeminiAdapter().path(model: "../x?y", streaming: false) == "/models/.._x_y:generateContent")
    }

    @Test func aBlockedPromptIsARefusalAndSafetyStopsAreToo() throws {
        let blocked = try GeminiGenerateContent.decode(ByteBuffer(string: #"{"promptFeedback":{"blockReason":"SAFETY"}}"#), provider: "p")
        #expect(blocked.stopReason == .refusal && blocked.content.isEmpty)
        let stopped = try GeminiGenerateContent.decode(ByteBuffer(string: #"{"candidates":[{"content":{"parts":[{"text":"a"}]},"finishReason":"SAFETY"}]}"#), provider: "p")
        #expect(stopped.stopReason == .refusal)
    }
}
