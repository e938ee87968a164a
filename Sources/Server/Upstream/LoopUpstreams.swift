import Engine
import NIOCore
import NIOHTTP1
import NIOPosix

/// A plain-HTTP upstream's address, parsed once per provider configuration. A changed configuration
/// makes a new endpoint, so a connection opened for the old one is never used for the new one.
final class PlainHTTPEndpoint: Sendable {
    let host: String
    let port: Int
    /// The base URL's path (`/v1`), which every request path is appended to.
    let pathPrefix: String
    /// The `Host` header.
    let authority: String
    let maxConnections: Int
    let connectTimeout: Duration

    /// Nil for what the fast lane leaves to AsyncHTTPClient: `https`, credentials or a query in the
    /// URL, Azure's deployment paths, and configured headers that are not valid HTTP (AsyncHTTPClient
    /// refuses those; the fast lane sends headers unchecked, all of them known good).
    init?(baseURL: String, settings: ProviderSettings) {
        guard baseURL.hasPrefix("http://"), settings.apiVersion == nil, !baseURL.contains("?"), !baseURL.contains("@") else { return nil }
        let forbidden: Set<UInt8> = [0x00, 0x0A, 0x0D]
        let headerText = settings.headers.flatMap { [$0.key, $0.value] } + [settings.apiKey?.exposedValue ?? ""]
        guard headerText.allSatisfy({ !$0.utf8.contains(where: forbidden.contains) }),
            settings.headers.keys.allSatisfy({ name in !name.isEmpty && name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") } })
        else { return nil }
        let rest = baseURL.dropFirst("http://".count)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = String(rest[..<slash])
        guard !authority.isEmpty else { return nil }
        var host = Substring(authority)
        var port = 80
        // The port follows the last colon, unless that colon is inside an IPv6 literal (`[::1]`).
        if let colon = authority.lastIndex(of: ":"), !authority[colon...].contains("]") {
            guard let parsed = Int(authority[authority.index(after: colon)...]), (1...65_535).contains(parsed) else { return nil }
            port = parsed
            host = authority[..<colon]
        }
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        self.host = String(host)
        self.port = port
        self.pathPrefix = String(rest[slash...])
        self.authority = authority
        self.maxConnections = settings.maxConnections
        self.connectTimeout = settings.timeouts.connect
    }
}

/// What an upstream exchange reports, on the connection's event loop.
protocol UpstreamExchangeReceiver: AnyObject {
    func upstreamHead(_ head: HTTPResponseHead)
    func upstreamBody(_ part: ByteBuffer)
    /// The end of one read from the socket: a good moment to flush what was relayed.
    func upstreamReadComplete()
    func upstreamEnd()
    /// The connection failed or closed before the answer ended; `answered` once a head had come.
    func upstreamFailed(_ error: any Error, answered: Bool)
}

/// Someone waiting for an upstream connection.
protocol ConnectionWaiter: AnyObject {
    /// False once it gave up (a timeout, a client that left): a connection is then kept for the next.
    var wantsConnection: Bool { get }
    func connectionReady(_ result: Result<UpstreamConnection, any Error>)
}

/// Upstream connections of one event loop, by endpoint: taken, used and put back on that loop only,
/// so a request costs no lock and no task. The loops share a provider's `max_connections` out
/// exactly (a loop whose share is nothing leaves that provider to AsyncHTTPClient); past its share,
/// a loop's requests wait in line for the next free connection.
final class LoopConnectionPool {
    let loop: any EventLoop
    /// The deadlines of the exchanges this loop's connections carry.
    let deadlines: DeadlineSweep
    /// This loop's place among the group's loops, which share a provider's `max_connections` out.
    private let index: Int
    private let loops: Int
    private var idle: [ObjectIdentifier: [UpstreamConnection]] = [:]
    private var open: [ObjectIdentifier: Int] = [:]
    private var waiters: [ObjectIdentifier: CircularBuffer<any ConnectionWaiter>] = [:]
    private var sweeping = false
    /// How long an unused connection stays open (upstreams close theirs after a while too).
    static let idleLifetime: Duration = .seconds(60)

    init(loop: any EventLoop, index: Int, of loops: Int) {
        self.loop = loop
        self.index = index
        self.loops = loops
        self.deadlines = DeadlineSweep(loop: loop)
    }

    /// This loop's share of the endpoint's `max_connections`: the shares add up to it exactly.
    func limit(_ endpoint: PlainHTTPEndpoint) -> Int {
        endpoint.maxConnections / self.loops + (self.index < endpoint.maxConnections % self.loops ? 1 : 0)
    }

    /// Hands `waiter` a connection to `endpoint`: an idle one (the most recently used, the least likely
    /// to have been closed by the upstream) unless `fresh`, else a new one, else the next one freed.
    func acquire(_ endpoint: PlainHTTPEndpoint, fresh: Bool = false, for waiter: any ConnectionWaiter) {
        let key = ObjectIdentifier(endpoint)
        if !fresh, let connection = self.idle[key]?.popLast() {
            waiter.connectionReady(.success(connection))
        } else if self.open[key, default: 0] < self.limit(endpoint) {
            self.connect(endpoint, for: waiter)
        } else {
            self.waiters[key, default: []].append(waiter)
        }
    }

    private func nextWaiter(_ key: ObjectIdentifier) -> (any ConnectionWaiter)? {
        while let waiter = self.waiters[key]?.popFirst() {
            if waiter.wantsConnection { return waiter }
        }
        return nil
    }

    private func connect(_ endpoint: PlainHTTPEndpoint, for waiter: any ConnectionWaiter) {
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
            }
        }
    }

    /// A place came free: the next in line gets a new connection.
    private func connectNextWaiter(_ endpoint: PlainHTTPEndpoint) {
        let key = ObjectIdentifier(endpoint)
        guard self.open[key, default: 0] < self.limit(endpoint), let waiter = self.nextWaiter(key) else { return }
        self.connect(endpoint, for: waiter)
    }

    /// Opens a connection (counted at once, so concurrent opens respect the limit).
    private func connect(_ endpoint: PlainHTTPEndpoint, then: @escaping (Result<UpstreamConnection, any Error>) -> Void) {
        let key = ObjectIdentifier(endpoint)
        self.open[key, default: 0] += 1
        ClientBootstrap(group: self.loop)
            .connectTimeout(TimeAmount(endpoint.connectTimeout))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers(enableOutboundHeaderValidation: false)
                    try channel.pipeline.syncOperations.addHandler(UpstreamConnection(endpoint: endpoint))
                }
            }
            .connect(host: endpoint.host, port: endpoint.port)
            .assumeIsolated()
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    do {
                        let connection = try channel.pipeline.syncOperations.handler(type: UpstreamConnection.self)
                        connection.pool = self
                        then(.success(connection))
                    } catch {
                        self.open[key, default: 1] -= 1
                        channel.close(promise: nil)
                        then(.failure(error))
                    }
                case .failure(let error):
                    self.open[key, default: 1] -= 1
                    then(.failure(error))
                }
            }
    }

    fileprivate func release(_ connection: UpstreamConnection) {
        let key = ObjectIdentifier(connection.endpoint)
        if let waiter = self.nextWaiter(key) {
            waiter.connectionReady(.success(connection))
            return
        }
        connection.idleSince = .now
        self.idle[key, default: []].append(connection)
        if !self.sweeping { self.scheduleSweep() }
    }

    /// A connection closed: it leaves the pool and frees its place.
    fileprivate func forget(_ connection: UpstreamConnection) {
        let key = ObjectIdentifier(connection.endpoint)
        self.idle[key]?.removeAll { $0 === connection }
        self.open[key, default: 1] -= 1
        self.connectNextWaiter(connection.endpoint)
    }

    /// Every 10 s while connections are idle, those unused for `idleLifetime` are closed.
    private func scheduleSweep() {
        self.sweeping = true
        self.loop.assumeIsolated().scheduleTask(in: .seconds(10)) {
            let cutoff = ContinuousClock.now - Self.idleLifetime
            for connections in self.idle.values {
                for connection in connections where connection.idleSince < cutoff { connection.close() }
            }
            self.sweeping = false
            if self.idle.values.contains(where: { !$0.isEmpty }) { self.scheduleSweep() }
        }
    }
}

/// One keep-alive HTTP/1.1 connection to an upstream, carrying one exchange at a time.
final class UpstreamConnection: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    let endpoint: PlainHTTPEndpoint
    fileprivate weak var pool: LoopConnectionPool?
    fileprivate var idleSince = ContinuousClock.now
    private var context: ChannelHandlerContext?
    private var receiver: (any UpstreamExchangeReceiver)?
    private var answered = false
    private var keepAlive = true
    /// Whether an earlier exchange used it: such a connection may have been closed by the upstream
    /// meanwhile, which is worth one retry on a new connection.
    private(set) var wasUsed = false

    init(endpoint: PlainHTTPEndpoint) {
        self.endpoint = endpoint
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    /// Sends one request; the answer goes to `receiver`, and the connection back to its pool after a
    /// complete keep-alive answer.
    func send(_ head: HTTPRequestHead, body: ByteBuffer, to receiver: any UpstreamExchangeReceiver) {
        guard let context = self.context else {
            receiver.upstreamFailed(ChannelError.ioOnClosedChannel, answered: false)
            return
        }
        self.receiver = receiver
        self.answered = false
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        context.write(self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
    }

    /// Holds or resumes reading the answer (a relayed stream whose client reads slowly).
    func setReading(_ reading: Bool) {
        guard let channel = self.context?.channel else { return }
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
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            // 1xx answers are informational; the real head follows.
            guard head.status.code >= 200 else { return }
            self.answered = true
            self.keepAlive = head.isKeepAlive
            self.receiver?.upstreamHead(head)
        case .body(let part):
            self.receiver?.upstreamBody(part)
        case .end:
            let receiver = self.receiver
            self.receiver = nil
            self.wasUsed = true
            if self.keepAlive, context.channel.isActive, receiver != nil {
                self.setReading(true)
                self.pool?.release(self)
            } else {
                context.close(promise: nil)
            }
            receiver?.upstreamEnd()
        }
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
        self.fail(ChannelError.eof)
    }

    private func fail(_ error: any Error) {
        guard let receiver = self.receiver else { return }
        self.receiver = nil
        receiver.upstreamFailed(error, answered: self.answered)
    }
}

/// Something with a deadline on the loop's sweep.
protocol DeadlineHolder: AnyObject {
    /// Its place in the sweep's list while watched (kept by the sweep).
    var sweepSlot: Int? { get set }
    /// Called on each tick: fires what is due at `now`.
    func sweep(now: ContinuousClock.Instant)
}

/// The deadlines of one loop's fast-lane exchanges, checked by one timer every `tick` while any are
/// watched, rather than a scheduled task each: scheduling and cancelling NIO tasks cost 13 % of a
/// fast-lane request's CPU. Deadlines fire up to one tick late.
final class DeadlineSweep {
    static let tick: Duration = .milliseconds(20)
    private let loop: any EventLoop
    private var holders: [any DeadlineHolder] = []
    private var ticking = false

    init(loop: any EventLoop) {
        self.loop = loop
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
        self.loop.assumeIsolated().scheduleTask(in: TimeAmount(Self.tick)) {
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

    init(group: any EventLoopGroup) {
        var pools: [ObjectIdentifier: NIOLoopBoundBox<LoopConnectionPool>] = [:]
        let loops = Array(group.makeIterator())
        for (index, loop) in loops.enumerated() {
            pools[ObjectIdentifier(loop)] = .makeBoxSendingValue(LoopConnectionPool(loop: loop, index: index, of: loops.count), eventLoop: loop)
        }
        self.pools = pools
    }

    /// The pool of `loop`, which the caller runs on; nil for a loop of another group.
    func pool(on loop: any EventLoop) -> LoopConnectionPool? {
        self.pools[ObjectIdentifier(loop)]?.value
    }
}
