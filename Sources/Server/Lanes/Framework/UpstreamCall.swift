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
        let status: Int
        /// The answer's fields (a successful answer's may be left out: only a failure's are read).
        let headers: HTTPHeaders
        let body: ByteBuffer?
        /// A successful stream, its first chunk already read (so a stream that dies before its first
        /// byte can still fail over).
        let stream: UpstreamStream?

        var isSuccess: Bool { (200..<300).contains(self.status) }

        /// The error to answer with, for a failed reply, in canonical terms: the provider's own
        /// message where it gave one, and never its 401/403 (those are about the gateway's key).
        func error(provider: String) -> GatewayError {
            let status = self.status
            if status == 401 || status == 403 { return .upstreamCredentials(provider: provider, status: status) }
            let retryAfter = self.retryAfter.map { UntrustedNumber.wholeSeconds($0) }
            return UpstreamCall.errorMessage(self.body).map {
                GatewayError.upstreamReported(provider: provider, status: status, message: $0, retryAfterSeconds: retryAfter)
            } ?? .upstreamStatus(provider: provider, status: status, retryAfterSeconds: retryAfter)
        }

        /// `retry-after-ms` or `retry-after`, whichever the provider sent.
        var retryAfter: Duration? {
            RetryAfter.parse(milliseconds: self.headers.first(name: "retry-after-ms"), header: self.headers.first(name: "retry-after"))
        }

        /// The upstream's `retry-after` (and `retry-after-ms`, if it sent one) passed on as read, within
        /// `UntrustedNumber.longestRetryAfter`: a client's SDK sleeps on what it is told.
        func passRetryAfter(into headers: inout HTTPFields) {
            guard let rest = self.retryAfter else { return }
            headers[.retryAfter] = String(UntrustedNumber.wholeSeconds(rest))
            if self.headers.first(name: "retry-after-ms") != nil { headers[.retryAfterMillis] = String(rest.milliseconds) }
        }

        /// The failure in the retry matrix's terms.
        func failure(provider: String) -> AttemptFailure {
            AttemptFailure.classify(self.error(provider: provider), upstreamCode: UpstreamCall.errorCode(self.body), retryAfter: self.retryAfter)
        }
    }

    /// How far an attempt's answer got, as it comes: what its lifecycle times it by.
    enum Progress: Sendable {
        case answered(status: Int)
        case read
    }

    /// Sends `body` and waits for the head, then for a successful stream its first chunk, and for
    /// anything else the whole body, within the attempt's timeouts (`timer`, the lifecycle's rule);
    /// a client hang-up (which cancels this task) cancels the wait. An upstream the fast lane reaches
    /// is called over its connections (`LoopCall`: one pool, one `max_connections`, for both lanes);
    /// the others (plain HTTP behind `HTTP_PROXY`, URLs the fast lane does not send) through
    /// AsyncHTTPClient.
    /// - Parameters:
    ///   - timer: the attempt's timeouts, from its send.
    ///   - progress: told of the head and of each part of a whole answer.
    ///   - traceparent: the client's W3C trace context, passed on.
    /// - Throws: `GatewayError` naming the timeout or transport failure.
    static func post(
        _ body: ByteBuffer,
        path: String,
        model: String,
        to upstream: UpstreamPool.Upstream,
        requestID: String,
        timer: AttemptTimer,
        traceparent: String? = nil,
        eventLoop: (any EventLoop)? = nil,
        progress: (@Sendable (Progress) -> Void)? = nil
    ) async throws -> Reply {
        var request = HTTPClientRequest(url: upstream.url(path, model: model))
        request.method = .POST
        request.headers = upstream.headers
        request.headers.replaceOrAdd(name: "x-request-id", value: requestID)
        if let traceparent { request.headers.replaceOrAdd(name: "traceparent", value: traceparent) }
        request.body = .bytes(body)

        var timer = timer
        let streaming = timer.streaming
        if case .success(let endpoint) = upstream.fastLane {
            let bytes = endpoint.request(path: path, model: model, body: body, requestID: requestID, traceparent: traceparent)
            do {
                let loop = upstream.loops.loop(for: endpoint, preferring: eventLoop)
                return try await LoopCall.post(bytes, to: endpoint, provider: upstream.settings, on: loop, pools: upstream.loops, timer: timer, progress: progress)
            } catch {
                throw GatewayError.from(error, provider: upstream.settings, streaming: streaming)
            }
        }
        // The clients' read timeouts are the silence rules (`first_byte` for whole answers, `idle` for streams).
        let client = streaming ? upstream.streamingClient : upstream.blockingClient
        do {
            let headWait = max(timer.deadline.at - ContinuousClock.now, .milliseconds(1))
            let response = try await client.execute(request, timeout: .milliseconds(headWait.milliseconds))
            let status = Int(response.status.code)
            timer.answered(status: status, at: .now)
            progress?(.answered(status: status))
            let isSuccess = (200..<300).contains(status)
            if timer.relaysStream {
                let stream = UpstreamStream(response.body.makeAsyncIterator())
                guard try await stream.peek() else {
                    throw GatewayError.streamInterrupted(provider: upstream.settings.id, detail: "the stream ended before its first event")
                }
                return Reply(status: status, headers: response.headers, body: nil, stream: stream)
            }
            let limit = isSuccess ? Self.maxBody : Self.maxErrorBody
            var whole = ByteBuffer()
            for try await var part in response.body {
                guard whole.readableBytes + part.readableBytes <= limit else {
                    throw GatewayError.upstreamMalformed(provider: upstream.settings.id, detail: "the answer is larger than \(limit) bytes")
                }
                whole.writeBuffer(&part)
                timer.read(at: .now)
                progress?(.read)
                if let phase = timer.expired(at: .now) { throw GatewayError.upstreamTimeout(upstream.settings, phase) }
            }
            return Reply(status: status, headers: response.headers, body: whole, stream: nil)
        } catch {
            throw GatewayError.from(error, provider: upstream.settings, streaming: streaming)
        }
    }

    /// `error.code` (OpenAI) or `error.type` of an error body: what tells `insufficient_quota` or
    /// `context_length_exceeded` from other 429s and 400s.
    static func errorCode(_ body: ByteBuffer?) -> String? {
        guard let body, let error = JSONValue.parse(body)?["error"] else { return nil }
        return error["code"]?.string ?? error["type"]?.string
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
        self.openAIErrorWholeResponse(context, overhead: overhead).response
    }

    func openAIErrorWholeResponse(_ context: ExchangeContext, overhead: Duration) -> WholeResponse {
        let status = self.status
        let error = self.error(provider: context.target.provider)
        guard let body = self.body, UpstreamCall.isErrorEnvelope(body), status != 401, status != 403 else {
            error.log(requestID: context.requestID, logger: context.logger)
            context.answeredWithFailure(error, status: error.httpStatus)
            return error.openAIWholeResponse(requestID: context.requestID, overhead: overhead)
        }
        context.answeredWithFailure(error, status: status)
        context.logger.warning(
            "upstream answered with an error",
            metadata: ["gw.request_id": "\(context.requestID)", "gw.provider": "\(context.target.provider)", "gw.upstream_status": "\(status)"]
        )
        var headers: HTTPFields = [.contentType: "application/json"]
        headers.setRoutingHeaders(context.outcome)
        context.setAccountingHeaders(&headers, usage: nil)
        self.passRetryAfter(into: &headers)
        headers.setGatewayHeaders(requestID: context.requestID, overhead: overhead)
        return WholeResponse(status: HTTPResponse.Status(code: status), headers: headers, body: body)
    }
}

extension UpstreamCall {
    /// Relays a successful upstream stream through `makeRelay`'s relay (translating it, or passing a
    /// Responses stream on event for event), failures included: the relay ends the client's stream
    /// with its dialect's error event. The relay is made inside the body writer: it is per-request
    /// state, not shared.
    static func relayedStream<Relay: ClientStreamRelay>(
        _ stream: UpstreamStream,
        _ context: ExchangeContext,
        relay makeRelay: @escaping @Sendable () -> Relay
    ) -> ResponseBody {
        ResponseBody { writer in
            context.watchHangUp(during: stream)
            defer { context.relayEnded() }
            var relay = makeRelay()
            var kept = false
            while !relay.isFinished {
                let bytes: ByteBuffer
                do {
                    if let chunk = try await stream.next() {
                        bytes = ContinuousClock.now > context.deadline
                            ? relay.bytes(failingWith: .upstreamTimeout(context.upstream.settings, .total)) : relay.bytes(for: chunk)
                    } else {
                        bytes = relay.bytesAtEnd()
                    }
                } catch is ClientHungUp {
                    context.clientLeft(usage: relay.usage)
                    throw ClientHungUp()
                } catch {
                    bytes = relay.bytes(failingWith: GatewayError.from(error, provider: context.upstream.settings, streaming: true))
                }
                // A kept answer is stored before its last event goes out: a client that follows up at once finds it.
                if !kept, let answer = relay.recordedAnswer {
                    kept = true
                    await context.keep(answer)
                }
                do {
                    if bytes.readableBytes > 0 { try await writer.write(bytes) }
                } catch {
                    // The client hung up: what the stream used so far is still accounted.
                    context.clientLeft(usage: relay.usage)
                    throw error
                }
            }
            context.streamEnded(relay)
            try await writer.finish(nil)
        }
    }

    /// A request about what an upstream keeps (a Responses API `GET`, `DELETE` or `cancel`), over its
    /// AsyncHTTPClient connections within its `first_byte` timeout, the answer read whole.
    static func ask(_ method: HTTPRequest.Method, path: String, body: ByteBuffer?, of upstream: UpstreamPool.Upstream, requestID: String) async throws -> Reply {
        var request = HTTPClientRequest(url: upstream.url(path, model: ""))
        request.method = HTTPMethod(rawValue: method.rawValue)
        request.headers = upstream.headers
        request.headers.replaceOrAdd(name: "x-request-id", value: requestID)
        if let body { request.body = .bytes(body) }
        do {
            let response = try await upstream.blockingClient.execute(request, timeout: .milliseconds(upstream.settings.timeouts.firstByte.milliseconds))
            let status = Int(response.status.code)
            let body = try await response.body.collect(upTo: (200..<300).contains(status) ? Self.maxBody : Self.maxErrorBody)
            return Reply(status: status, headers: response.headers, body: body, stream: nil)
        } catch {
            throw GatewayError.from(error, provider: upstream.settings, streaming: false)
        }
    }
}

/// A successful upstream stream, handed from the attempt that opened it to the relay that drains it.
///
/// `@unchecked Sendable`: exactly one task uses it at a time (the attempt reads the first chunk, then
/// the response body writer reads the rest), which the compiler cannot see across that hand-over.
final class UpstreamStream: @unchecked Sendable {
    private enum Source {
        case client(HTTPClientResponse.Body.AsyncIterator)
        /// Over the fast lane's connections (its first chunk already waits there).
        case loop(LoopCall)
    }

    private var source: Source
    private var pending: ByteBuffer?

    init(_ iterator: HTTPClientResponse.Body.AsyncIterator) {
        self.source = .client(iterator)
    }

    init(_ call: LoopCall) {
        self.source = .loop(call)
    }

    /// Reads the first chunk ahead; false when the stream ended at once.
    func peek() async throws -> Bool {
        self.pending = try await self.next()
        return self.pending != nil
    }

    func next() async throws -> ByteBuffer? {
        if let pending = self.pending {
            self.pending = nil
            return pending
        }
        switch self.source {
        case .client(var iterator):
            let chunk = try await iterator.next()
            self.source = .client(iterator)
            return chunk
        case .loop(let call):
            return try await call.next()
        }
    }

    /// The client hung up while the stream is relayed: a wait for the next chunk ends with
    /// `ClientHungUp` (an upstream reached through AsyncHTTPClient ends at its next chunk instead).
    func clientHungUp() {
        if case .loop(let call) = self.source { call.hangUp() }
    }

    deinit {
        // A relay that let go before the end (its client left) leaves no connection mid-answer.
        if case .loop(let call) = self.source { call.release() }
    }
}
