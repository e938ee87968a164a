import Foundation
import NIOCore
import Testing
@testable import Engine

/// Each recorded provider stream and body, decoded and re-encoded for both client dialects, compared
/// with the checked-in expected output in `Golden/`. `UPDATE_GOLDEN=1 swift test --filter Golden`
/// rewrites the files; review the diff before committing it.
struct GoldenTranslationTests {
    static let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

    enum Source: String, CaseIterable {
        case openAIText = "openai-chat-stream-text-usage.sse"
        case openAITools = "openai-chat-stream-parallel-tool-calls-usage.sse"
        case anthropicText = "anthropic-stream-text.sse"
        case anthropicTool = "anthropic-stream-text-then-tool-use.sse"
        case anthropicTruncated = "anthropic-stream-tool-use-truncated-max-tokens.sse"
        case ollama = "ollama-chat-stream.ndjson"
        case gemini = "gemini-stream-tool-call.data.jsonl"
        case responsesText = "openai-responses-stream-text.sse"
        case responsesCall = "openai-responses-stream-function-call.sse"

        func decoder() -> any StreamDecoder {
            switch self {
            case .openAIText, .openAITools: return OpenAIStreamDecoder(provider: "p")
            case .anthropicText, .anthropicTool, .anthropicTruncated: return AnthropicStreamDecoder(provider: "p")
            case .ollama: return OllamaStreamDecoder(provider: "p")
            case .gemini: return GeminiStreamDecoder(provider: "p")
            case .responsesText, .responsesCall: return ResponsesStreamDecoder(provider: "p")
            }
        }

        func bytes() throws -> String {
            let text = try Fixture.text(self.rawValue)
            // The Gemini recording holds one `data:` payload a line.
            return self == .gemini ? text.split(separator: "\n").map { "data: \($0)\n\n" }.joined() : text
        }
    }

    private func check(_ output: String, against name: String) throws {
        let file = Self.golden.appendingPathComponent(name)
        if ProcessInfo.processInfo.environment["UPDATE_GOLDEN"] == "1" {
            try FileManager.default.createDirectory(at: Self.golden, withIntermediateDirectories: true)
            try output.write(to: file, atomically: true, encoding: .utf8)
        }
        let expected = try String(contentsOf: file, encoding: .utf8)
        #expect(output == expected, "\(name) differs from its golden file")
    }

    @Test(arguments: Source.allCases)
    func streamsTranslateToBothClientDialects(_ source: Source) throws {
        let bytes = Array(try source.bytes().utf8)
        for dialect in ["openai", "anthropic", "responses"] {
            var decoder = source.decoder()
            var encoder: any StreamEncoder = switch dialect {
            case "openai": OpenAIStreamEncoder(model: "m", created: 0, includeUsage: true, fallbackID: "req_golden")
            case "anthropic": AnthropicStreamEncoder(model: "m", fallbackID: "req_golden")
            default: ResponsesStreamEncoder(id: "resp_golden", model: "m", createdAt: 0, echo: .init())
            }
            var output = ""
            // Odd-sized pieces: framing must not depend on where the network cut the bytes.
            for start in stride(from: 0, to: bytes.count, by: 17) {
                output += encoder.encode(decoder.feed(ByteBuffer(bytes: bytes[start..<min(bytes.count, start + 17)])))
            }
            output += encoder.encode(decoder.finish())
            try self.check(output, against: "\(source.rawValue).\(dialect).txt")
        }
    }

    @Test func recordedBodiesTranslateToTheOtherDialect() throws {
        let openAI = try OpenAIResponseDecoder.decode(try Fixture.buffer("openai-chat-nonstream-parallel-tool-calls.json"), provider: "p")
        try self.check(AnthropicResponseEncoder.message(openAI, model: "m") + "\n", against: "openai-chat-nonstream-parallel-tool-calls.json.anthropic.txt")
        let anthropic = try AnthropicResponseDecoder.decode(try Fixture.buffer("anthropic-nonstream-text.json"), provider: "p")
        try self.check(OpenAIResponseEncoder.completion(anthropic, model: "m", created: 0) + "\n", against: "anthropic-nonstream-text.json.openai.txt")
        for (name, answer) in [("openai-chat-nonstream-parallel-tool-calls.json", openAI), ("anthropic-nonstream-text.json", anthropic)] {
            try self.check(ResponsesResponseEncoder.response(answer, id: "resp_golden", model: "m", createdAt: 0, echo: .init()) + "\n", against: "\(name).responses.txt")
        }
        let responses = try ResponsesResponseDecoder.decode(try Fixture.buffer("openai-responses-nonstream-function-call.json"), provider: "p")
        try self.check(OpenAIResponseEncoder.completion(responses, model: "m", created: 0) + "\n", against: "openai-responses-nonstream-function-call.json.openai.txt")
        try self.check(AnthropicResponseEncoder.message(responses, model: "m") + "\n", against: "openai-responses-nonstream-function-call.json.anthropic.txt")
    }
}
