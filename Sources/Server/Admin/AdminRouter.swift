#if canImport(Glibc)
import Glibc
#endif
import Engine
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOPosix

/// The admin API's request context: who is calling. On the Unix socket that is the peer's uid
/// (SO_PEERCRED), on the optional TCP listener the holder of the admin token.
struct AdminRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }

    /// `uid:1000` for a Unix-socket peer, `token` for the TCP listener.
    func actor() async -> String {
        guard self.channel.localAddress?.protocol == .unix else { return "token" }
        #if os(Linux)
        if let provider = self.channel as? any SocketOptionProvider,
            let credentials: PeerCredentials = try? await provider.unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET), name: PeerCredentials.option).get()
        {
            return "uid:\(credentials.uid)"
        }
        #endif
        return "unix:unknown"
    }
}

/// Linux's `struct ucred`, which Glibc's module does not export (it needs `_GNU_SOURCE`).
struct PeerCredentials {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0

    /// `SO_PEERCRED`, 17 on every Linux architecture that uses the generic socket options.
    static let option = SocketOptionName(17)
}

/// `/v1/...` of the admin API: read the state, act on it. Every action is written to the audit log.
enum AdminRouter {
    static let eventBatchInterval = Duration.milliseconds(100)

    static func build(_ control: GatewayControl, database: (any GatewayDatabase)?, token: Secret?) -> Router<AdminRequestContext> {
        let router = Router(context: AdminRequestContext.self)
        router.add(middleware: AdminErrorMiddleware(token: token))
        router.get("/v1/snapshot") { _, _ in
            try Self.json(await control.snapshot())
        }
        router.get("/v1/tenants") { _, _ in
            try Self.json(await control.tenants(control.state.routing.config))
        }
        router.get("/v1/tenants/{name}") { _, context in
            try Self.json(try await control.tenant(context.parameters.get("name") ?? ""))
        }
        router.get("/v1/keys") { _, _ in
            try Self.json(control.keys())
        }
        router.post("/v1/keys") { request, context in
            let body = try await request.body.collect(upTo: 1 << 16)
            let keyRequest: KeyRequest
            do {
                keyRequest = try AdminJSON.decoder().decode(KeyRequest.self, from: Data(body.readableBytesView))
            } catch {
                throw AdminProblem(status: 400, code: "invalid_body", message: "expected {\"tenant\": …, \"name\", \"rpm\", \"tpm\", \"budgetDailyUsd\", \"models\": […], \"expiresInSeconds\"}: \(error)")
            }
            let actor = await context.actor()
            do {
                let created = try await control.createKey(keyRequest)
                try? await database?.audit(actor: actor, action: "key_create", target: created.view.id, detail: "tenant \(keyRequest.tenant), \(created.view.limits)", ok: true)
                return try Self.json(created, status: .created)
            } catch {
                try? await database?.audit(actor: actor, action: "key_create", target: keyRequest.tenant, detail: "\(error)", ok: false)
                throw error
            }
        }
        router.delete("/v1/keys/{id}") { _, context in
            let id = context.parameters.get("id") ?? ""
            let actor = await context.actor()
            do {
                let ack = try await control.revokeKey(id)
                try? await database?.audit(actor: actor, action: "key_revoke", target: id, detail: ack.message, ok: true)
                return try Self.json(ack)
            } catch {
                try? await database?.audit(actor: actor, action: "key_revoke", target: id, detail: "\(error)", ok: false)
                throw error
            }
        }
        router.get("/v1/usage") { request, _ in
            let since = request.uri.queryParameters["since"].flatMap { Double(String($0)) } ?? 0
            let tenant = request.uri.queryParameters["tenant"].map(String.init)
            return try Self.json(try await control.usage(tenant: tenant, since: since))
        }
        router.get("/v1/events") { _, _ in
            let hub = control.state.events
            let (id, subscription) = hub.subscribe()
            return Response(
                status: .ok,
                headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
                body: ResponseBody { writer in
                    defer { hub.unsubscribe(id) }
                    try await writer.write(ByteBuffer(string: ": switchyard events\n\n"))
                    var quiet = Duration.zero
                    // Batches every 100 ms: one write for many events, and no wake-up per request.
                    while let batch = subscription.take() {
                        if batch.isEmpty {
                            try await Task.sleep(for: Self.eventBatchInterval)
                            quiet += Self.eventBatchInterval
                            // A comment now and then, so a reader that left is noticed even when nothing happens.
                            if quiet >= .seconds(15) {
                                quiet = .zero
                                try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                            }
                            continue
                        }
                        quiet = .zero
                        try await writer.write(ByteBuffer(string: batch.map(\.serverSentEvent).joined()))
                    }
                    try await writer.finish(nil)
                }
            )
        }
        router.post("/v1/providers/{id}/drain") { _, context in
            let id = context.parameters.get("id") ?? ""
            return try await Self.act(context, database: database, action: "drain", target: id) { (actor: String) throws(AdminProblem) -> AdminAck in
                guard control.drain(id, by: actor) else { throw Self.unknownProvider(id, control) }
                return AdminAck(message: "provider \(id) drained: no new requests; in-flight ones finish")
            }
        }
        router.post("/v1/providers/{id}/undrain") { _, context in
            let id = context.parameters.get("id") ?? ""
            return try await Self.act(context, database: database, action: "undrain", target: id) { (actor: String) throws(AdminProblem) -> AdminAck in
                guard control.undrain(id, by: actor) else { throw Self.unknownProvider(id, control) }
                return AdminAck(message: "provider \(id) back in rotation")
            }
        }
        for (verb, open) in [("open", true), ("reset", false)] {
            router.post("/v1/providers/{id}/breaker/\(verb)") { request, context in
                let id = context.parameters.get("id") ?? ""
                let model = request.uri.queryParameters["model"].map(String.init)
                let target = id + (model.map { "/" + $0 } ?? "")
                return try await Self.act(context, database: database, action: "breaker_\(verb)", target: target) { (actor: String) throws(AdminProblem) -> AdminAck in
                    try control.setBreakers(id, model: model, open: open, by: actor)
                }
            }
        }
        router.put("/v1/routes/{alias}") { request, context in
            let alias = context.parameters.get("alias") ?? ""
            let body = try await request.body.collect(upTo: 1 << 20)
            return try await Self.act(context, database: database, action: "route_edit", target: alias, detail: String(buffer: body)) { (actor: String) throws(AdminProblem) -> AdminAck in
                let edit: RouteEdit
                do {
                    edit = try AdminJSON.decoder().decode(RouteEdit.self, from: Data(body.readableBytesView))
                } catch {
                    throw AdminProblem(status: 400, code: "invalid_body", message: "expected {\"strategy\": …, \"targets\": [{\"provider\", \"model\", \"weight\", \"priority\"}]}: \(error)")
                }
                return try control.editRoute(alias, edit, by: actor)
            }
        }
        router.post("/v1/config/reload") { _, context in
            try await Self.act(context, database: database, action: "reload", target: nil) { (actor: String) throws(AdminProblem) -> ReloadReport in
                try control.reload(by: actor)
            }
        }
        router.post("/v1/cache/flush") { request, context in
            let tenant = request.uri.queryParameters["tenant"].map(String.init)
            let route = request.uri.queryParameters["route"].map(String.init)
            // Awaited before the audit row: the shared tier's entries are gone when the operator hears so.
            let ack = await control.flushCache(tenant: tenant, route: route, by: await context.actor())
            return try await Self.act(context, database: database, action: "cache_flush", target: GatewayControl.cacheScope(tenant: tenant, route: route)) { (_: String) throws(AdminProblem) -> AdminAck in
                ack
            }
        }
        router.get("/v1/audit") { _, _ in
            guard let database else { throw AdminProblem(status: 501, code: "no_store", message: "this gateway runs without a state database") }
            return try Self.json(try await database.auditLog(limit: 100))
        }
        return router
    }

    /// Runs one action, audits it (who, what, outcome) and answers with its JSON or its problem.
    static func act<Value: Encodable>(
        _ context: AdminRequestContext,
        database: (any GatewayDatabase)?,
        action: String,
        target: String?,
        detail: String = "",
        _ work: (_ actor: String) throws(AdminProblem) -> Value
    ) async throws -> Response {
        let actor = await context.actor()
        let result: Result<Value, AdminProblem>
        do {
            result = .success(try work(actor))
        } catch {
            result = .failure(error)
        }
        let outcome: String = switch result {
        case .success: detail
        case .failure(let problem): [detail, problem.message].filter { !$0.isEmpty }.joined(separator: " → ")
        }
        do {
            try await database?.audit(actor: actor, action: action, target: target, detail: outcome, ok: (try? result.get()) != nil)
        } catch {
            context.logger.error("audit log write failed", metadata: ["gw.action": "\(action)", "gw.error": "\(error)"])
        }
        context.logger.notice("admin action", metadata: ["gw.actor": "\(actor)", "gw.action": "\(action)", "gw.target": "\(target ?? "-")"])
        return try Self.json(try result.get())
    }

    static func unknownProvider(_ id: String, _ control: GatewayControl) -> AdminProblem {
        let known = control.state.routing.config.providers.map(\.id).joined(separator: ", ")
        return AdminProblem(status: 404, code: "unknown_provider", message: "no provider '\(id)' (known: \(known))")
    }

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let data = try AdminJSON.encoder().encode(value)
        return Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// Renders every failure as `{"error":{"code","message"}}` with its status, and on the TCP listener
/// requires the admin token (compared in constant time).
struct AdminErrorMiddleware: RouterMiddleware {
    typealias Context = AdminRequestContext
    let token: Secret?

    func handle(_ request: Request, context: AdminRequestContext, next: (Request, AdminRequestContext) async throws -> Response) async throws -> Response {
        if context.channel.localAddress?.protocol != .unix {
            let presented = request.headers[.authorization].map { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : $0 } ?? ""
            guard let token, ConstantTime.equal(presented, token.exposedValue) else {
                return Self.problem(AdminProblem(status: 401, code: "unauthorized", message: "the admin API over TCP needs 'Authorization: Bearer <server.admin_token>'"))
            }
        }
        do {
            return try await next(request, context)
        } catch let problem as AdminProblem {
            return Self.problem(problem)
        } catch let error as HTTPError {
            let code = error.status == .notFound ? "not_found" : error.status == .methodNotAllowed ? "method_not_allowed" : "bad_request"
            return Self.problem(AdminProblem(status: Int(error.status.code), code: code, message: error.body ?? "\(request.method) \(request.uri.path): \(error.status.reasonPhrase)"))
        }
    }

    static func problem(_ problem: AdminProblem) -> Response {
        let data = (try? AdminJSON.encoder().encode(problem.envelope)) ?? Data()
        return Response(status: HTTPResponse.Status(code: problem.status), headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// Comparison whose time does not depend on where the strings differ.
enum ConstantTime {
    static func equal(_ lhs: String, _ rhs: String) -> Bool {
        let left = Array(lhs.utf8)
        let right = Array(rhs.utf8)
        var difference = UInt8(left.count == right.count ? 0 : 1)
        for index in 0..<max(left.count, right.count) {
            difference |= (index < left.count ? left[index] : 0) ^ (index < right.count ? right[index] : 0)
        }
        return difference == 0
    }
}
