import Foundation
import NIOCore
import Testing
@testable import Engine

/// What passing the Responses API through needs of the engine: the relay that forwards a recorded
/// stream byte for byte while reading it, the envelope read of every request, the plan that sends a
/// follow-up back to the provider keeping its response, and which providers serve the API.
struct ResponsesPassThroughTests {
    private func relayed(_ text: String, pieces: Int, records: Bool = true) -> (bytes: String, relay: ResponsesStreamRelay) {
        var relay = ResponsesStreamRelay(provider: "p", records: records)
        var output = ByteBuffer()
        let bytes = Array(text.utf8)
        for start in stride(from: 0, to: bytes.count, by: pieces) {
            var forward = relay.feed(ByteBuffer(bytes: bytes[start..<min(bytes.count, start + pieces)]))
            output.writeBuffer(&forward)
        }
        var last = relay.finish()
        output.writeBuffer(&last)
        return (String(buffer: output), relay)
    }

    @Test(arguments: [1, 7, 64, 100_000])
    func aRecordedStreamPassesByteForByteWithItsUsageRead(pieces: Int) throws {
        let recorded = try Fixture.text("openai-responses-stream-text.sse")
        let (bytes, relay) = self.relayed(recorded, pieces: pieces)
        #expect(bytes == recorded)
        #expect(relay.failure == nil && relay.isComplete && relay.isFinished)
        #expect(relay.usage == Usage(inputTokens: 10, outputTokens: 62))
        #expect(relay.responseID == "resp_6859a4ad7d3c81999e9e02548c91e2a8077218073e9990d3")
        #expect(relay.recordedAnswer?.content.first == .text(
            "I am OpenAI's language model, known as GPT-3. I'm an artificial intelligence designed to comprehend text inputs and generate text outputs based on those inputs. I'm trained on a wide range of internet text, but I don't have personal experiences because I am a machine learning model."
        ))
        let calls = self.relayed(try Fixture.text("openai-responses-stream-function-call.sse"), pieces: pieces)
        #expect(calls.relay.recordedAnswer?.stopReason == .toolUse && calls.relay.failure == nil)
    }

    @Test func aCutStreamGetsAnErrorEventAfterTheLastSequenceNumber() throws {
        let recorded = try Fixture.text("openai-responses-stream-text.sse")
        let cut = String(recorded[..<recorded.range(of: "event: response.completed")!.lowerBound])
        let (bytes, relay) = self.relayed(cut, pieces: 5)
        #expect(bytes.hasPrefix(cut))
        let added = String(bytes.dropFirst(cut.count))
        #expect(added.hasPrefix("event: error\ndata: "), "\(added)")
        let error = try JSONValue.parse(String(added.split(separator: "\n")[1].dropFirst(6)))
        #expect(error["sequence_number"]?.int == 67 && error["error"]?["code"]?.string != nil)
        #expect(relay.failure != nil && !relay.isComplete && relay.recordedAnswer == nil)
    }

    @Test func anUpstreamErrorEventPassesAsItCameAndFailsTheStream() throws {
        let lines = try Fixture.text("openai-responses-stream-error-insufficient-quota.data.jsonl").split(separator: "\n").map { "data: \($0)\n\n" }.joined()
        let (bytes, relay) = self.relayed(lines, pieces: 11)
        #expect(bytes == lines, "nothing of ours after the upstream's own error")
        #expect(relay.failure?.message.contains("quota") == true)
    }

    @Test func aLastEventWithoutItsBlankLineStillCounts() throws {
        let recorded = try Fixture.text("openai-responses-stream-text.sse")
        let trimmed = String(recorded.dropLast(2))
        let (bytes, relay) = self.relayed(trimmed, pieces: 3)
        #expect(bytes == trimmed + "\n\n" && relay.isComplete && relay.failure == nil)
    }

    @Test func anOversizedEventEndsTheStreamWithAnError() {
        var relay = ResponsesStreamRelay(provider: "p", records: false, maxEventBytes: 64)
        let forward = String(buffer: relay.feed(ByteBuffer(string: "data: {\"type\":\"response.output_text.delta\",\"delta\":\"" + String(repeating: "x", count: 200))))
        #expect(forward.hasPrefix("event: error") && relay.isFinished && relay.failure != nil)
        #expect(relay.feed(ByteBuffer(string: "more")).readableBytes == 0)
    }

    @Test func theEnvelopeIsReadAndBoundedForEveryRequest() throws {
        let envelope = try ResponsesRequestDecoder.envelope(JSONValue.parse(#"{"store":false,"previous_response_id":"resp_1","max_output_tokens":500}"#))
        #expect(envelope == .init(store: false, previousResponseID: "resp_1", maxTokens: 500))
        #expect(try ResponsesRequestDecoder.envelope(JSONValue.parse("{}")) == .init(store: true))
        for bad in [#"{"background":true}"#, #"{"store":"no"}"#, #"{"previous_response_id":7}"#, #"{"max_output_tokens":1e300}"#, #"{"max_output_tokens":-1}"#] {
            #expect(throws: GatewayError.self, "\(bad)") { try ResponsesRequestDecoder.envelope(JSONValue.parse(bad)) }
        }
    }

    @Test func aFollowUpGoesOnlyToTheProviderKeepingItsResponse() throws {
        var route = RouteSettings(alias: "r", targets: [
            RouteTarget(provider: "a", model: "m"), RouteTarget(provider: "b", model: "m"), RouteTarget(provider: "b", model: "n"),
        ])
        route.fallbacks = ["spare"]
        let spare = RouteSettings(alias: "spare", targets: [RouteTarget(provider: "c", model: "m")])
        let table = RouteTable([route, spare])
        var health = RoutingHealth(config: BalancerTests.config([route, spare]))
        var random = SplitMix(seed: 7)
        let request = RequestFeatures(model: "r", streaming: false)
        for _ in 0..<50 {
            let plan = try table.plan(request, heldBy: "b", model: "n", responseID: "resp_1", health: health, at: .now, using: &random)
            #expect(plan.candidates.map { $0.target } == [RouteTarget(provider: "b", model: "n"), RouteTarget(provider: "b", model: "m")])
        }
        let fallback = try table.plan(request, heldBy: "c", model: "m", responseID: "resp_1", health: health, at: .now, using: &random)
        #expect(fallback.candidates.map { $0.provider } == ["c"])
        #expect(throws: GatewayError.previousResponseElsewhere("resp_1", provider: "z", route: "r")) {
            try table.plan(request, heldBy: "z", model: "m", responseID: "resp_1", health: health, at: .now, using: &random)
        }
        _ = health.drain("b")
        #expect(throws: GatewayError.self) { try table.plan(request, heldBy: "b", model: "n", responseID: "resp_1", health: health, at: .now, using: &random) }
    }

    @Test func whichProvidersServeTheResponsesAPI() throws {
        let config = try ConfigLoader.load(yaml: """
            providers:
              openai: { kind: openai, api_key: k }
              plain: { kind: openai, api_key: k, responses_api: false }
              azure: { kind: azure-openai, base_url: "https://x.openai.azure.com/openai/v1", api_key: k }
              classic: { kind: azure-openai, base_url: "https://x.openai.azure.com/openai", api_key: k, api_version: "2024-10-21" }
              vendor: { kind: openai-compatible, base_url: "https://v.example/v1" }
              vllm: { kind: vllm, responses_api: true }
              sim: { kind: simulator }
              sim-claude: { kind: simulator, dialect: anthropic }
            """, source: "t", environment: [:])
        let speaking = config.providers.filter(\.speaksResponses).map(\.id).sorted()
        #expect(speaking == ["azure", "openai", "sim", "vllm"])
        for yaml in [
            "providers:\n  c: { kind: anthropic, api_key: k, responses_api: true }\n",
            "providers:\n  a: { kind: azure-openai, base_url: \"https://x\", api_key: k, api_version: v, responses_api: true }\n",
            "providers:\n  o: { kind: openai, api_key: k, responses_api: maybe }\n",
        ] {
            #expect(throws: ConfigError.self, "\(yaml)") { try ConfigLoader.load(yaml: yaml, source: "t", environment: [:]) }
        }
    }

    @Test func routingRulesSeeTheToolsAndImagesOfAResponsesRequest() {
        var features = RequestFeatures(model: "m", streaming: false)
        features.inspect(body: ByteBuffer(string: #"{"model":"m","input":[{"role":"user","content":[{"type":"input_image","file_id":"file_1"}]}],"tools":[{"type":"web_search_preview"}]}"#))
        #expect(features.hasImages && features.hasTools)
        var plain = RequestFeatures(model: "m", streaming: false)
        plain.inspect(body: ByteBuffer(string: #"{"model":"m","input":"Describe an image_file."}"#))
        #expect(!plain.hasImages && !plain.hasTools)
    }
}
