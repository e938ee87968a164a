import Engine
import NIOCore

/// An upstream call of the framework lane over the fast lane's connections: the same per-loop pools,
/// so a provider's `max_connections` bounds both lanes together. The framework lane awaits it; its
/// state lives on the loop of the pool it uses, and every method that touches it runs there.
///
/// `@unchecked Sendable`: its mutable state is only touched on `loop`.
final class LoopCall: UpstreamExchangeReceiver, ConnectionWaiter, @unchecked Sendable {
    private let loop: any EventLoop
    private let pools: LoopUpstreams
    private let endpoint: UpstreamEndpoint
    private let request: ByteBuffer
    private let provider: ProviderSettings
    /// The attempt's timeouts (`AttemptTimer`, the lifecycle's one rule), checked here too, so a call
    /// without a driver (the cache's embedder) is bounded as well.
    private var timer: AttemptTimer
    private var timerCheck: Scheduled<Void>?
    private let progress: (@Sendable (UpstreamCall.Progress) -> Void)?

    private var connection: UpstreamConnection?
    private var retriedOnNewConnection = false
    private var head: ResponseHead?
    private var whole: ByteBuffer?
    private var replied: CheckedContinuation<UpstreamCall.Reply, any Error>?
    /// A successful stream's chunks not yet taken, and its end.
    private var chunks = CircularBuffer<ByteBuffer>()
    private var ended = false
    private var failure: (any Error)?
    private var chunkWaiter: CheckedContinuation<ByteBuffer?, any Error>?
    private var idleCheck: Scheduled<Void>?
    private var over = false

    /// Chunks held before the upstream is read no further (the client reads slower than it writes).
    private static let heldChunks = 16

    private init(
        loop: any EventLoop, pools: LoopUpstreams, endpoint: UpstreamEndpoint, provider: ProviderSettings, request: ByteBuffer, timer: AttemptTimer,
        progress: (@Sendable (UpstreamCall.Progress) -> Void)?
    ) {
        self.loop = loop
        self.pools = pools
        self.endpoint = endpoint
        self.provider = provider
        self.request = request
        self.timer = timer
        self.progress = progress
    }

    /// Sends `request` and waits for the head, then for a successful stream its first chunk (the rest
    /// comes through `next()`), and for anything else the whole body, within the size limits of
    /// `UpstreamCall`. A cancelled task drops the exchange and its connection.
    static func post(
        _ request: ByteBuffer, to endpoint: UpstreamEndpoint, provider: ProviderSettings, on loop: any EventLoop, pools: LoopUpstreams,
        timer: AttemptTimer, progress: (@Sendable (UpstreamCall.Progress) -> Void)?
    ) async throws -> UpstreamCall.Reply {
        let call = LoopCall(loop: loop, pools: pools, endpoint: endpoint, provider: provider, request: request, timer: timer, progress: progress)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                loop.execute { call.start(continuation) }
            }
        } onCancel: {
            loop.execute { call.drop(CancellationError()) }
        }
    }

    /// The pool of `loop`, read on it.
    private var pool: LoopConnectionPool? { self.pools.pool(on: self.loop) }

    private func start(_ continuation: CheckedContinuation<UpstreamCall.Reply, any Error>) {
        // Cancelled before it began (the cancellation's hop to the loop came first).
        guard !self.over else { return continuation.resume(throwing: self.failure ?? CancellationError()) }
        self.replied = continuation
        guard let pool = self.pool else { return self.drop(GatewayError.internalFailure("no upstream connections on the chosen event loop")) }
        self.checkTimer()
        pool.acquire(self.endpoint, for: self)
    }

    /// Until the reply: the attempt's timeout, when it comes, ends the call; else the next check is set.
    private func checkTimer() {
        guard self.replied != nil else { return }
        if let phase = self.timer.expired(at: .now) { return self.drop(GatewayError.upstreamTimeout(self.provider, phase)) }
        let wait = max(self.timer.deadline.at - .now, .milliseconds(1))
        self.timerCheck = self.loop.assumeIsolated().scheduleTask(in: TimeAmount(wait)) { self.checkTimer() }
    }

    var wantsConnection: Bool { self.connection == nil && !self.over }

    func connectionReady(_ result: Result<UpstreamConnection, any Error>) {
        guard !self.over else {
            if case .success(let connection) = result { connection.putBack() }
            return
        }
        switch result {
        case .success(let connection):
            self.connection = connection
            connection.send(self.request, to: self)
        case .failure(let error):
            self.drop(error)
        }
    }

    func upstreamHead(_ head: ResponseHead) {
        self.head = head
        self.timer.answered(status: head.status, at: .now)
        self.progress?(.answered(status: head.status))
    }

    private var relaysStream: Bool { self.timer.relaysStream }

    func upstreamBody(_ part: ByteBuffer) {
        guard let head = self.head, !self.over else { return }
        if self.relaysStream {
            if let replied = self.replied {
                // The first chunk: the attempt has its answer, the rest is the relay's.
                self.replied = nil
                self.timerCheck?.cancel()
                self.chunks.append(part)
                replied.resume(returning: UpstreamCall.Reply(status: head.status, headers: head.failureHeaders, body: nil, stream: UpstreamStream(self)))
                return
            }
            self.chunks.append(part)
            if self.chunks.count >= Self.heldChunks { self.connection?.setReading(false) }
            self.handOver()
            return
        }
        self.timer.read(at: .now)
        self.progress?(.read)
        let limit = (200..<300).contains(head.status) ? UpstreamCall.maxBody : UpstreamCall.maxErrorBody
        var part = part
        guard (self.whole?.readableBytes ?? 0) + part.readableBytes <= limit else {
            return self.drop(GatewayError.upstreamMalformed(provider: self.provider.id, detail: "the answer is larger than \(limit) bytes"))
        }
        if self.whole == nil { self.whole = part } else { self.whole!.writeBuffer(&part) }
    }

    func upstreamReadComplete() {}

    func upstreamEnd() {
        self.connection = nil
        if let replied = self.replied {
            guard let head = self.head else {
                return self.drop(GatewayError.upstreamMalformed(provider: self.provider.id, detail: "the answer ended without a head"))
            }
            self.replied = nil
            self.timerCheck?.cancel()
            self.over = true
            if self.relaysStream {
                replied.resume(throwing: GatewayError.streamInterrupted(provider: self.provider.id, detail: "the stream ended before its first event"))
            } else {
                replied.resume(returning: UpstreamCall.Reply(status: head.status, headers: head.failureHeaders, body: self.whole ?? ByteBuffer(), stream: nil))
            }
            return
        }
        self.ended = true
        self.over = true
        self.handOver()
    }

    func upstreamFailed(_ error: any Error, progress: UpstreamExchangeProgress) {
        if progress == .unsent, let connection = self.connection, connection.wasUsed, !self.retriedOnNewConnection, self.replied != nil {
            // As on the fast lane: an idle connection the upstream closed as we reused it, before it
            // had the whole request, gets the request again on a new one.
            self.retriedOnNewConnection = true
            self.connection = nil
            self.pool?.acquire(self.endpoint, fresh: true, for: self)
            return
        }
        self.connection = nil
        self.drop(error)
    }

    /// Ends the call with `error`: whoever waits hears it, and a connection still carrying the
    /// exchange is closed (it cannot be reused mid-answer).
    private func drop(_ error: any Error) {
        guard !self.over else { return }
        self.over = true
        self.connection?.abandon(from: self)
        self.connection = nil
        self.idleCheck?.cancel()
        self.timerCheck?.cancel()
        if let replied = self.replied {
            self.replied = nil
            replied.resume(throwing: error)
            return
        }
        self.failure = error
        self.handOver()
    }

    // MARK: The stream, after the reply

    /// The next chunk of the stream, nil at its end; a stream silent for the provider's `idle` (while
    /// the relay waits for it) fails with that timeout.
    func next() async throws -> ByteBuffer? {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                self.loop.execute {
                    self.chunkWaiter = continuation
                    self.handOver()
                    guard self.chunkWaiter != nil else { return }
                    self.idleCheck = self.loop.assumeIsolated().scheduleTask(in: TimeAmount(self.provider.timeouts.idle)) {
                        self.drop(GatewayError.upstreamTimeout(self.provider, .idle))
                    }
                }
            }
        } onCancel: {
            self.loop.execute { self.drop(CancellationError()) }
        }
    }

    /// Gives the waiting relay what there is: a chunk, the end, or the failure.
    private func handOver() {
        guard let waiter = self.chunkWaiter else { return }
        if let chunk = self.chunks.popFirst() {
            self.chunkWaiter = nil
            self.idleCheck?.cancel()
            if self.chunks.count < Self.heldChunks / 2 { self.connection?.setReading(true) }
            waiter.resume(returning: chunk)
        } else if let failure = self.failure {
            self.chunkWaiter = nil
            waiter.resume(throwing: failure)
        } else if self.ended {
            self.chunkWaiter = nil
            waiter.resume(returning: nil)
        }
    }

    /// The client of the relay hung up: the stream ends (and its connection with it).
    func hangUp() {
        self.loop.execute { self.drop(ClientHungUp()) }
    }

    /// The relay let go of the stream (its client left, or it ended): the connection is not kept
    /// mid-answer.
    func release() {
        self.loop.execute { self.drop(CancellationError()) }
    }
}
