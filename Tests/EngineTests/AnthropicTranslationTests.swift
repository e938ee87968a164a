import Foundation
import NIOCore
import Testing
@testable import Engine

struct AnthropicRequestDecoderTests {
    private func decode(_ text: String) throws(GatewayError) -> ChatRequest {
        try AnthropicRequestDecoder.decode(ByteBuffer(string: text)).request
    }

    @Test func translatesAConversationWithToolsImagesAndResultsToOpenAI() throws {
        let body = """
            {"model":"claude","max_tokens":300,"system":[{"type":"text","text":"Be brief."}],
             "stop_sequences":["END"],"temperature":0.5,"top_k":20,"metadata":{"user_id":"u1"},
             "tool_choice":{"type":"any","disable_parallel_tool_use":true},
             "tools":[{"name":"get_weather","description":"d","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}],
             "messages":[
              {"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}},{"type":"text","text":"Weather?"}]},
              {"role":"assistant","content":[{"type":"thinking","thinking":"hm","signature":"s"},{"type":"text","text":"Checking."},{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}}]},
              {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"18C"}]},{"type":"text","text":"Thanks"}]},
              {"role":"user","content":"And tomorrow?"}
             ]}
            """
        let decoded = try AnthropicRequestDecoder.decode(ByteBuffer(string: body))
        #expect(decoded.dropped == ["thinking"])
        let request = decoded.request
        #expect(request.system == "Be brief.")
        #expect(request.messages.count == 3, "consecutive user turns are merged")
        #expect(request.toolChoice == .required)
        #expect(request.parallelToolCalls == false)
        let encoded = OpenAIRequestEncoder.encode(request, upstreamModel: "gpt-4o", options: .init(maxTokensField: "max_completion_tokens", acceptsTopK: false))
        let expected = """
            {"model":"gpt-4o","messages":[{"role":"system","content":"Be brief."},\
            {"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}},{"type":"text","text":"Weather?"}]},\
            {"role":"assistant","content":"Checking.","tool_calls":[{"id":"toolu_1","type":"function","function":{"name":"get_weather","arguments":"{\\"city\\":\\"Paris\\"}"}}]},\
            {"role":"tool","tool_call_id":"toolu_1","content":"18C"},\
            {"role":"user","content":[{"type":"text","text":"Thanks"},{"type":"text","text":"And tomorrow?"}]}],\
            "tools":[{"type":"function","function":{"name":"get_weather","description":"d","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],\
            "parallel_tool_calls":false,"tool_choice":"required","max_completion_tokens":300,"temperature":0.5,"stop":["END"],"user":"u1"}
            """
        #expect(encoded.string == expected)
    }

    @Test func streamsAskForUsageUpstream() throws {
        let request = try self.decode(#"{"model":"m","max_tokens":5,"stream":true,"top_k":3,"messages":[{"role":"user","content":"hi"}]}"#)
        let encoded = OpenAIRequestEncoder.encode(request, upstreamModel: "llama", options: .init()).string
        #expect(encoded == #"{"model":"llama","messages":[{"role":"user","content":"hi"}],"max_tokens":5,"top_k":3,"stream":true,"stream_options":{"include_usage":true}}"#)
    }

    @Test(arguments: [
        (#"{"max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#, "model"),
        (#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#, "max_tokens"),
        (#"{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]}"#, "max_tokens"),
        (#"{"model":"m","max_tokens":5,"messages":[]}"#, "messages"),
        (#"{"model":"m","max_tokens":5,"messages":[{"role":"system","content":"x"}]}"#, "messages.0.role"),
        (#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":""}]}]}"#, "messages.0.content.0"),
        (#"{"model":"m","max_tokens":5,"temperature":1.5,"messages":[{"role":"user","content":"x"}]}"#, "temperature"),
        (#"{"model":"m","max_tokens":5,"stop_sequences":[" "],"messages":[{"role":"user","content":"x"}]}"#, "stop_sequences"),
        (#"{"model":"m","max_tokens":5,"thinking":{"type":"enabled","budget_tokens":2000},"messages":[{"role":"user","content":"x"}]}"#, "thinking"),
        (#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"document","source":{}}]}]}"#, "messages.0.content.0"),
        (#"{"model":"m","max_tokens":5,"tools":[{"type":"web_search_20250305","name":"web_search"}],"messages":[{"role":"user","content":"x"}]}"#, "tools.0"),
    ])
    func rejectsWhatAnthropicWouldRejectOrWeCannotCarry(_ body: String, _ param: String) {
        #expect {
            try self.decode(body)
        } throws: { error in
            (error as? GatewayError)?.httpStatus == 400 && (error as? GatewayError)?.param == param
        }
    }

    @Test func malformedJSONIsA400InAnthropicsEnvelope() {
        #expect {
            try self.decode("{")
        } throws: { error in
            guard let error = error as? GatewayError else { return false }
            return error.httpStatus == 400 && error.anthropicBody(requestID: "r").contains(#""type":"invalid_request_error""#)
        }
    }
}

struct OpenAIToAnthropicResponseTests {
    @Test func aRecordedParallelToolCallResponseBecomesToolUseBlocks() throws {
        let response = try OpenAIResponseDecoder.decode(try Fixture.buffer("openai-chat-nonstream-parallel-tool-calls.json"), provider: "p")
        #expect(response.stopReason == .toolUse)
        #expect(response.usage == Usage(inputTokens: 149, outputTokens: 60))
        let message = try #require(try JSONSerialization.jsonObject(with: Data(AnthropicResponseEncoder.message(response, model: "m").utf8)) as? [String: Any])
        let content = try #require(message["content"] as? [[String: Any]])
        #expect(content.map { $0["type"] as? String } == ["tool_use", "tool_use"])
        #expect((content[0]["input"] as? [String: Any])?["city"] as? String == "Edinburgh")
        #expect(content[1]["id"] as? String == "call_h1DWI1POMJLb0KwIyQHWXD4p")
        #expect(message["stop_reason"] as? String == "tool_use")
    }

    @Test func cachedTokensLeaveAnthropicsInputTokens() throws {
        let body = #"{"id":"x","model":"m","choices":[{"message":{"content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":100,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":80}}}"#
        let response = try OpenAIResponseDecoder.decode(ByteBuffer(string: body), provider: "p")
        let message = AnthropicResponseEncoder.message(response, model: "m")
        #expect(message.contains(#""usage":{"input_tokens":20,"cache_creation_input_tokens":0,"cache_read_input_tokens":80,"output_tokens":5}"#))
    }

    @Test func brokenToolArgumentsAreKeptNotDropped() {
        #expect(OpenAIResponseDecoder.arguments(#"{"city": "Par"#) == .object([(key: "_raw_arguments", value: .string(#"{"city": "Par"#))]))
        #expect(OpenAIResponseDecoder.arguments("") == .object([]))
    }

    @Test func toolIDsAreMadeSafeForAnthropicDeterministically() {
        #expect(AnthropicResponseEncoder.toolID("call_abc-1") == "call_abc-1")
        let rewritten = AnthropicResponseEncoder.toolID("functions.Bash:0")
        #expect(rewritten == AnthropicResponseEncoder.toolID("functions.Bash:0"))
        #expect(rewritten.unicodeScalars.allSatisfy { $0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_" || $0 == "-" })
        #expect(rewritten != AnthropicResponseEncoder.toolID("functions.Bash_0"))
    }
}

struct OpenAIToAnthropicStreamTests {
    /// Runs a recorded OpenAI stream through decoder and encoder in pieces, returning the events' JSON.
    private func translate(_ text: String, pieceSize: Int = 37) -> [[String: Any]] {
        var decoder = OpenAIStreamDecoder(provider: "p")
        var encoder = AnthropicStreamEncoder(model: "m", fallbackID: "req_1")
        var output = ""
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + pieceSize)
            output += encoder.encode(decoder.feed(ByteBuffer(bytes: bytes[offset..<end])))
            offset = end
        }
        output += encoder.encode(decoder.finish())
        return output.components(separatedBy: "\n\n").compactMap { event in
            guard let data = event.split(separator: "\n").first(where: { $0.hasPrefix("data: ") }) else { return nil }
            return try? JSONSerialization.jsonObject(with: Data(data.dropFirst(6).utf8)) as? [String: Any]
        }
    }

    @Test func aRecordedTextStreamFollowsAnthropicsGrammarWithTheFinalUsage() throws {
        let events = self.translate(try Fixture.text("openai-chat-stream-text-usage.sse"))
        let types = events.compactMap { $0["type"] as? String }
        #expect(types.prefix(3) == ["message_start", "ping", "content_block_start"])
        #expect(types.suffix(3) == ["content_block_stop", "message_delta", "message_stop"])
        let text = events.compactMap { (($0["delta"] as? [String: Any])?["text"]) as? String }.joined()
        #expect(text.hasPrefix("I'm unable to provide real-time weather updates."))
        let delta = events[events.count - 2]
        #expect((delta["delta"] as? [String: Any])?["stop_reason"] as? String == "end_turn")
        #expect((delta["usage"] as? [String: Any])?["output_tokens"] as? Int == 30)
        #expect((delta["usage"] as? [String: Any])?["input_tokens"] as? Int == 14)
    }

    @Test func recordedParallelToolCallsBecomeSequentialToolUseBlocks() throws {
        let events = self.translate(try Fixture.text("openai-chat-stream-parallel-tool-calls-usage.sse"), pieceSize: 11)
        let starts = events.filter { $0["type"] as? String == "content_block_start" }
        #expect(starts.compactMap { ($0["content_block"] as? [String: Any])?["name"] as? String } == ["GetWeatherArgs", "get_stock_price"])
        #expect(starts.compactMap { $0["index"] as? Int } == [0, 1])
        for index in 0..<2 {
            let json = events.filter { $0["index"] as? Int == index }.compactMap { (($0["delta"] as? [String: Any])?["partial_json"]) as? String }.joined()
            #expect((try? JSONSerialization.jsonObject(with: Data(json.utf8))) is [String: Any], "call \(index) reassembles to an object")
        }
        #expect(((events[events.count - 2]["delta"] as? [String: Any])?["stop_reason"]) as? String == "tool_use")
    }

    @Test func aCutStreamEndsWithAnErrorEventNotMessageStop() throws {
        let recorded = try Fixture.text("openai-chat-stream-text-usage.sse")
        let cut = String(recorded.prefix(recorded.count / 2))
        let events = self.translate(cut)
        #expect(events.last?["type"] as? String == "error")
        #expect(!events.contains { $0["type"] as? String == "message_stop" })
    }
}
