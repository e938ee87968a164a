import Engine
import Foundation
import NIOCore
import Testing
@testable import Server

/// The simulator is the test double of every later test, so its answers must be shaped like the
/// recorded provider fixtures and its usage must match what it actually sent.
@Suite(.serialized)
struct SimulatorTests {
    static let weatherTools = #","tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}}}}},{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{"zone":{"type":"string"}}}}}]"#

    private func withSimulator(_ body: (String) async throws -> Void) async throws {
        let simulator = try await RunningService.simulator(SimulatorRouter(settings: SimulatorSettings(timeToFirstToken: .zero, tokensPerSecond: 0)))
        do {
            try await body(simulator.url)
        } catch {
            await simulator.stop()
            throw error
        }
        await simulator.stop()
    }

    private func object(_ text: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:]
    }

    @Test func openAIStreamAndBodyAgreeOnTextAndUsage() async throws {
        try await self.withSimulator { url in
            let body = try await TestClient.post("\(url)/v1/chat/completions", TestClient.chat(model: "m"))
            let stream = try await TestClient.post("\(url)/v1/chat/completions", TestClient.chat(model: "m", stream: true, extra: #","stream_options":{"include_usage":true}"#))
            var relay = OpenAIStreamRelay(provider: "sim", forwardUsageChunk: true)
            guard case .forward = relay.feed(ByteBuffer(string: stream.body)), case .forward = relay.finish() else {
                Issue.record("the simulated stream did not relay cleanly")
                return
            }
            let summary = try OpenAIResponseSummary.read(ByteBuffer(string: body.body), provider: "sim")
            #expect(relay.usage == summary.usage)
            #expect(relay.finishReason == "stop")
            // First chunk is the role chunk, as in the recordings.
            #expect(stream.events.first?.contains(#""delta":{"role":"assistant","content":"","refusal":null}"#) == true)
            // Completion tokens are the content chunks the stream carried.
            let contentChunks = stream.events.filter { $0.contains(#""delta":{"content""#) }.count
            #expect(summary.usage?.outputTokens == contentChunks)
        }
    }

    @Test func openAIToolCallsStreamAsIndexedFragmentsThatReassembleToJSON() async throws {
        try await self.withSimulator { url in
            let stream = try await TestClient.post("\(url)/v1/chat/completions", TestClient.chat(model: "m", stream: true, extra: Self.weatherTools))
            var arguments: [Int: String] = [:]
            var names: [Int: String] = [:]
            var finish: String?
            for event in stream.events.dropLast() {
                let choice = (self.object(event)["choices"] as? [[String: Any]])?.first
                if let reason = choice?["finish_reason"] as? String { finish = reason }
                for call in ((choice?["delta"] as? [String: Any])?["tool_calls"] as? [[String: Any]]) ?? [] {
                    let index = call["index"] as? Int ?? -1
                    let function = call["function"] as? [String: Any]
                    if let name = function?["name"] as? String { names[index] = name }
                    arguments[index, default: ""] += function?["arguments"] as? String ?? ""
                }
            }
            #expect(finish == "tool_calls")
            #expect(names == [0: "get_weather", 1: "get_time"])
            #expect(self.object(arguments[0] ?? "")["days"] as? Int == 1)
            #expect(self.object(arguments[1] ?? "")["zone"] is String)

            let none = try await TestClient.post("\(url)/v1/chat/completions", TestClient.chat(model: "m", extra: Self.weatherTools + #","tool_choice":"none""#))
            #expect(((none.json["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String) == "stop")
        }
    }

    @Test func anthropicStreamFollowsTheEventGrammar() async throws {
        try await self.withSimulator { url in
            let request = #"{"model":"claude-x","max_tokens":256,"stream":true,"messages":[{"role":"user","content":"Weather?"}],"tools":[{"name":"get_weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}]}"#
            let stream = try await TestClient.post("\(url)/v1/messages", request)
            let types = stream.events.map { self.object($0)["type"] as? String ?? "?" }
            #expect(types.first == "message_start")
            #expect(types.last == "message_stop")
            #expect(types.dropLast().last == "message_delta")
            #expect(stream.body.contains("event: content_block_start\ndata: "))
            let delta = self.object(stream.events[stream.events.count - 2])
            #expect((delta["delta"] as? [String: Any])?["stop_reason"] as? String == "tool_use")
            let partial = stream.events.compactMap { event -> String? in
                ((self.object(event)["delta"] as? [String: Any])?["partial_json"]) as? String
            }.joined()
            #expect(self.object(partial)["city"] is String)

            let body = try await TestClient.post("\(url)/v1/messages", request.replacingOccurrences(of: #""stream":true,"#, with: ""))
            let usage = body.json["usage"] as? [String: Any]
            #expect(usage?["output_tokens"] as? Int == (delta["usage"] as? [String: Any])?["output_tokens"] as? Int)
            #expect(body.json["stop_reason"] as? String == "tool_use")
        }
    }

    @Test func anthropicErrorsUseItsEnvelopeAndStatuses() async throws {
        try await self.withSimulator { url in
            let missing = try await TestClient.post("\(url)/v1/messages", #"{"model":"c","messages":[{"role":"user","content":"x"}]}"#)
            #expect(missing.status == 400)
            #expect(missing.json["type"] as? String == "error")
            #expect((missing.json["error"] as? [String: Any])?["type"] as? String == "invalid_request_error")
            let overloaded = try await TestClient.post("\(url)/v1/messages", #"{"model":"c:fault=529","max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#)
            #expect(overloaded.status == 529)
            #expect((overloaded.json["error"] as? [String: Any])?["type"] as? String == "overloaded_error")
        }
    }

    @Test func ollamaStreamsNDJSONWithFinalCounts() async throws {
        try await self.withSimulator { url in
            let stream = try await TestClient.post("\(url)/api/chat", #"{"model":"llama3.2","messages":[{"role":"user","content":"Hi"}]}"#)
            let lines = stream.body.split(separator: "\n").map { self.object(String($0)) }
            #expect(stream.headers.first(name: "content-type") == "application/x-ndjson")
            let final = try #require(lines.last)
            #expect(final["done"] as? Bool == true)
            #expect(final["done_reason"] as? String == "stop")
            #expect(final["eval_count"] as? Int == lines.count - 1)
            #expect(lines.dropLast().allSatisfy { $0["done"] as? Bool == false })

            let tools = try await TestClient.post("\(url)/api/chat", #"{"model":"llama3.2","stream":false,"messages":[{"role":"user","content":"Hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"properties":{"n":{"type":"number"}}}}}]}"#)
            let calls = (tools.json["message"] as? [String: Any])?["tool_calls"] as? [[String: Any]]
            #expect(((calls?.first?["function"] as? [String: Any])?["arguments"] as? [String: Any])?["n"] as? Int == 1)
        }
    }

    @Test func embeddingsAreDeterministicNormalisedAndOfTheAskedSize() async throws {
        try await self.withSimulator { url in
            let first = try await TestClient.post("\(url)/v1/embeddings", #"{"model":"e","input":["hello world","hello world"],"dimensions":64}"#)
            let data = try #require(first.json["data"] as? [[String: Any]])
            let vectors = data.compactMap { $0["embedding"] as? [Double] }
            #expect(vectors.count == 2 && vectors[0].count == 64 && vectors[0] == vectors[1])
            #expect(abs(vectors[0].reduce(0) { $0 + $1 * $1 } - 1) < 1e-4)
            let encoded = try await TestClient.post("\(url)/v1/embeddings", #"{"model":"e","input":"hello world","dimensions":64,"encoding_format":"base64"}"#)
            let base64 = try #require((encoded.json["data"] as? [[String: Any]])?.first?["embedding"] as? String)
            #expect(Data(base64Encoded: base64)?.count == 64 * 4)
            let ollama = try await TestClient.post("\(url)/api/embed", #"{"model":"e","input":"hello world"}"#)
            #expect((ollama.json["embeddings"] as? [[Double]])?.first?.count == 256)
        }
    }

    @Test(arguments: ["/v1/chat/completions", "/api/chat"])
    func rateLimitFaultsCarryRetryAfter(_ path: String) async throws {
        try await self.withSimulator { url in
            let reply = try await TestClient.post("\(url)\(path)", TestClient.chat(model: "m:fault=429"))
            #expect(reply.status == 429)
            #expect(reply.headers.first(name: "retry-after") == "1")
            #expect(reply.headers.first(name: "retry-after-ms") == "1000")
        }
    }

    @Test func faultsCanBeChosenByHeader() async throws {
        try await self.withSimulator { url in
            let reply = try await TestClient.post("\(url)/v1/chat/completions", TestClient.chat(model: "m"), headers: [("x-simulator-fault", "503")])
            #expect(reply.status == 503)
        }
    }
}

struct SimulatedTurnTests {
    @Test func parallelToolCallsGetDistinctIDsWhateverTheSeed() {
        for text in ["a", "b", "Weather in Paris and AAPL?", "x y z"] {
            var prompt = SimulatorPrompt(model: "m")
            prompt.lastUserText = text
            prompt.tools = [.init(name: "f", properties: []), .init(name: "g", properties: [])]
            let ids = SimulatedTurn(prompt: prompt).toolCalls.map(\.id)
            #expect(ids.count == 2 && Set(ids).count == 2)
        }
    }
}
