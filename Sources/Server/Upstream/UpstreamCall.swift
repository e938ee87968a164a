import AsyncHTTPClient
import Engine
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1

/// One exchange with an upstream, shared by every endpoint and dialect.
enum UpstreamCall {
    /// Error bodies are read whole to pass them on; this bounds what a broken upstream can make us hold.
    static let maxErrorBody = 1 << 20
    static let maxBody = 64 << 20

    /// What came back: the head, and the whole body unless it is a successful stream to relay.
    struct Reply: Sendable {
        let response: HTTPClientResponse
        let body: ByteBuffer?

        var isSuccess: Bool { (200..<300).contains(Int(self.response.status.code)) }

        /// The error to answer with, for a failed reply, in canonical terms: the provider's own
        /// message where it gave one, and never its 401/403 (those are about the gateway's key).
        func error(provider: String) -> GatewayError {
            let status = Int(self.response.status.code)
            if status == 401 || status == 403 { return .upstreamCredentials(provider: provider, status: status) }
            let retryAfter = self.response.headers.first(name: "retry-after").flatMap { Int($0) }
            return UpstreamCall.errorMessage(self.body).map {
                GatewayError.upstreamReported(provider: provider, status: status, message: $0, retryAfterSeconds: retryAfter)
            } ?? .upstreamStatus(provider: provider, status: status, retryAfterSeconds: retryAfter)
        }
    }

    /// Sends `body` and waits for the head; for a non-streaming call (or any error status) it also reads
    /// the body, so a client hang-up (which cancels this task) cancels the whole wait.
    /// - Throws: `GatewayError` naming the timeout or transport failure.
    static func post(
        _ body: ByteBuffer,
        path: String,
        model: String,
        to upstream: UpstreamPool.Upstream,
        requestID: String,
        streaming: Bool,
        sent: ContinuousClock.Instant
    ) async throws -> Reply {
        var request = HTTPClientRequest(url: upstream.url(path, model: model))
        request.method = .POST
        request.headers = upstream.headers
        request.headers.replaceOrAdd(name: "x-request-id", value: requestID)
        request.body = .bytes(body)

        let timeouts = upstream.settings.timeouts
        let client = streaming ? upstream.streamingClient : upstream.blockingClient
        do {
            let headWait = timeouts.firstByte < timeouts.total ? timeouts.firstByte : timeouts.total
            let response = try await client.execute(request, timeout: .milliseconds(headWait.milliseconds))
            let isSuccess = (200..<300).contains(Int(response.status.code))
            if streaming && isSuccess {
                return Reply(response: response, body: nil)
            }
            let body = try await response.body.collect(upTo: isSuccess ? Self.maxBody : Self.maxErrorBody)
            guard ContinuousClock.now < sent + timeouts.total else {
                throw GatewayError.upstreamTimeout(provider: upstream.settings.id, phase: "total", limit: DurationText.format(timeouts.total))
            }
            return Reply(response: response, body: body)
        } catch {
            throw GatewayError.from(error, provider: upstream.settings, streaming: streaming)
        }
    }

    /// The message of an error body: `error.message` in OpenAI's and Anthropic's envelopes (both nest
    /// it so), or Ollama's plain `{"error": "…"}`.
    static func errorMessage(_ body: ByteBuffer?) -> String? {
        guard let body else { return nil }
        let json = JSONValue.parse(body)
        if let text = json?["error"]?.string { return text }
        guard let error = json?["error"], case .object = error else { return nil }
        return error["message"]?.string ?? "error"
    }

    /// Whether a body is in OpenAI's (or Anthropic's) error envelope, which same-dialect clients can parse as sent.
    static func isErrorEnvelope(_ body: ByteBuffer) -> Bool {
        body.withUnsafeReadableBytes { bytes in
            (try? JSONScanner.topLevelMembers(of: bytes))?.contains { $0.key == "error" && $0.kind == .object } ?? false
        }
    }
}

extension UpstreamCall.Reply {
    /// An upstream error in the OpenAI envelope passes through as it is, with its status (a 400 about a
    /// parameter is the caller's to fix, and the SDKs parse it); anything else becomes our own 502.
    func openAIErrorResponse(_ context: ExchangeContext, overhead: Duration) -> Response {
        let status = Int(self.response.status.code)
        let retryAfter = self.response.headers.first(name: "retry-after")
        guard let body = self.body, UpstreamCall.isErrorEnvelope(body), status != 401, status != 403 else {
            let error = self.error(provider: context.target.provider)
            error.log(requestID: context.requestID, logger: context.logger)
            return error.openAIResponse(requestID: context.requestID, overhead: overhead)
        }
        context.logger.warning(
            "upstream answered with an error",
            metadata: ["gw.request_id": "\(context.requestID)", "gw.provider": "\(context.target.provider)", "gw.upstream_status": "\(status)"]
        )
        var headers: HTTPFields = [.contentType: "application/json"]
        headers[.switchyardProvider] = context.target.provider
        if let retryAfter { headers[.retryAfter] = retryAfter }
        if let retryAfterMillis = self.response.headers.first(name: "retry-after-ms") { headers[.retryAfterMillis] = retryAfterMillis }
        headers.setGatewayHeaders(requestID: context.requestID, overhead: overhead)
        return Response(status: HTTPResponse.Status(code: status), headers: headers, body: ResponseBody(byteBuffer: body))
    }
}

extension UpstreamCall {
    /// Relays a successful upstream stream in another dialect: upstream bytes → canonical events →
    /// client text, failures included (the encoder ends the stream with the dialect's error event).
    /// The decoder and encoder are made inside the body writer: they are per-request state, not shared.
    static func translatedStream<Encoder: StreamEncoder>(
        _ response: HTTPClientResponse,
        _ context: ExchangeContext,
        decoder makeDecoder: @escaping @Sendable () -> any StreamDecoder,
        encoder makeEncoder: @escaping @Sendable () -> Encoder
    ) -> ResponseBody {
        let totalDeadline = context.sent + context.upstream.settings.timeouts.total
        return ResponseBody { writer in
            var decoder = makeDecoder()
            var encoder = makeEncoder()
            var iterator = response.body.makeAsyncIterator()
            var failure: GatewayError?
            var usage: Usage?
            while !encoder.isFinished {
                var events: [StreamEvent]
                do {
                    if let chunk = try await iterator.next() {
                        events = ContinuousClock.now > totalDeadline
                            ? [.failure(.upstreamTimeout(provider: context.target.provider, phase: "total", limit: DurationText.format(context.upstream.settings.timeouts.total)))]
                            : decoder.feed(chunk)
                    } else {
                        events = decoder.finish()
                    }
                } catch {
                    events = [.failure(GatewayError.from(error, provider: context.upstream.settings, streaming: true))]
                }
                for event in events {
                    switch event {
                    case .failure(let error): failure = error
                    case .usage(let reported): usage = reported
                    default: continue
                    }
                }
                let text = encoder.encode(events)
                if !text.isEmpty { try await writer.write(ByteBuffer(string: text)) }
            }
            if let failure {
                context.logStreamFailure(failure.metricLabel)
            } else {
                context.logCompletion(usage: usage, finishReason: nil, streamed: true)
            }
            try await writer.finish(nil)
        }
    }
}
