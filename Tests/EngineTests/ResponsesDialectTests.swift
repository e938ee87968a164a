import Foundation
import NIOCore
import Testing
@testable import Engine

/// The Responses dialect against recorded requests, answers and streams (`Fixtures/providers/openai-responses-*`,
/// each with its `.source.txt`).
struct ResponsesDialectTests {
    @Test func aRecordedFollowUpBecomesItsToolResult() throws {
        let decoded = try ResponsesRequestDecoder.decode(try Fixture.buffer("openai-responses-request-previous-response-id-function-call-output.json"))
        #expect(decoded.previousResponseID == "resp_0435eb6c2aa8e9eb0069e15ffeb3fc81959cd2d1e915a8c7ea" && decoded.store)
        #expect(decoded.request.model == "gpt-4.1" && decoded.request.toolChoice == .auto && !decoded.request.stream)
        guard case .toolResult(let id, let content, false)? = decoded.request.messages.first?.content.first else {
            Issue.record("not a tool result: \(decoded.request.messages)")
            return
        }
        #expect(id == "call_P1vN20XNjvNyIm0VshHYzmSA" && content.text().hasPrefix("Location not recognized."))
        #expect(decoded.request.tools.map(\.name) == ["get_weather"] && decoded.request.tools.first?.description == nil)
    }

    @Test func aRecordedStructuredOutputRequestKeepsItsSchemaAndItsCalls() throws {
        let decoded = try ResponsesRequestDecoder.decode(try Fixture.buffer("openai-responses-request-text-format-json-schema.json"))
        guard case .jsonSchema(let name, let schema)? = decoded.request.responseFormat else {
            Issue.record("no schema: \(String(describing: decoded.request.responseFormat))")
            return
        }
        #expect(name == "CityLocation" && schema["required"]?.array?.compactMap(\.string) == ["city", "country"])
        let roles = decoded.request.messages.map(\.role)
        #expect(roles == [.user, .assistant, .user], "\(decoded.request.messages)")
        #expect(decoded.request.messages[1].content == [.toolUse(id: "call_tTAThu8l2S9hNky2krdwijGP", name: "get_user_country", input: .object([]))])
        #expect(decoded.request.messages[2].content == [.toolResult(toolUseID: "call_tTAThu8l2S9hNky2krdwijGP", content: [.text("Mexico")], isError: false)])
    }

    @Test func aFollowUpContinuesTheKeptConversation() throws {
        // The kept turn: its input items, then its answer's output (a reasoning item, a message, a call).
        let kept = try JSONValue.parse(try Fixture.text("openai-responses-nonstream-reasoning.json"))
        let call = try JSONValue.parse(try Fixture.text("openai-responses-nonstream-function-call.json"))
        let history = [JSONValue.object([(key: "role", value: .string("user")), (key: "content", value: .string("First question"))])]
            + (kept["output"]?.array ?? []) + (call["output"]?.array ?? [])
        let body = ByteBuffer(string: #"{"model":"m","previous_response_id":"resp_x","input":[{"type":"function_call_output","call_id":"call_P1vN20XNjvNyIm0VshHYzmSA","output":"sunny"}]}"#)
        let decoded = try ResponsesRequestDecoder.decode(body, history: history)
        #expect(decoded.request.messages.map(\.role) == [.user, .assistant, .user], "\(decoded.request.messages)")
        #expect(decoded.request.messages[1].content.count == 2, "the kept answer's text, then its call: \(decoded.request.messages[1])")
        #expect(decoded.request.messages[2].content == [.toolResult(toolUseID: "call_P1vN20XNjvNyIm0VshHYzmSA", content: [.text("sunny")], isError: false)])
        #expect(decoded.inputItems.count == 1 && decoded.previousResponseID == "resp_x")
        // A string input is kept as the user message it stands for.
        let plain = try ResponsesRequestDecoder.decode(ByteBuffer(string: #"{"model":"m","input":"Hi"}"#))
        #expect(plain.inputItems == [.object([(key: "role", value: .string("user")), (key: "content", value: .string("Hi"))])])
    }

    @Test func instructionsImagesAndOptionsAreCarried() throws {
        let body = ByteBuffer(string: """
            {"model":"m","instructions":"Be brief.","input":[{"role":"developer","content":"Answer in French."},
             {"role":"user","content":[{"type":"input_text","text":"What is this?"},{"type":"input_image","image_url":"data:image/png;base64,AAAA"}]},
             {"type":"reasoning","id":"rs_1","summary":[],"encrypted_content":"gAAA"}],
             "max_output_tokens":300,"temperature":0.5,"top_p":0.9,"stream":true,"store":false,"reasoning":{"effort":"low"},
             "tool_choice":{"type":"function","name":"lookup"},"tools":[{"type":"function","name":"lookup","parameters":{"type":"object"}}]}
            """)
        let decoded = try ResponsesRequestDecoder.decode(body)
        #expect(decoded.request.system == "Be brief.\n\nAnswer in French." && !decoded.store && decoded.request.stream)
        #expect(decoded.request.maxTokens == 300 && decoded.request.temperature == 0.5 && decoded.request.topP == 0.9)
        #expect(decoded.request.messages == [ChatMessage(role: .user, content: [.text("What is this?"), .image(.base64(mediaType: "image/png", data: "AAAA"))])])
        #expect(decoded.request.toolChoice == .tool(name: "lookup"))
        #expect(Set(decoded.dropped) == ["reasoning", "input.reasoning"])
        // A string input is one user turn.
        #expect(try ResponsesRequestDecoder.decode(ByteBuffer(string: #"{"model":"m","input":"Hi"}"#)).request.messages == [ChatMessage(role: .user, content: [.text("Hi")])])
    }

    @Test(arguments: [
        (#"{"model":"m","input":"x","tools":[{"type":"web_search"}]}"#, "tools[0]"),
        (#"{"model":"m","input":[{"type":"item_reference","id":"msg_1"}]}"#, "input[0]"),
        (#"{"model":"m","input":[{"type":"web_search_call","id":"ws_1"}]}"#, "input[0]"),
        (#"{"model":"m","input":"x","background":true}"#, "background"),
        (#"{"model":"m","prompt":{"id":"pmpt_1"}}"#, "prompt"),
        (#"{"model":"m"}"#, "input"),
        (#"{"model":"m","input":"x","max_output_tokens":-1}"#, "max_output_tokens"),
        (#"{"model":"m","input":"x","max_output_tokens":1e300}"#, "max_output_tokens"),
        (#"{"model":"m","input":"x","text":{"format":{"type":"xml"}}}"#, "text.format"),
        (#"{"model":"m","input":[{"role":"user","content":[{"type":"input_image","file_id":"file_1"}]}]}"#, "input[0].content[0]"),
        (#"{"input":"x"}"#, "model"),
    ])
    func whatCannotBeCarriedIsA400NamingIt(_ body: String, _ param: String) {
        do {
            _ = try ResponsesRequestDecoder.decode(ByteBuffer(string: body))
            Issue.record("accepted: \(body)")
        } catch {
            #expect(error.httpStatus == 400 && error.param == param, "\(body): \(error)")
        }
    }

    @Test func recordedAnswersDecodeWithExactUsage() throws {
        let text = try ResponsesResponseDecoder.decode(try Fixture.buffer("openai-responses-nonstream-text.json"), provider: "p")
        #expect(text.usage == Usage(inputTokens: 14, outputTokens: 50) && text.stopReason == .endTurn && text.content.text().count > 20)
        let call = try ResponsesResponseDecoder.decode(try Fixture.buffer("openai-responses-nonstream-function-call.json"), provider: "p")
        #expect(call.content == [.toolUse(id: "call_P1vN20XNjvNyIm0VshHYzmSA", name: "get_weather", input: .object([(key: "city", value: .string("New York"))]))])
        #expect(call.stopReason == .toolUse && call.usage == Usage(inputTokens: 56, outputTokens: 16))
        let reasoning = try ResponsesResponseDecoder.decode(try Fixture.buffer("openai-responses-nonstream-reasoning.json"), provider: "p")
        #expect(reasoning.usage == Usage(inputTokens: 865, outputTokens: 163, reasoningTokens: 128))
        #expect(reasoning.content.count == 1, "the reasoning item is OpenAI's own: \(reasoning.content)")
    }

    @Test func aWholeAnswerIsAResponseObjectTheDecoderReadsBack() throws {
        let answer = ChatResponse(
            id: "x", model: "claude", content: [.text("Let me check. "), .text("One moment."), .toolUse(id: "toolu_1", name: "lookup", input: .object([(key: "q", value: .string("a"))]))],
            stopReason: .toolUse, usage: Usage(inputTokens: 100, cachedInputTokens: 40, outputTokens: 20, reasoningTokens: 5)
        )
        let text = ResponsesResponseEncoder.response(answer, id: "resp_abc", model: "claude", createdAt: 1_700_000_000, echo: .init(instructions: "Be brief.", store: false))
        let json = try JSONValue.parse(text)
        #expect(json["id"]?.string == "resp_abc" && json["object"]?.string == "response" && json["status"]?.string == "completed")
        #expect(json["instructions"]?.string == "Be brief." && json["store"]?.bool == false)
        #expect(json["output"]?.array?.map { $0["type"]?.string ?? "" } == ["message", "function_call"])
        #expect(json["output"]?.array?.last?["call_id"]?.string == "toolu_1" && json["output"]?.array?.last?["arguments"]?.string == #"{"q":"a"}"#)
        #expect(json["usage"]?["input_tokens_details"]?["cached_tokens"]?.int == 40 && json["usage"]?["total_tokens"]?.int == 120)
        #expect(try ResponsesResponseDecoder.decode(ByteBuffer(string: text), provider: "p") == ChatResponse(
            id: "resp_abc", model: "claude", content: [.text("Let me check. One moment."), answer.content[2]], stopReason: .toolUse, usage: answer.usage
        ))
        // Stopped by the token limit: incomplete, and says why.
        var cut = answer
        cut.stopReason = .maxTokens
        let incomplete = try JSONValue.parse(ResponsesResponseEncoder.response(cut, id: "resp_abc", model: "m", createdAt: 0, echo: .init()))
        #expect(incomplete["status"]?.string == "incomplete" && incomplete["incomplete_details"]?["reason"]?.string == "max_output_tokens")
    }

    @Test func aStreamIsTheEventSequenceTheSDKExpectsAndReadsBack() throws {
        let events: [StreamEvent] = [
            .start(id: "x", model: "m"), .textDelta("Hel"), .textDelta("lo"), .toolCallStart(index: 0, id: "call_9", name: "f"),
            .toolCallArguments(index: 0, fragment: #"{"a":"#), .toolCallArguments(index: 0, fragment: "1}"), .stop(.toolUse),
            .usage(Usage(inputTokens: 9, outputTokens: 4)), .end,
        ]
        var encoder = ResponsesStreamEncoder(id: "resp_s", model: "m", createdAt: 0, echo: .init())
        let text = encoder.encode(events)
        #expect(encoder.isFinished)
        let parsed = try self.events(text)
        #expect(parsed.map(\.type) == [
            "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added", "response.output_text.delta",
            "response.output_text.delta", "response.output_text.done", "response.content_part.done", "response.output_item.done",
            "response.output_item.added", "response.function_call_arguments.delta", "response.function_call_arguments.delta",
            "response.function_call_arguments.done", "response.output_item.done", "response.completed",
        ])
        #expect(parsed.map(\.sequence) == Array(0..<parsed.count))
        let completed = parsed.last?.json["response"]
        #expect(completed?["usage"]?["output_tokens"]?.int == 4 && completed?["output"]?.array?.count == 2)
        #expect(completed?["output"]?.array?.first?["content"]?.array?.first?["text"]?.string == "Hello")
        // Read back in small pieces, the same canonical answer.
        var decoder = ResponsesStreamDecoder(provider: "p")
        var back: [StreamEvent] = []
        let bytes = Array(text.utf8)
        for start in stride(from: 0, to: bytes.count, by: 13) { back += decoder.feed(ByteBuffer(bytes: bytes[start..<min(bytes.count, start + 13)])) }
        back += decoder.finish()
        #expect(back == [
            .start(id: "resp_s", model: "m"), .textDelta("Hel"), .textDelta("lo"), .toolCallStart(index: 0, id: "call_9", name: "f"),
            .toolCallArguments(index: 0, fragment: #"{"a":"#), .toolCallArguments(index: 0, fragment: "1}"), .stop(.toolUse),
            .usage(Usage(inputTokens: 9, outputTokens: 4)), .end,
        ])
    }

    @Test func aBrokenStreamEndsFailedNeverCompleted() throws {
        var encoder = ResponsesStreamEncoder(id: "resp_f", model: "m", createdAt: 0, echo: .init())
        let text = encoder.encode([.start(id: "x", model: "m"), .textDelta("Hal"), .failure(.streamInterrupted(provider: "p", detail: "cut"))])
        let types = try self.events(text).map(\.type)
        #expect(types.suffix(2) == ["error", "response.failed"] && !types.contains("response.completed"), "\(types)")
        #expect(encoder.encode([.end]).isEmpty, "nothing after the failure")
        // A recorded failed stream decodes as a failure; a stream cut before its terminal event too.
        var recorded = ResponsesStreamDecoder(provider: "p")
        let lines = try Fixture.text("openai-responses-stream-error-insufficient-quota.data.jsonl").split(separator: "\n").map { "data: \($0)\n\n" }.joined()
        let decoded = recorded.feed(ByteBuffer(string: lines)) + recorded.finish()
        guard case .failure(let error)? = decoded.last else {
            Issue.record("not a failure: \(decoded)")
            return
        }
        #expect(error.message.contains("quota"), "\(error)")
        var cut = ResponsesStreamDecoder(provider: "p")
        let partial = try Fixture.text("openai-responses-stream-text.sse").prefix(3000)
        guard case .failure? = (cut.feed(ByteBuffer(string: String(partial))) + cut.finish()).last else {
            Issue.record("a cut stream ended cleanly")
            return
        }
    }

    private struct Event {
        let type: String
        let sequence: Int
        let json: JSONValue
    }

    /// Each SSE event, its `event:` line checked against its data's `type`.
    private func events(_ text: String) throws -> [Event] {
        try text.components(separatedBy: "\n\n").filter { !$0.isEmpty }.map { block in
            let lines = block.split(separator: "\n")
            let name = String(lines.first { $0.hasPrefix("event: ") }?.dropFirst(7) ?? "")
            let json = try JSONValue.parse(String(lines.first { $0.hasPrefix("data: ") }?.dropFirst(6) ?? ""))
            #expect(json["type"]?.string == name)
            return Event(type: name, sequence: json["sequence_number"]?.int ?? -1, json: json)
        }
    }
}
