import Foundation
import NIOCore
import Testing
@testable import Engine

/// OpenAI clients in front of Anthropic upstreams: requests encoded for Anthropic, recorded Anthropic
/// answers decoded back into OpenAI's shapes.
struct OpenAIToAnthropicRequestTests {
    private func encode(_ body: String, maxTokens: Int = 4096) throws(GatewayError) -> (String, OpenAIRequestDecoder.Decoded) {
        let decoded = try OpenAIRequestDecoder.decode(ByteBuffer(string: body))
        let encoded = try AnthropicRequestEncoder.encode(decoded.request, upstreamModel: "claude-x", defaultMaxTokens: maxTokens)
        return (encoded.string, decoded)
    }

    @Test func translatesAnAgentConversationWithParallelToolResults() throws {
        let body = """
            {"model":"c","seed":7,"temperature":0.2,"top_p":0.9,"stop":"END","user":"u",
             "stream":true,"stream_options":{"include_usage":true},"parallel_tool_calls":false,
             "tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}],
             "messages":[
              {"role":"system","content":"Be brief."},
              {"role":"developer","content":[{"type":"text","text":"Use tools."}]},
              {"role":"user","content":[{"type":"text","text":"Paris and Rome?"},{"type":"image_url","image_url":{"url":"data:image/jpeg;base64,QUJD"}}]},
              {"role":"assistant","content":null,"tool_calls":[
                {"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\\"city\\":\\"Paris\\"}"}},
                {"id":"functions.get:2","type":"function","function":{"name":"get_weather","arguments":"{\\"city\\":\\"Rome\\"}"}}]},
              {"role":"tool","tool_call_id":"call_1","content":"18C"},
              {"role":"tool","tool_call_id":"functions.get:2","content":"21C"},
              {"role":"system","content":"Answer in French."}
             ]}
            """
        let (encoded, decoded) = try self.encode(body)
        #expect(decoded.includeUsage)
        #expect(decoded.dropped == ["seed"])
        let safeID = AnthropicResponseEncoder.toolID("functions.get:2")
        let expected = """
            {"model":"claude-x","max_tokens":4096,"system":"Be brief.\\n\\nUse tools.","messages":[\
            {"role":"user","content":[{"type":"text","text":"Paris and Rome?"},{"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"QUJD"}}]},\
            {"role":"assistant","content":[{"type":"tool_use","id":"call_1","name":"get_weather","input":{"city":"Paris"}},{"type":"tool_use","id":"\(safeID)","name":"get_weather","input":{"city":"Rome"}}]},\
            {"role":"user","content":[{"type":"tool_result","tool_use_id":"call_1","content":[{"type":"text","text":"18C"}]},{"type":"tool_result","tool_use_id":"\(safeID)","content":[{"type":"text","text":"21C"}]},{"type":"text","text":"<system-reminder>Answer in French.</system-reminder>"}]}],\
            "tools":[{"name":"get_weather","input_schema":{"type":"object"}}],\
            "tool_choice":{"type":"auto","disable_parallel_tool_use":true},\
            "temperature":0.2,"stop_sequences":["END"],"metadata":{"user_id":"u"},"stream":true}
            """
        #expect(encoded == expected)
    }

    @Test func maxTokensComeFromTheClientOrTheProviderDefault() throws {
        #expect(try self.encode(#"{"model":"c","max_completion_tokens":77,"messages":[{"role":"user","content":"x"}]}"#).0.contains(#""max_tokens":77"#))
        #expect(try self.encode(#"{"model":"c","messages":[{"role":"user","content":"x"}]}"#, maxTokens: 1234).0.contains(#""max_tokens":1234"#))
    }

    @Test(arguments: [
        (#"{"model":"c","n":2,"messages":[{"role":"user","content":"x"}]}"#, "n"),
        (#"{"model":"c","temperature":1.5,"messages":[{"role":"user","content":"x"}]}"#, "temperature"),
        (#"{"model":"c","response_format":{"type":"xml"},"messages":[{"role":"user","content":"x"}]}"#, "response_format"),
        (#"{"model":"c","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}"#, "messages[0].content[0]"),
        (#"{"model":"c","messages":[{"role":"tool","content":"x"}]}"#, "messages[0].tool_call_id"),
        (#"{"model":"c","stop":["a","b","c","d","e"],"messages":[{"role":"user","content":"x"}]}"#, "stop"),
    ])
    func refusesWhatCannotBeCarriedToAnthropic(_ body: String, _ param: String) {
        #expect {
            try self.encode(body)
        } throws: { error in
            (error as? GatewayError)?.httpStatus == 400 && (error as? GatewayError)?.param == param
        }
    }
}

struct AnthropicToOpenAIResponseTests {
    @Test func aRecordedMessageBecomesACompletionWithOpenAIUsage() throws {
        let response = try AnthropicResponseDecoder.decode(try Fixture.buffer("anthropic-nonstream-text.json"), provider: "p")
        #expect(response.usage == Usage(inputTokens: 12, outputTokens: 29))
        let completion = try #require(try JSONSerialization.jsonObject(with: Data(OpenAIResponseEncoder.completion(response, model: "m", created: 1).utf8)) as? [String: Any])
        let choice = try #require((completion["choices"] as? [[String: Any]])?.first)
        #expect(choice["finish_reason"] as? String == "stop")
        #expect(((choice["message"] as? [String: Any])?["content"] as? String)?.hasPrefix("Hello! I'm doing well") == true)
        #expect((completion["usage"] as? [String: Any])?["total_tokens"] as? Int == 41)
    }

    @Test func cacheReadsCountInOpenAIsPromptTokens() throws {
        let body = #"{"type":"message","id":"msg_1","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":10,"cache_read_input_tokens":80,"cache_creation_input_tokens":5,"output_tokens":3}}"#
        let response = try AnthropicResponseDecoder.decode(ByteBuffer(string: body), provider: "p")
        #expect(response.usage == Usage(inputTokens: 95, cachedInputTokens: 80, cacheWriteInputTokens: 5, outputTokens: 3))
        #expect(OpenAIResponseEncoder.completion(response, model: "m", created: 1).contains(#""prompt_tokens":95,"completion_tokens":3,"total_tokens":98,"prompt_tokens_details":{"cached_tokens":80}"#))
    }
}

struct AnthropicToOpenAIStreamTests {
    private func translate(_ text: String, pieceSize: Int = 23, includeUsage: Bool = true) -> (chunks: [[String: Any]], raw: String) {
        var decoder = AnthropicStreamDecoder(provider: "p")
        var encoder = OpenAIStreamEncoder(model: "m", created: 1, includeUsage: includeUsage, fallbackID: "req_1")
        var output = ""
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + pieceSize)
            output += encoder.encode(decoder.feed(ByteBuffer(bytes: bytes[offset..<end])))
            offset = end
        }
        output += encoder.encode(decoder.finish())
        let chunks = output.components(separatedBy: "\n\n").compactMap { event -> [String: Any]? in
            guard event.hasPrefix("data: {") else { return nil }
            return try? JSONSerialization.jsonObject(with: Data(event.dropFirst(6).utf8)) as? [String: Any]
        }
        return (chunks, output)
    }

    private func deltas(_ chunks: [[String: Any]]) -> [[String: Any]] {
        chunks.compactMap { (($0["choices"] as? [[String: Any]])?.first)?["delta"] as? [String: Any] }
    }

    @Test func aRecordedTextStreamBecomesChunksWithRoleFinishUsageAndDone() throws {
        let (chunks, raw) = self.translate(try Fixture.text("anthropic-stream-text.sse"))
        #expect(raw.hasSuffix("data: [DONE]\n\n"))
        #expect(self.deltas(chunks).first?["role"] as? String == "assistant")
        #expect(self.deltas(chunks).compactMap { $0["content"] as? String }.joined() == "Hello there!")
        let finish = chunks.compactMap { (($0["choices"] as? [[String: Any]])?.first)?["finish_reason"] as? String }
        #expect(finish == ["stop"])
        let usage = try #require(chunks.last?["usage"] as? [String: Any])
        #expect(usage["prompt_tokens"] as? Int == 11 && usage["completion_tokens"] as? Int == 6)
    }

    @Test func aRecordedToolUseStreamBecomesIndexedToolCallFragments() throws {
        let (chunks, _) = self.translate(try Fixture.text("anthropic-stream-text-then-tool-use.sse"), pieceSize: 7, includeUsage: false)
        var arguments = ""
        var names: [String] = []
        for delta in self.deltas(chunks) {
            for call in delta["tool_calls"] as? [[String: Any]] ?? [] {
                #expect(call["index"] as? Int == 0, "the first tool call is index 0, not the Anthropic block index 1")
                if let name = (call["function"] as? [String: Any])?["name"] as? String { names.append(name) }
                arguments += ((call["function"] as? [String: Any])?["arguments"] as? String) ?? ""
            }
        }
        #expect(names == ["get_weather"])
        #expect((try? JSONSerialization.jsonObject(with: Data(arguments.utf8))) is [String: Any])
        let finish = chunks.compactMap { (($0["choices"] as? [[String: Any]])?.first)?["finish_reason"] as? String }
        #expect(finish == ["tool_calls"])
        #expect(!chunks.contains { $0["usage"] != nil }, "no usage chunk unless asked")
    }

    @Test func aToolCallCutByMaxTokensEndsWithLength() throws {
        let (chunks, raw) = self.translate(try Fixture.text("anthropic-stream-tool-use-truncated-max-tokens.sse"))
        let finish = chunks.compactMap { (($0["choices"] as? [[String: Any]])?.first)?["finish_reason"] as? String }
        #expect(finish == ["length"])
        #expect(raw.hasSuffix("data: [DONE]\n\n"))
        #expect((chunks.last?["usage"] as? [String: Any])?["completion_tokens"] as? Int == 124)
    }

    @Test func anUpstreamErrorEventBecomesAnOpenAIErrorWithoutDone() {
        let stream = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":3}}}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"
        let (chunks, raw) = self.translate(stream)
        #expect(!raw.contains("[DONE]"))
        #expect(((chunks.last?["error"] as? [String: Any])?["message"] as? String)?.contains("Overloaded") == true)
    }
}

struct ResponseFormatTests {
    private let schema = JSONValue.object([(key: "type", value: .string("object"))])

    @Test func jsonSchemasReachEveryDialectInItsOwnField() throws {
        let body = #"{"model":"c","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"answer","schema":{"type":"object"}}}}"#
        let request = try OpenAIRequestDecoder.decode(ByteBuffer(string: body)).request
        #expect(request.responseFormat == .jsonSchema(name: "answer", schema: self.schema))
        #expect(try AnthropicRequestEncoder.encode(request, upstreamModel: "m", defaultMaxTokens: 5).string.contains(#""output_config":{"format":{"type":"json_schema","schema":{"type":"object"}}}"#))
        #expect(try GeminiGenerateContent.encode(request).string.contains(#""responseMimeType":"application/json","responseJsonSchema":{"type":"object"}"#))
        #expect(try OllamaChat.encode(request, upstreamModel: "m").string.contains(#""format":{"type":"object"}"#))
        #expect(OpenAIRequestEncoder.encode(request, upstreamModel: "m", options: .init()).string.contains(#""response_format":{"type":"json_schema","json_schema":{"name":"answer","schema":{"type":"object"}}}"#))
    }

    @Test func plainJSONModeBecomesAnObjectSchemaWhereOnlySchemasExist() throws {
        let request = try OpenAIRequestDecoder.decode(ByteBuffer(string: #"{"model":"c","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}}"#)).request
        #expect(request.responseFormat == .json)
        #expect(try AnthropicRequestEncoder.encode(request, upstreamModel: "m", defaultMaxTokens: 5).string.contains(#""schema":{"type":"object"}"#))
        #expect(try OllamaChat.encode(request, upstreamModel: "m").string.contains(#""format":"json""#))
    }
}
