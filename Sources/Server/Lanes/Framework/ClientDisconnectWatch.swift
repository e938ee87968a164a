import Engine
import Hummingbird
import NIOCore
import Synchronization

/// Notices a client that hangs up while its request waits on an upstream, so the upstream request is
/// cancelled instead of running (and being billed) to the end for nobody.
///
/// Hummingbird does not cancel a handler when its connection closes, and a handler that is waiting
/// writes nothing, so it cannot find out by itself. `ClientDisconnectHandler` sits in each connection's
/// pipeline and reports the end of the client's input; a request registers what to cancel meanwhile.
/// As nginx does by default, a half-close of the client's side counts as hanging up: HTTP/1.1 clients
/// do not half-close while they still want the answer.
final class ClientDisconnectWatch: Sendable {
    private enum Entry {
        case waiting(@Sendable () -> Void)
        /// The client left before (or between) requests; the entry goes when the connection closes.
        case gone
    }

    private let entries = Mutex<[ObjectIdentifier: Entry]>([:])

    /// Runs `operation` in a child task that is cancelled if the client of `connection` hangs up.
    /// - Throws: `GatewayError.clientDisconnected` when that happened, else what `operation` throws.
    func cancellingOnHangUp<Value: Sendable>(
        connection: ObjectIdentifier,
        _ operation: @escaping @Sendable () async throws -> Value
    ) async throws -> Value {
        let task = Task { try await operation() }
        let clientStillThere = self.entries.withLock { entries in
            if case .gone = entries[connection] { return false }
            entries[connection] = .waiting { task.cancel() }
            return true
        }
        if !clientStillThere { task.cancel() }
        defer {
            self.entries.withLock { entries in
                if case .waiting = entries[connection] { entries[connection] = nil }
            }
        }
        let result = await withTaskCancellationHandler { await task.result } onCancel: { task.cancel() }
        if task.isCancelled, case .failure = result { throw GatewayError.clientDisconnected }
        return try result.get()
    }

    /// Calls `action` if the client of `connection` hangs up before `clear`: for a relayed stream,
    /// whose wait on the upstream the client cannot interrupt otherwise. Called at once when the
    /// client is gone already.
    func onHangUp(connection: ObjectIdentifier, _ action: @escaping @Sendable () -> Void) {
        let gone = self.entries.withLock { entries in
            if case .gone = entries[connection] { return true }
            entries[connection] = .waiting(action)
            return false
        }
        if gone { action() }
    }

    /// Ends what `onHangUp` set up.
    func clear(connection: ObjectIdentifier) {
        self.entries.withLock { entries in
            if case .waiting = entries[connection] { entries[connection] = nil }
        }
    }

    fileprivate func clientHungUp(_ connection: ObjectIdentifier) {
        let cancel: (@Sendable () -> Void)? = self.entries.withLock { entries in
            guard case .waiting(let cancel) = entries[connection] else {
                entries[connection] = .gone
                return nil
            }
            entries[connection] = .gone
            return cancel
        }
        cancel?()
    }

    fileprivate func connectionClosed(_ connection: ObjectIdentifier) {
        let cancel: (@Sendable () -> Void)? = self.entries.withLock { entries in
            defer { entries[connection] = nil }
            guard case .waiting(let cancel) = entries[connection] else { return nil }
            return cancel
        }
        cancel?()
    }

    func makeHandler() -> ClientDisconnectHandler {
        ClientDisconnectHandler(watch: self)
    }
}

/// A relayed stream ended because its client hung up (`ClientDisconnectWatch.onHangUp`).
struct ClientHungUp: Error {}

/// Reports the end of a client's input and the close of its connection to the watch.
final class ClientDisconnectHandler: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = NIOAny

    private let watch: ClientDisconnectWatch

    init(watch: ClientDisconnectWatch) {
        self.watch = watch
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .some(.inputClosed) = event as? ChannelEvent {
            self.watch.clientHungUp(ObjectIdentifier(context.channel))
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.watch.connectionClosed(ObjectIdentifier(context.channel))
        context.fireChannelInactive()
    }
}

/// The request context of the public API: Hummingbird's basics plus which connection it came on.
struct GatewayRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let connection: ObjectIdentifier
    /// The client connection's event loop: where its upstream calls go when that loop has a share of
    /// the provider's connections (connections stay warm per client, as on the fast lane).
    let eventLoop: any EventLoop

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.connection = ObjectIdentifier(source.channel)
        self.eventLoop = source.channel.eventLoop
    }
}
