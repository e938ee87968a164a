import Engine
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// What an upstream exchange reports, on the connection's event loop.
protocol UpstreamExchangeReceiver: AnyObject {
    func upstreamHead(_ head: ResponseHead)
    func upstreamBody(_ part: ByteBuffer)
    /// The end of one read from the socket: a good moment to flush what was relayed.
    func upstreamReadComplete()
    func upstreamEnd()
    /// The connection failed or closed before the answer ended, the exchange having got as far as `progress`.
    func upstreamFailed(_ error: any Error, progress: UpstreamExchangeProgress)
}

/// How far an exchange got before its connection failed: what decides whether its request may be
/// sent again (a POST must not be repeated once the upstream may have acted on it).
enum UpstreamExchangeProgress {
    /// The request was not written whole (the connection was found closed before or while writing
    /// it): the upstream cannot have acted on it.
    case unsent
    /// The request was written, and no answer came: the upstream may have acted on it.
    case sent
    /// An answer's head came.
    case answered
}

/// Someone waiting for an upstream connection.
protocol ConnectionWaiter: AnyObject {
    /// False once it gave up (a timeout, a client that left): a connection is then kept for the next.
    var wantsConnection: Bool { get }
    func connectionReady(_ result: Result<UpstreamConnection, any Error>)
}

/// Upstream connections of one event loop, by endpoint: taken, used and put back on that loop only,
/// so a request costs no lock and no task. The loops share a provider's `max_connections` out
/// exactly (a loop whose share is nothing leaves that provider to the framework lane); past its share,
/// a loop's requests wait in line for the next free connection.
final class LoopConnectionPool {
    let loop: any EventLoop
    /// The deadlines of the exchanges this loop's connections carry.
    let deadlines: DeadlineSweep
    /// The client connections served on this loop, each watched for its `server` client limits for as
    /// long as it is open: limits of seconds, so a coarser tick.
    let clientDeadlines: DeadlineSweep
    /// The `Date` of this loop's fast-lane answers.
    let date = HTTPDateCache()
    /// This loop's place among the group's loops, which share a provider's `max_connections` out.
    private let index: Int
    private let loops: Int
    /// This loop's connections to each endpoint, by the endpoint's identity.
    private var endpoints: [ObjectIdentifier: EndpointConnections] = [:]
    private var sweeping = false
    /// Channels whose writes wait for the end of this turn of the loop.
    private var unflushed: [ChannelHandlerContext] = []
    /// Made once: a closure made per turn would be an allocation per turn.
    private var flushUnflushed: (() -> Void)?
    /// How long an unused connection stays open (upstreams close theirs after a while too).
    static let idleLifetime: Duration = .seconds(60)

    /// One endpoint's connections on this loop: a class, so taking and putting back one changes it
    /// in place (no copy of a dictionary's value).
    private final class EndpointConnections {
        var idle: [UpstreamConnection] = []
        /// Open or being opened.
        var open = 0
        var waiters = CircularBuffer<any ConnectionWaiter>()

        /// Nothing open, idle or waiting: the entry can go (an endpoint a reload replaced leaves no trace,
        /// and its identity, once free, can never name a live entry).
        var isUnused: Bool { self.open == 0 && self.idle.isEmpty && self.waiters.isEmpty }

        /// The next waiter that still wants a connection.
        func nextWaiter() -> (any ConnectionWaiter)? {
            while let waiter = self.waiters.popFirst() {
                if waiter.wantsConnection { return waiter }
            }
            return nil
        }
    }

    init(loop: any EventLoop, index: Int, of loops: Int) {
        self.loop = loop
        self.index = index
        self.loops = loops
        self.deadlines = DeadlineSweep(loop: loop)
        self.clientDeadlines = DeadlineSweep(loop: loop, tick: .milliseconds(100))
        self.flushUnflushed = { [unowned self] in
            let contexts = self.unflushed
            self.unflushed.removeAll(keepingCapacity: true)
            for context in contexts { context.flush() }
        }
    }

    /// Flushes `context` once the loop has handled every event of this turn, with the other channels
    /// written meanwhile: the peers (the clients, the upstreams) are then woken by the first of a turn's
    /// writes and find the rest waiting, where a flush per write wakes a sleeping peer each time (on a
    /// virtual machine an inter-processor interrupt per write, the largest single cost of a proxied
    /// request at high load). Within a turn nothing waits on anything slower than the turn itself.
    func flushAtEndOfTurn(_ context: ChannelHandlerContext) {
        self.unflushed.append(context)
        guard self.unflushed.count == 1, let flush = self.flushUnflushed else { return }
        self.loop.assumeIsolated().execute(flush)
    }

    /// This loop's share of the endpoint's `max_connections`: the shares add up to it exactly.
    func limit(_ endpoint: UpstreamEndpoint) -> Int {
        endpoint.maxConnections / self.loops + (self.index < endpoint.maxConnections % self.loops ? 1 : 0)
    }

    private func connections(to endpoint: UpstreamEndpoint) -> EndpointConnections {
        let key = ObjectIdentifier(endpoint)
        if let known = self.endpoints[key] { return known }
        let made = EndpointConnections()
        self.endpoints[key] = made
        return made
    }

    /// Hands `waiter` a connection to `endpoint`: an idle one (the most recently used, the least likely
    /// to have been closed by the upstream) unless `fresh`, else a new one, else the next one freed.
    func acquire(_ endpoint: UpstreamEndpoint, fresh: Bool = false, for waiter: any ConnectionWaiter) {
        let connections = self.connections(to: endpoint)
        if !fresh, let connection = connections.idle.popLast() {
            waiter.connectionReady(.success(connection))
        } else if connections.open < self.limit(endpoint) {
            self.connect(endpoint, for: waiter)
        } else {
            connections.waiters.append(waiter)
        }
    }

    private func connect(_ endpoint: UpstreamEndpoint, for waiter: any ConnectionWaiter) {
        self.connect(endpoint) { result in
            switch result {
            case .success(let connection) where !waiter.wantsConnection:
                self.release(connection)
            case .success:
                waiter.connectionReady(result)
            case .failure:
                waiter.connectionReady(result)
                // The next in line tries too (and fails over as fast, if it fails).
                self.connectNextWaiter(endpoint)
                self.dropIfUnused(endpoint)
            }
        }
    }

    /// A place came free: the next in line gets a new connection.
    private func connectNextWaiter(_ endpoint: UpstreamEndpoint) {
        let connections = self.connections(to: endpoint)
        guard connections.open < self.limit(endpoint), let waiter = connections.nextWaiter() else { return }
        self.connect(endpoint, for: waiter)
    }

    /// Opens a connection (counted at once, so concurrent opens respect the limit): directly, or
    /// through the egress proxy's `CONNECT` tunnel; then TLS for an `https` upstream.
    private func connect(_ endpoint: UpstreamEndpoint, then: @escaping (Result<UpstreamConnection, any Error>) -> Void) {
        let connections = self.connections(to: endpoint)
        connections.open += 1
        let tunnel = endpoint.tunnel
        let connected = ClientBootstrap(group: self.loop)
            .connectTimeout(TimeAmount(endpoint.connectTimeout))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let tunnel else { return try Self.addUpstreamHandlers(endpoint, to: channel) }
                    let opener = TunnelOpener(
                        authority: endpoint.authorityForTunnel, credentials: tunnel.credentials, timeout: endpoint.connectTimeout,
                        promise: channel.eventLoop.makePromise()
                    )
                    try channel.pipeline.syncOperations.addHandler(opener)
                }
            }
            .connect(host: tunnel?.host ?? endpoint.host, port: tunnel?.port ?? endpoint.port)
        let ready = tunnel == nil ? connected : connected.flatMap { channel in
            guard let opener = try? channel.pipeline.syncOperations.handler(type: TunnelOpener.self) else {
                return channel.eventLoop.makeFailedFuture(UpstreamTunnelError(detail: "the tunnel was not opened"))
            }
            return opener.established.futureResult.flatMapThrowing {
                try Self.addUpstreamHandlers(endpoint, to: channel)
                return channel
            }
        }
        ready.assumeIsolated().whenComplete { result in
            switch result {
            case .success(let channel):
                do {
                    let connection = try channel.pipeline.syncOperations.handler(type: UpstreamConnection.self)
                    connection.pool = self
                    then(.success(connection))
                } catch {
                    connections.open -= 1
                    channel.close(promise: nil)
                    then(.failure(error))
                }
            case .failure(let error):
                connections.open -= 1
                connected.whenSuccess { $0.close(promise: nil) }
                then(.failure(error))
            }
        }
    }

    /// TLS (for an `https` upstream) and the connection's own handler.
    private static func addUpstreamHandlers(_ endpoint: UpstreamEndpoint, to channel: any Channel) throws {
        if let tls = endpoint.tls {
            try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: endpoint.serverName), position: .first)
        }
        try channel.pipeline.syncOperations.addHandler(UpstreamConnection(endpoint: endpoint))
    }

    fileprivate func release(_ connection: UpstreamConnection) {
        let connections = self.connections(to: connection.endpoint)
        if let waiter = connections.nextWaiter() {
            waiter.connectionReady(.success(connection))
            return
        }
        connection.idleSince = .now
        connections.idle.append(connection)
        if !self.sweeping { self.scheduleSweep() }
    }

    /// A connection closed: it leaves the pool and frees its place.
    fileprivate func forget(_ connection: UpstreamConnection) {
        let connections = self.connections(to: connection.endpoint)
        connections.idle.removeAll { $0 === connection }
        connections.open -= 1
        self.connectNextWaiter(connection.endpoint)
        self.dropIfUnused(connection.endpoint)
    }

    private func dropIfUnused(_ endpoint: UpstreamEndpoint) {
        let key = ObjectIdentifier(endpoint)
        if self.endpoints[key]?.isUnused == true { self.endpoints[key] = nil }
    }

    /// Every 10 s while connections are idle, those unused for `idleLifetime` are closed.
    private func scheduleSweep() {
        self.sweeping = true
        self.loop.assumeIsolated().scheduleTask(in: .seconds(10)) {
            let cutoff = ContinuousClock.now - Self.idleLifetime
            for connections in self.endpoints.values {
                for connection in connections.idle where connection.idleSince < cutoff { connection.close() }
            }
            self.sweeping = false
            if self.endpoints.values.contains(where: { !$0.idle.isEmpty }) { self.scheduleSweep() }
        }
    }
}

/// One keep-alive HTTP/1.1 connection to an upstream, carrying one exchange at a time. It frames the
/// answers from the bytes itself (`ResponseHead`, `ChunkedBodyDecoder`): the body reaches the exchange
/// as slices of what was read.
final class UpstreamConnection: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum Reading {
        /// No exchange, or its head has not come whole: `searched` bytes of it hold no blank line.
        case head(searched: Int)
        case length(remaining: Int)
        case chunked(ChunkedBodyDecoder)
        case untilClose
    }

    let endpoint: UpstreamEndpoint
    fileprivate weak var pool: LoopConnectionPool?
    fileprivate var idleSince = ContinuousClock.now
    private var context: ChannelHandlerContext?
    private var receiver: (any UpstreamExchangeReceiver)?
    private var reading = Reading.head(searched: 0)
    /// Read but not yet framed.
    private var unframed: ByteBuffer?
    private var answered = false
    /// Whether the current request has been written whole to the socket.
    private var requestWritten = false
    /// Counts the requests sent, so a write finishing late is not taken for a later request's.
    private var requestsSent = 0
    private var keepAlive = true
    private var readingHeld = false
    /// Whether an earlier exchange used it: such a connection may have been closed by the upstream
    /// meanwhile, which is worth one retry on a new connection when the request was not written whole.
    private(set) var wasUsed = false

    init(endpoint: UpstreamEndpoint) {
        self.endpoint = endpoint
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    /// Sends one request (head and body, serialized); the answer goes to `receiver`, and the
    /// connection back to its pool after a complete keep-alive answer.
    func send(_ request: ByteBuffer, to receiver: any UpstreamExchangeReceiver) {
        guard let context = self.context else {
            receiver.upstreamFailed(ChannelError.ioOnClosedChannel, progress: .unsent)
            return
        }
        self.receiver = receiver
        self.answered = false
        self.requestWritten = false
        self.requestsSent &+= 1
        let number = self.requestsSent
        self.reading = .head(searched: 0)
        // A closed connection fails the write before it reports its end (NIO fails pending writes
        // first), so a failure with the request unwritten is one the upstream never saw.
        let written = context.eventLoop.makePromise(of: Void.self)
        written.futureResult.assumeIsolated().whenSuccess {
            if self.requestsSent == number { self.requestWritten = true }
        }
        context.write(self.wrapOutboundOut(request), promise: written)
        self.pool?.flushAtEndOfTurn(context)
    }

    /// Holds or resumes reading the answer (a relayed stream whose client reads slowly).
    func setReading(_ reading: Bool) {
        guard let channel = self.context?.channel, self.readingHeld == reading else { return }
        self.readingHeld = !reading
        try? channel.syncOptions?.setOption(.autoRead, value: reading)
    }

    /// Back to the pool unused (it came for an attempt that had given up meanwhile).
    func putBack() {
        if self.receiver == nil, self.context != nil { self.pool?.release(self) }
    }

    /// Drops `receiver`'s exchange (a timeout, a client that left): the connection cannot be reused.
    /// Nothing happens once that answer has ended: the connection is whole, and may already carry
    /// another exchange.
    func abandon(from receiver: any UpstreamExchangeReceiver) {
        guard let current = self.receiver, current === receiver else { return }
        self.receiver = nil
        self.close()
    }

    fileprivate func close() {
        self.context?.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var part = self.unwrapInboundIn(data)
        guard let receiver = self.receiver else {
            // Nothing was asked: an idle connection that speaks is not one to reuse.
            context.close(promise: nil)
            return
        }
        if self.unframed != nil {
            self.unframed!.writeBuffer(&part)
            part = self.unframed!
            self.unframed = nil
        }
        do throws(UpstreamFramingError) {
            while true {
                switch self.reading {
                case .head(let searched):
                    guard let (head, length) = try ResponseHead.parse(part, searchedUpTo: searched) else {
                        self.reading = .head(searched: part.readableBytes)
                        self.unframed = part.slice()
                        return
                    }
                    part.moveReaderIndex(forwardBy: length)
                    // 1xx answers are informational; the real head follows.
                    if head.status < 200 {
                        self.reading = .head(searched: 0)
                        continue
                    }
                    self.answered = true
                    self.keepAlive = head.keepAlive
                    switch head.body {
                    case .none: return self.ended(receiver, leftover: part, context: context, head: head)
                    case .length(let length): self.reading = .length(remaining: length)
                    case .chunked: self.reading = .chunked(ChunkedBodyDecoder())
                    case .untilClose: self.reading = .untilClose
                    }
                    receiver.upstreamHead(head)
                    // The receiver may have dropped the exchange (and closed the connection) at its head.
                    guard self.receiver === receiver else { return }
                case .length(let remaining):
                    let taken = min(remaining, part.readableBytes)
                    guard taken > 0 else { return }
                    let slice = part.readSlice(length: taken)!
                    if taken == remaining { return self.ended(receiver, leftover: part, context: context, last: slice) }
                    self.reading = .length(remaining: remaining - taken)
                    receiver.upstreamBody(slice)
                    return
                case .chunked(var decoder):
                    try decoder.decode(&part) { piece in
                        if self.receiver === receiver { receiver.upstreamBody(piece) }
                    }
                    guard self.receiver === receiver else { return }
                    self.reading = .chunked(decoder)
                    if decoder.isDone { return self.ended(receiver, leftover: part, context: context) }
                    // Only the unread bytes are kept: what was handed on is not held (nor copied) again.
                    if part.readableBytes > 0 { self.unframed = part.slice() }
                    return
                case .untilClose:
                    if part.readableBytes > 0 { receiver.upstreamBody(part) }
                    return
                }
            }
        } catch {
            self.fail(error)
            context.close(promise: nil)
        }
    }

    /// The answer is complete: the connection goes back to its pool when it can carry another request
    /// (nothing after the answer, keep-alive), and the receiver hears of the end last, so it may
    /// start its next request on this very connection.
    private func ended(
        _ receiver: any UpstreamExchangeReceiver, leftover: ByteBuffer, context: ChannelHandlerContext, head: ResponseHead? = nil, last: ByteBuffer? = nil
    ) {
        if let head { receiver.upstreamHead(head) }
        if let last, self.receiver === receiver { receiver.upstreamBody(last) }
        guard self.receiver === receiver else { return }
        self.receiver = nil
        self.wasUsed = true
        self.reading = .head(searched: 0)
        if self.keepAlive, leftover.readableBytes == 0, context.channel.isActive {
            self.setReading(true)
            self.pool?.release(self)
        } else {
            context.close(promise: nil)
        }
        receiver.upstreamEnd()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.receiver?.upstreamReadComplete()
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.context = nil
        self.pool?.forget(self)
        self.pool = nil
        // An answer delimited by the connection's close ends here, whole.
        if case .untilClose = self.reading, let receiver = self.receiver {
            self.receiver = nil
            receiver.upstreamEnd()
            return
        }
        self.fail(ChannelError.eof)
    }

    private func fail(_ error: any Error) {
        guard let receiver = self.receiver else { return }
        self.receiver = nil
        receiver.upstreamFailed(error, progress: self.answered ? .answered : self.requestWritten ? .sent : .unsent)
    }
}

/// Something with a deadline on the loop's sweep.
protocol DeadlineHolder: AnyObject {
    /// Its place in the sweep's list while watched (kept by the sweep).
    var sweepSlot: Int? { get set }
    /// Called on each tick: fires what is due at `now`.
    func sweep(now: ContinuousClock.Instant)
}

/// The deadlines of one loop's fast-lane exchanges (or client connections), checked by one timer
/// every `tick` while any are watched, rather than a scheduled task each: scheduling and cancelling
/// NIO tasks cost 13 % of a fast-lane request's CPU. Deadlines fire up to one tick late.
final class DeadlineSweep {
    private let tick: Duration
    private let loop: any EventLoop
    private var holders: [any DeadlineHolder] = []
    private var ticking = false

    init(loop: any EventLoop, tick: Duration = .milliseconds(20)) {
        self.loop = loop
        self.tick = tick
    }

    func watch(_ holder: any DeadlineHolder) {
        guard holder.sweepSlot == nil else { return }
        holder.sweepSlot = self.holders.count
        self.holders.append(holder)
        if !self.ticking { self.scheduleTick() }
    }

    func unwatch(_ holder: any DeadlineHolder) {
        guard let slot = holder.sweepSlot else { return }
        holder.sweepSlot = nil
        let last = self.holders.removeLast()
        if slot < self.holders.count {
            self.holders[slot] = last
            last.sweepSlot = slot
        }
    }

    /// One tick at a time: a deadline that fires and sets the next one (through `watch`) finds the
    /// sweep still ticking, and this tick schedules the next.
    private func scheduleTick() {
        self.ticking = true
        self.loop.assumeIsolated().scheduleTask(in: TimeAmount(self.tick)) {
            let now = ContinuousClock.now
            // A copy: holders leave the list as their deadlines fire.
            for holder in self.holders { holder.sweep(now: now) }
            if self.holders.isEmpty {
                self.ticking = false
            } else {
                self.scheduleTick()
            }
        }
    }
}

/// Every event loop's connection pool, made once for the group the gateway serves on.
final class LoopUpstreams: Sendable {
    private let pools: [ObjectIdentifier: NIOLoopBoundBox<LoopConnectionPool>]
    /// The loops in the order their pools were numbered (the first ones get a provider's spare connections).
    private let loops: [any EventLoop]
    private let indices: [ObjectIdentifier: Int]
    private let turn = Atomic<UInt>(0)

    init(group: any EventLoopGroup) {
        var pools: [ObjectIdentifier: NIOLoopBoundBox<LoopConnectionPool>] = [:]
        let loops = Array(group.makeIterator())
        for (index, loop) in loops.enumerated() {
            pools[ObjectIdentifier(loop)] = .makeBoxSendingValue(LoopConnectionPool(loop: loop, index: index, of: loops.count), eventLoop: loop)
        }
        self.pools = pools
        self.loops = loops
        self.indices = Dictionary(uniqueKeysWithValues: loops.enumerated().map { (ObjectIdentifier($0.element), $0.offset) })
    }

    /// Where a call of the framework lane to `endpoint` goes: `preferred` (its client's loop) when that
    /// loop has a share of the endpoint's `max_connections`, else the loops that have one in turn (a loop
    /// without a share would wait for a connection forever).
    func loop(for endpoint: UpstreamEndpoint, preferring preferred: (any EventLoop)?) -> any EventLoop {
        let sharing = max(1, min(endpoint.maxConnections, self.loops.count))
        if let preferred, let index = self.indices[ObjectIdentifier(preferred)], index < sharing { return preferred }
        return self.loops[Int(self.turn.wrappingAdd(1, ordering: .relaxed).oldValue % UInt(sharing))]
    }

    /// The pool of `loop`, which the caller runs on; nil for a loop of another group.
    func pool(on loop: any EventLoop) -> LoopConnectionPool? {
        self.pools[ObjectIdentifier(loop)]?.value
    }
}
