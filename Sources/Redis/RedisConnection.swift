public import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// One connection to Redis, spoken to in RESP3. Commands are pipelined: any number may be in flight,
/// and replies are matched to them in order. A reply that does not come within its timeout closes the
/// connection (every later reply would be matched to the wrong command), failing what was in flight.
public final class RedisConnection: Sendable {
    let channel: any Channel
    private let handler: NIOLoopBound<RedisChannelHandler>

    /// The event loop the connection's I/O runs on.
    public var eventLoop: any EventLoop { self.channel.eventLoop }
    public var isActive: Bool { self.channel.isActive }

    private init(channel: any Channel, handler: NIOLoopBound<RedisChannelHandler>) {
        self.channel = channel
        self.handler = handler
    }

    /// Connects, says `HELLO 3` (with `AUTH` when the configuration has a password) and selects the
    /// configuration's database, all within the connect timeout.
    /// - Parameter onPush: out-of-band messages (pub/sub), on the connection's event loop.
    public static func connect(
        _ configuration: RedisConfiguration, on eventLoop: any EventLoop, onPush: (@Sendable (RESPValue) -> Void)? = nil
    ) async throws(RedisError) -> RedisConnection {
        let tls: NIOSSLContext?
        do {
            tls = try configuration.tls.map { try NIOSSLContext(configuration: $0) }
        } catch {
            throw RedisError(.connect, "TLS cannot be set up: \(error)")
        }
        let decoder = configuration.decoder
        let installed = Mutex<NIOLoopBound<RedisChannelHandler>?>(nil)
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(TimeAmount(configuration.connectTimeout))
            .channelInitializer { channel in
                do {
                    if let tls {
                        let serverName = configuration.host.first?.isLetter == true ? configuration.host : nil
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverName))
                    }
                    let handler = RedisChannelHandler(decoder: decoder, onPush: onPush)
                    try channel.pipeline.syncOperations.addHandler(handler)
                    installed.withLock { $0 = NIOLoopBound(handler, eventLoop: channel.eventLoop) }
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: configuration.host, port: configuration.port).get()
        } catch {
            throw RedisError(.connect, "\(configuration.host):\(configuration.port): \(error)")
        }
        guard let handler = installed.withLock({ $0 }) else {
            channel.close(promise: nil)
            throw RedisError(.connect, "the connection closed as it opened")
        }
        let connection = RedisConnection(channel: channel, handler: handler)
        do {
            try await connection.handshake(configuration)
        } catch {
            channel.close(promise: nil)
            let detail = (error as? RedisError).map { "\($0.kind.rawValue) in the handshake: \($0.detail)" } ?? "\(error)"
            throw RedisError(.connect, "\(configuration.host):\(configuration.port): \(detail)")
        }
        return connection
    }

    private func handshake(_ configuration: RedisConfiguration) async throws {
        var hello: [RedisArgument] = ["3"]
        if let password = configuration.password {
            hello += ["AUTH", RedisArgument(configuration.user ?? "default"), RedisArgument(password)]
        }
        hello += ["SETNAME", RedisArgument(configuration.clientName)]
        var commands = [RedisCommand("HELLO", hello)]
        if configuration.database != 0 { commands.append(RedisCommand("SELECT", [RedisArgument(configuration.database)])) }
        for reply in try await self.send(commands, timeout: configuration.connectTimeout) {
            if case .error(let error) = reply { throw error }
        }
    }

    /// Sends `commands` in one write and waits for their replies, in order. An error reply is
    /// returned as `.error`, for the caller to judge.
    /// - Throws: `RedisError`: the connection failed or closed, or the replies took longer than `timeout`.
    public func send(_ commands: [RedisCommand], timeout: Duration) async throws(RedisError) -> [RESPValue] {
        guard !commands.isEmpty else { return [] }
        let promises = (0..<commands.count).map { _ in self.channel.eventLoop.makePromise(of: RESPValue.self) }
        let deadline = NIODeadline.now() + TimeAmount(timeout)
        self.channel.eventLoop.execute { [handler] in
            handler.value.send(commands, promises: promises, deadline: deadline)
        }
        var replies: [RESPValue] = []
        replies.reserveCapacity(promises.count)
        for promise in promises {
            do {
                replies.append(try await promise.futureResult.get())
            } catch let error as RedisError {
                throw error
            } catch {
                throw RedisError(.closed, "\(error)")
            }
        }
        return replies
    }

    /// `send` for a caller on this connection's event loop that does not suspend: the replies come as
    /// a future completed on the loop (a task's `await` would cost a hop to another thread and back).
    public func sendOnLoop(_ commands: [RedisCommand], timeout: Duration) -> EventLoopFuture<[RESPValue]> {
        let loop = self.channel.eventLoop
        loop.preconditionInEventLoop()
        let promises = commands.map { _ in loop.makePromise(of: RESPValue.self) }
        self.handler.value.send(commands, promises: promises, deadline: NIODeadline.now() + TimeAmount(timeout))
        return EventLoopFuture.whenAllSucceed(promises.map(\.futureResult), on: loop)
    }

    /// Writes `commands` whose answers come as pushes, not replies (RESP3's `SUBSCRIBE`).
    public func post(_ commands: [RedisCommand]) {
        self.channel.eventLoop.execute { [handler] in
            handler.value.post(commands)
        }
    }

    /// One command; an error reply is thrown.
    public func send(_ command: RedisCommand, timeout: Duration) async throws -> RESPValue {
        let reply = try await self.send([command], timeout: timeout)[0]
        if case .error(let error) = reply { throw error }
        return reply
    }

    public func close() async {
        try? await self.channel.close()
    }
}

/// Frames replies, matches them to the commands in flight, hands pushes on, and closes the
/// connection when a reply is late or the bytes are not RESP.
final class RedisChannelHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = Never
    typealias OutboundOut = ByteBuffer

    private struct InFlight {
        let promise: EventLoopPromise<RESPValue>
        let deadline: NIODeadline
    }

    private let decoder: RESPDecoder
    private let onPush: (@Sendable (RESPValue) -> Void)?
    private var received: ByteBuffer?
    private var inFlight = CircularBuffer<InFlight>()
    private var context: ChannelHandlerContext?
    /// Checks the oldest command's deadline while any is in flight.
    private var timer: Scheduled<Void>?
    private var flushScheduled = false
    /// Why the connection can take no more commands, once it cannot.
    private var failure: RedisError?

    init(decoder: RESPDecoder, onPush: (@Sendable (RESPValue) -> Void)?) {
        self.decoder = decoder
        self.onPush = onPush
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.fail(RedisError(.closed, "the connection closed"))
    }

    func send(_ commands: [RedisCommand], promises: [EventLoopPromise<RESPValue>], deadline: NIODeadline) {
        guard let context = self.context, self.failure == nil, context.channel.isActive else {
            let error = self.failure ?? RedisError(.closed, "the connection is closed")
            for promise in promises { promise.fail(error) }
            return
        }
        var bytes = context.channel.allocator.buffer(capacity: 64 * commands.count)
        for command in commands { command.encode(into: &bytes) }
        for promise in promises { self.inFlight.append(InFlight(promise: promise, deadline: deadline)) }
        context.write(self.wrapOutboundOut(bytes), promise: nil)
        self.flushAtEndOfTurn(context)
        if self.timer == nil { self.armTimer(context) }
    }

    /// One write for every command this turn of the loop sent (a busy loop admits many requests a
    /// turn): the flush runs once the turn's other work is done.
    private func flushAtEndOfTurn(_ context: ChannelHandlerContext) {
        guard !self.flushScheduled else { return }
        self.flushScheduled = true
        context.eventLoop.assumeIsolated().execute {
            self.flushScheduled = false
            context.flush()
        }
    }

    func post(_ commands: [RedisCommand]) {
        guard let context = self.context, self.failure == nil, context.channel.isActive else { return }
        var bytes = context.channel.allocator.buffer(capacity: 64 * commands.count)
        for command in commands { command.encode(into: &bytes) }
        context.writeAndFlush(self.wrapOutboundOut(bytes), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = self.unwrapInboundIn(data)
        if self.received == nil {
            self.received = bytes
        } else {
            self.received!.writeBuffer(&bytes)
        }
        do {
            while var buffer = self.received, let value = try self.decoder.next(from: &buffer) {
                self.received = buffer.readableBytes > 0 ? buffer : nil
                self.deliver(value, context: context)
            }
        } catch {
            self.fail(RedisError(.protocolViolation, error.detail))
            context.close(promise: nil)
        }
    }

    private func deliver(_ value: RESPValue, context: ChannelHandlerContext) {
        if case .push = value {
            self.onPush?(value)
            return
        }
        guard let first = self.inFlight.popFirst() else {
            self.fail(RedisError(.protocolViolation, "a reply to no command"))
            context.close(promise: nil)
            return
        }
        first.promise.succeed(value)
        if self.inFlight.isEmpty {
            self.timer?.cancel()
            self.timer = nil
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.fail(RedisError(.closed, "the server closed the connection"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.fail(RedisError(.closed, "\(error)"))
        context.close(promise: nil)
    }

    private func armTimer(_ context: ChannelHandlerContext) {
        guard let oldest = self.inFlight.first else { return }
        self.timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: oldest.deadline) { [weak self] in
            guard let self, let context = self.context else { return }
            self.timer = nil
            guard let oldest = self.inFlight.first else { return }
            if oldest.deadline <= .now() {
                self.fail(RedisError(.timeout, "no reply within the command timeout"))
                context.close(promise: nil)
            } else {
                self.armTimer(context)
            }
        }
    }

    private func fail(_ error: RedisError) {
        if self.failure == nil { self.failure = error }
        self.timer?.cancel()
        self.timer = nil
        while let next = self.inFlight.popFirst() { next.promise.fail(error) }
    }
}
