import Foundation
import NIOCore
import Testing
@testable import Engine

struct OpenAIRequestPatchTests {
    private func patch(_ text: String) throws(GatewayError) -> OpenAIRequestPatch {
        try OpenAIRequestPatch(body: ByteBuffer(string: text))
    }

    @Test func rewritesOnlyTheModelAndKeepsEveryOtherByte() throws {
        let body = #"{"model" : "fast",  "messages":[{"role":"user","content":"hi"}], "vendor_extra":{"x":[1,2]}, "temperature":0.25}"#
        let patch = try self.patch(body)
        #expect(patch.clientModel == "fast")
        #expect(!patch.isStreaming)
        let upstream = patch.upstreamBody(model: "gpt-4o-2024-08-06").string
        #expect(upstream == body.replacingOccurrences(of: #""fast""#, with: #""gpt-4o-2024-08-06""#))
    }

    @Test func asksForUsageOnStreamsThatDidNotAsk() throws {
        let patch = try self.patch(#"{"stream":true,"model":"m","messages":[]}"#)
        #expect(patch.isStreaming)
        #expect(!patch.clientWantsStreamUsage)
        #expect(patch.upstreamBody(model: "up").string == #"{"stream_options":{"include_usage":true},"stream":true,"model":"up","messages":[]}"#)
        #expect(patch.upstreamBody(model: "up", requestStreamUsage: false).string == #"{"stream":true,"model":"up","messages":[]}"#)
    }

    @Test func rebuildsStreamOptionsKeepingItsOtherMembers() throws {
        let patch = try self.patch(#"{"model":"m","stream":true,"stream_options":{"include_usage":false,"include_obfuscation":false}}"#)
        #expect(!patch.clientWantsStreamUsage)
        #expect(patch.upstreamBody(model: "m").string == #"{"model":"m","stream":true,"stream_options":{"include_usage":true,"include_obfuscation":false}}"#)
    }

    @Test func leavesStreamOptionsAloneWhenUsageIsAlreadyAsked() throws {
        let body = #"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#
        let patch = try self.patch(body)
        #expect(patch.clientWantsStreamUsage)
        #expect(patch.upstreamBody(model: "m").string == body)
    }

    @Test func replacesANullStreamOptions() throws {
        let patch = try self.patch(#"{"model":"m","stream":true,"stream_options":null}"#)
        #expect(patch.upstreamBody(model: "m").string == #"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#)
    }

    @Test func nonStreamingRequestsAreNotGivenStreamOptions() throws {
        let body = #"{"model":"m","stream":false}"#
        #expect(try self.patch(body).upstreamBody(model: "m").string == body)
    }

    @Test func decodesAnEscapedModelAndWritesTheNewOneEscaped() throws {
        let patch = try self.patch(#"{"model":"gpt\u002d4o"}"#)
        #expect(patch.clientModel == "gpt-4o")
        #expect(patch.upstreamBody(model: "a\"b").string == #"{"model":"a\"b"}"#)
    }

    @Test(arguments: [
        (#"{"messages":[]}"#, "invalid_request", "model"),
        (#"{"model":4}"#, "invalid_request", "model"),
        (#"{"model":""}"#, "invalid_request", "model"),
        (#"{"model":"a","model":"b"}"#, "invalid_request", "model"),
        (#"{"model":"a","stream":"yes"}"#, "invalid_request", "stream"),
        (#"{"model":"a","stream":true,"stream_options":[]}"#, "invalid_request", "stream_options"),
        (#"{"model":"a","stream":true,"stream_options":{"include_usage":1}}"#, "invalid_request", "stream_options.include_usage"),
        (#"{"model":"a",}"#, "malformed_request", nil),
        (#"not json"#, "malformed_request", nil),
        (#"["model"]"#, "malformed_request", nil),
    ] as [(String, String, String?)])
    func rejectsBadRequestsWithA400NamingTheParameter(_ body: String, _ label: String, _ param: String?) {
        #expect {
            try self.patch(body)
        } throws: { error in
            guard let error = error as? GatewayError else { return false }
            return error.httpStatus == 400 && error.metricLabel == label && error.param == param
        }
    }
}
