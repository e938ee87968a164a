import NIOCore
import Testing
@testable import Engine

/// Property: for every canonical request a dialect can express, encoding it in that dialect and
/// decoding it back gives the same request. Requests are generated from a fixed seed.
struct RoundTripTests {
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            self.state = self.state &* 6364136223846793005 &+ 1442695040888963407
            return self.state ^ (self.state >> 29)
        }
    }

    enum Dialect { case openAI, anthropic }

    static let words = ["alpha", "beta", "gamma", "ünïcode", "quote\"d", "new\nline", "emoji 😀", "tab\t"]

    static func text(_ random: inout Generator) -> String {
        (0..<Int.random(in: 1...4, using: &random)).map { _ in Self.words.randomElement(using: &random)! }.joined(separator: " ")
    }

    static func request(_ random: inout Generator, for dialect: Dialect) -> ChatRequest {
        let tools = (0..<Int.random(in: 0...2, using: &random)).map { index in
            ToolDefinition(
                name: "tool_\(index)",
                description: Bool.random(using: &random) ? Self.text(&random) : nil,
                parameters: .object([(key: "type", value: .string("object")), (key: "properties", value: .object([(key: "q", value: .object([(key: "type", value: .string("string"))]))]))])
            )
        }
        var messages: [ChatMessage] = []
        var pendingCalls: [String] = []
        var callNumber = 0
        for turn in 0..<Int.random(in: 1...5, using: &random) {
            if turn % 2 == 0 {
                var parts: [ContentPart] = pendingCalls.map { id in
                    .toolResult(toolUseID: id, content: [.text(Self.text(&random))], isError: dialect == .anthropic && Bool.random(using: &random))
                }
                pendingCalls = []
                if parts.isEmpty || Bool.random(using: &random) { parts.append(.text(Self.text(&random))) }
                if Bool.random(using: &random) && parts.last.map({ if case .text = $0 { return true } else { return false } }) == true {
                    parts.append(.image(.base64(mediaType: "image/png", data: "iVBORw0KGgo=")))
                }
                messages.append(ChatMessage(role: .user, content: parts))
            } else {
                var parts: [ContentPart] = Bool.random(using: &random) || tools.isEmpty ? [.text(Self.text(&random))] : []
                if !tools.isEmpty {
                    for _ in 0..<Int.random(in: (parts.isEmpty ? 1 : 0)...2, using: &random) {
                        callNumber += 1
                        let id = "call_\(callNumber)"
                        pendingCalls.append(id)
                        parts.append(.toolUse(id: id, name: tools.randomElement(using: &random)!.name, input: .object([(key: "q", value: .string(Self.text(&random)))])))
                    }
                }
                messages.append(ChatMessage(role: .assistant, content: parts))
            }
        }
        var request = ChatRequest(model: "m", messages: messages, tools: tools)
        request.system = Bool.random(using: &random) ? Self.text(&random) : nil
        request.stream = Bool.random(using: &random)
        request.user = Bool.random(using: &random) ? "user-1" : nil
        request.stopSequences = (0..<Int.random(in: 0...3, using: &random)).map { "stop\($0)" }
        let steps = [0.0, 0.25, 0.5, 0.75, 1.0]
        switch dialect {
        case .openAI:
            request.maxTokens = Bool.random(using: &random) ? Int.random(in: 1...4096, using: &random) : nil
            request.temperature = Bool.random(using: &random) ? steps.randomElement(using: &random)! * 2 : nil
            request.topP = Bool.random(using: &random) ? steps.randomElement(using: &random)! : nil
            if !tools.isEmpty {
                request.toolChoice = [nil, .auto, ToolChoice.none, .required, .tool(name: tools[0].name)].randomElement(using: &random)!
                request.parallelToolCalls = [nil, true, false].randomElement(using: &random)!
            }
            request.responseFormat = [nil, .json, .jsonSchema(name: "answer", schema: .object([(key: "type", value: .string("object"))]))].randomElement(using: &random)!
        case .anthropic:
            request.maxTokens = Int.random(in: 1...4096, using: &random)
            if Bool.random(using: &random) {
                request.temperature = steps.randomElement(using: &random)!
            } else {
                request.topP = Bool.random(using: &random) ? steps.randomElement(using: &random)! : nil
            }
            request.topK = Bool.random(using: &random) ? Int.random(in: 1...50, using: &random) : nil
            if !tools.isEmpty {
                let choice = [nil, .auto, ToolChoice.none, .required, .tool(name: tools[0].name)].randomElement(using: &random)!
                request.toolChoice = choice
                // Anthropic can only say "no parallel calls" (on a tool choice other than none).
                request.parallelToolCalls = choice != nil && choice != ToolChoice.none && Bool.random(using: &random) ? false : nil
            }
            request.responseFormat = Bool.random(using: &random) ? .jsonSchema(name: "response", schema: .object([(key: "type", value: .string("object"))])) : nil
        }
        return request
    }

    @Test func openAIEncodeThenDecodeIsIdentity() throws {
        var random = Generator(state: 7)
        for _ in 0..<300 {
            let request = Self.request(&random, for: .openAI)
            let body = OpenAIRequestEncoder.encode(request, upstreamModel: "m", options: .init(acceptsTopK: false))
            let decoded = try OpenAIRequestDecoder.decode(body)
            #expect(decoded.request == request, "\(body.string)")
            #expect(decoded.dropped.isEmpty)
            if decoded.request != request { return }
        }
    }

    @Test func anthropicEncodeThenDecodeIsIdentity() throws {
        var random = Generator(state: 11)
        for _ in 0..<300 {
            let request = Self.request(&random, for: .anthropic)
            let body = try AnthropicRequestEncoder.encode(request, upstreamModel: "m", defaultMaxTokens: 1)
            let decoded = try AnthropicRequestDecoder.decode(body)
            #expect(decoded.request == request, "\(body.string)")
            if decoded.request != request { return }
        }
    }
}
