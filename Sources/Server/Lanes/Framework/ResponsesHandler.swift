import Engine
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// OpenAI's Responses API in front of every provider. `POST /v1/responses` passes through to an
/// upstream that serves the API (only `model` rewritten; `ResponsesPassThrough`), and is translated
/// through the canonical model for the others, whole or streamed as the Responses event sequence.
/// Unless `store` is false the answer is kept, scoped to the caller's tenant: by the upstream, with
/// the gateway keeping whose it is (a follow-up goes back to that provider), or by the gateway, with
/// its whole conversation (a follow-up continues it on any provider). `GET`, `DELETE`, `input_items`
/// and `cancel` read it (asking the upstream for one it keeps); `POST /v1/responses/input_tokens`
/// estimates a request.
struct ResponsesHandler: Sendable {
    let state: GatewayState

    func create(_ request: Request, context: GatewayRequestContext) async -> Response {
        await self.state.respond(to: request, context: context, in: .openAI) { requestID, started, caller in
            let body = try await self.state.body(of: request)
            // Only what passing the request through needs is read now; the full decode waits for a target that needs a translation.
            let patch = try OpenAIRequestPatch(body: body)
            let envelope = try ResponsesRequestDecoder.envelope(try JSONValue.requestObject(body))
            let previous = try await self.continued(envelope, caller: caller)
            RequestTrace.current?.requested(model: patch.clientModel, streaming: patch.isStreaming, lane: "framework")
            RequestTrace.current?.capture(input: body)
            let routing = self.state.routing
            var features = routing.features(model: patch.clientModel, streaming: patch.isStreaming, maxTokens: envelope.maxTokens, body: body, of: request)
            // The conversation the gateway keeps is part of the prompt too (for limits, and rules on its size).
            if let previous, !previous.heldUpstream { features.promptTokens += (previous.inputItems.utf8.count + previous.response.utf8.count + 3) / 4 }
            let plan = try self.plan(features, in: routing, continuing: previous)
            // A conversation an upstream keeps goes back to it as it is; one the gateway keeps was never
            // seen by any upstream, and is translated with its history on every target.
            let heldUpstream = previous?.heldUpstream
            let passesThrough: @Sendable (UpstreamPool.Upstream) -> Bool = { $0.settings.speaksResponses && heldUpstream != false }
            // Cached only when the gateway could make the Response itself: the request translates, and
            // continues no conversation that only an upstream holds.
            var cachePlan = heldUpstream == true ? nil : try self.state.cache.plan(route: plan.route, body: body, format: "responses", caller: caller) {
                request.headers[$0]
            }
            let translation = cachePlan != nil || plan.everyCandidate.contains { routing.upstreams[$0.provider].map { !passesThrough($0) } ?? false }
                ? Result { try self.translation(of: body, continuing: previous) } : nil
            if case .failure = translation { cachePlan = nil }
            let admission = try await self.state.admit(caller, plan: plan, routing: routing, features: features, body: body)
            return try await admission.guarding {
                if let cache = cachePlan, case .success(let translated) = translation {
                    switch await self.state.lookUp(cache, route: plan.route.alias, caller: caller, routing: routing, requestID: requestID, logger: context.logger) {
                    case .hit(let cached, let outcome):
                        let answer = ResponsesAnswer(id: Self.newID(), createdAt: Int(Date().timeIntervalSince1970), echo: Self.echo(translated.decoded))
                        if let keeping = self.keeping(answer, of: translated, for: caller, provider: cached.provider, model: cached.upstreamModel) {
                            await ExchangeContext.keep(cached.response, with: keeping, requestID: requestID, logger: context.logger)
                        }
                        return self.state.answerFromCache(
                            cached, outcome: outcome, dialect: .openAI, streaming: patch.isStreaming, includeUsage: true, realisticReplay: cache.realisticReplay,
                            route: plan.route.alias, admission: admission, requestID: requestID, started: started, routing: routing, responses: answer
                        )
                    case .miss(let planned):
                        cachePlan = planned
                    }
                }
                let inlining = self.state.imageInlining(for: try? translation?.get().decoded.request, logger: context.logger)
                let outcome = try await self.state.forward(plan, in: routing, request: request, requestID: requestID, context: context) { target, upstream in
                    guard passesThrough(upstream) else {
                        if let previous, previous.heldUpstream {
                            throw GatewayError.previousResponseElsewhere(previous.id, provider: target.provider, route: target.route)
                        }
                        guard let translated = try translation?.get() else { throw GatewayError.internalFailure("no decoded request for a translated target") }
                        return try await TranslatedExchange.prepare(translated.decoded.request, target: target, upstream: upstream, images: inlining)
                    }
                    return UpstreamRequest(body: patch.upstreamBody(model: target.upstreamModel, requestStreamUsage: false), path: "/responses", streaming: patch.isStreaming)
                }
                var exchange = ExchangeContext(
                    state: self.state, routing: routing, admission: admission, requestID: requestID, outcome: outcome, logger: context.logger, started: started
                )
                exchange.operation = "responses"
                exchange.clientConnection = context.connection
                exchange.cachePlan = cachePlan
                let (provider, model) = (outcome.target.provider, outcome.target.upstreamModel)
                guard !passesThrough(outcome.upstream), let translated = try translation?.get() else {
                    // The upstream keeps it: the gateway keeps whose it is, under the upstream's id.
                    if envelope.store { exchange.keepAnswer = self.keeping(Self.row(id: "", for: caller, provider: provider, model: model, conversation: nil)) }
                    return try await ResponsesPassThrough.respond(exchange)
                }
                let answer = ResponsesAnswer(id: Self.newID(), createdAt: Int(Date().timeIntervalSince1970), echo: Self.echo(translated.decoded))
                exchange.keepAnswer = self.keeping(answer, of: translated, for: caller, provider: provider, model: model)
                return try await self.translated(translated, exchange, answer: answer)
            }
        }
    }

    /// The plan for a request; a follow-up to a response an upstream keeps goes back to that provider.
    private func plan(_ features: RequestFeatures, in routing: RoutingSnapshot, continuing previous: StoredResponse?) throws -> FailoverPlan {
        guard let previous, previous.heldUpstream else { return try self.state.plan(features, in: routing) }
        return try self.state.plan(features, in: routing, heldBy: previous.provider, model: previous.upstreamModel, responseID: previous.id)
    }

    /// The kept response a request continues (`previous_response_id`), when it names one.
    private func continued(_ envelope: ResponsesRequestDecoder.Envelope, caller: Caller) async throws -> StoredResponse? {
        guard let id = envelope.previousResponseID else { return nil }
        return try await self.kept(id, caller: caller, missing: GatewayError.previousResponseNotFound)
    }

    /// A request decoded for translation, with what a kept answer keeps of it.
    private struct Translation: Sendable {
        let decoded: ResponsesRequestDecoder.Decoded
        /// The whole conversation's input items (a JSON array) when the answer is to be kept.
        let conversation: String?
    }

    /// The request decoded after the conversation it continues (one the gateway keeps), and that
    /// conversation within its bounds (checked before any upstream call).
    private func translation(of body: ByteBuffer, continuing previous: StoredResponse?) throws -> Translation {
        let history = previous.map(Self.history) ?? []
        let decoded = try ResponsesRequestDecoder.decode(body, history: history)
        let conversation = decoded.store ? JSONValue.array(history + decoded.inputItems).jsonText : nil
        if let conversation, conversation.utf8.count > StoredResponse.largestConversation {
            throw GatewayError.invalidRequest(
                "The conversation has grown past \(ByteSize.format(StoredResponse.largestConversation)), the most a kept response holds; start a new one (or send store: false).",
                param: "previous_response_id"
            )
        }
        return Translation(decoded: decoded, conversation: conversation)
    }

    /// A conversation the gateway keeps: its input items, then its output (none for one an upstream keeps).
    private static func history(_ kept: StoredResponse) -> [JSONValue] {
        guard !kept.heldUpstream else { return [] }
        return ((try? JSONValue.parse(kept.inputItems))?.array ?? []) + ((try? JSONValue.parse(kept.response))?["output"]?.array ?? [])
    }

    /// A kept response's row: one the gateway made holds its conversation; one passed through
    /// (`conversation` nil) only whose it is, its id the upstream's (`id` empty until the answer has it).
    private static func row(id: String, for caller: Caller, provider: String, model: String, conversation: String?) -> StoredResponse {
        StoredResponse(
            id: id, tenant: caller.tenant ?? "", keyId: caller.key?.id, createdAt: Date().timeIntervalSince1970, provider: provider,
            upstreamModel: model, heldUpstream: conversation == nil, inputItems: conversation ?? "", response: ""
        )
    }

    /// How a Response the gateway made is kept (nil when the client keeps nothing): its whole
    /// conversation and the Response itself.
    private func keeping(
        _ answer: ResponsesAnswer, of translation: Translation, for caller: Caller, provider: String, model: String
    ) -> (@Sendable (ChatResponse) async throws -> Void)? {
        guard let conversation = translation.conversation else { return nil }
        return self.keeping(Self.row(id: answer.id, for: caller, provider: provider, model: model, conversation: conversation)) {
            answer.object($0, model: model)
        }
    }

    /// How an answer is kept into `row`: under the answer's id when the row has none yet, with the
    /// Response `object` makes of it. Kept before the client has the id: a follow-up sent at once finds it.
    private func keeping(_ row: StoredResponse, object: (@Sendable (ChatResponse) -> String)? = nil) -> @Sendable (ChatResponse) async throws -> Void {
        let database = self.state.database
        return { answer in
            var kept = row
            if kept.id.isEmpty { kept.id = answer.id }
            guard !kept.id.isEmpty else { return }
            if let object { kept.response = object(answer) }
            try await database.keep(kept)
        }
    }

    /// A request answered through the canonical model, with a Response the gateway makes (and keeps).
    private func translated(_ translation: Translation, _ exchange: ExchangeContext, answer: ResponsesAnswer) async throws -> Response {
        let decoded = translation.decoded
        var reply = TranslatedExchange(client: .openAI)
        reply.responses = answer
        let outcome = exchange.outcome
        guard outcome.reply.isSuccess, let responseBody = outcome.reply.body else {
            return try reply.respond(exchange, request: decoded.request, dropped: decoded.dropped, started: exchange.started)
        }
        var headers = HTTPFields()
        let (text, canonical) = try reply.decodedAnswer(responseBody, exchange, dropped: decoded.dropped, fields: &headers)
        // The answer is paid for and accounted already: a database that fails now costs the follow-up, not the answer.
        await exchange.keep(canonical)
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: text))
    }

    /// `GET /v1/responses/{id}`: a kept response, as the client got it (from the upstream that keeps it, for one passed through).
    func retrieve(_ request: Request, context: GatewayRequestContext) async -> Response {
        await self.state.respond(to: request, context: context, in: .openAI) { requestID, _, caller in
            let kept = try await self.kept(context, caller: caller)
            if kept.heldUpstream { return try await self.ask(kept, .get, request: request, requestID: requestID) }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: kept.response)))
        }
    }

    /// `GET /v1/responses/{id}/input_items`: the conversation's input items, newest first unless
    /// `order=asc`, `limit` (1-100, default 20) after the item `after`.
    func inputItems(_ request: Request, context: GatewayRequestContext) async -> Response {
        await self.state.respond(to: request, context: context, in: .openAI) { requestID, _, caller in
            let kept = try await self.kept(context, caller: caller)
            if kept.heldUpstream { return try await self.ask(kept, .get, "/input_items", request: request, requestID: requestID) }
            let query = request.uri.queryParameters
            let limit = query["limit"].map { Int(String($0)) ?? -1 } ?? 20
            guard (1...100).contains(limit) else { throw GatewayError.invalidRequest("'limit' must be from 1 to 100.", param: "limit") }
            var items = ((try? JSONValue.parse(kept.inputItems))?.array ?? []).enumerated().map { index, item in Self.listed(item, id: "\(kept.id)_item_\(index)") }
            if query["order"].map(String.init) != "asc" { items.reverse() }
            if let after = query["after"].map(String.init), let position = items.firstIndex(where: { $0["id"]?.string == after }) {
                items.removeFirst(position + 1)
            }
            let page = Array(items.prefix(limit))
            var json = JSONWriter()
            json.openObject()
            json.field("object", "list")
            json.key("data")
            json.raw(JSONValue.array(page).jsonText)
            json.field("first_id", page.first?["id"]?.string)
            json.field("last_id", page.last?["id"]?.string)
            json.field("has_more", items.count > page.count)
            json.closeObject()
            return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: json.output)))
        }
    }

    /// `DELETE /v1/responses/{id}`: for one passed through, the upstream deletes its copy first (one
    /// it no longer has is gone either way).
    func delete(_ request: Request, context: GatewayRequestContext) async -> Response {
        await self.state.respond(to: request, context: context, in: .openAI) { requestID, _, caller in
            let kept = try await self.kept(context, caller: caller)
            var answer: Response?
            if kept.heldUpstream {
                let upstream = try await self.ask(kept, .delete, request: request, requestID: requestID)
                guard upstream.status == .ok || upstream.status == .notFound else { return upstream }
                answer = upstream.status == .ok ? upstream : nil
            }
            guard try await self.state.database.deleteStoredResponse(id: kept.id, tenant: kept.tenant) else { throw GatewayError.responseNotFound(kept.id) }
            if let answer { return answer }
            var json = JSONWriter()
            json.openObject()
            json.field("id", kept.id)
            json.field("object", "response")
            json.field("deleted", true)
            json.closeObject()
            return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: json.output)))
        }
    }

    /// `POST /v1/responses/{id}/cancel`: asked of the upstream that keeps the response; one the
    /// gateway made ran to its end before the client had its id (the gateway serves no background
    /// mode), so there is nothing to cancel.
    func cancel(_ request: Request, context: GatewayRequestContext) async -> Response {
        await self.state.respond(to: request, context: context, in: .openAI) { requestID, _, caller in
            let kept = try await self.kept(context, caller: caller)
            guard kept.heldUpstream else {
                throw GatewayError.invalidRequest("Only background responses can be cancelled; response '\(kept.id.prefix(100))' has completed.", param: nil)
            }
            return try await self.ask(kept, .post, "/cancel", request: request, requestID: requestID)
        }
    }

    /// `POST /v1/responses/input_tokens`: the request's prompt tokens, estimated as admission does (a
    /// token per four bytes of the request and the conversation the gateway keeps for it), and marked
    /// as an estimate.
    func inputTokens(_ request: Request, context: GatewayRequestContext) async -> Response {
        await self.state.respond(to: request, context: context, in: .openAI) { _, _, caller in
            let body = try await self.state.body(of: request)
            let envelope = try ResponsesRequestDecoder.envelope(try JSONValue.requestObject(body))
            var history: [JSONValue] = []
            if let previous = try await self.continued(envelope, caller: caller) { history = Self.history(previous) }
            let bytes = body.readableBytes + JSONValue.array(history).jsonText.utf8.count
            var json = JSONWriter()
            json.openObject()
            json.field("object", "response.input_tokens")
            json.field("input_tokens", (bytes + 3) / 4)
            json.closeObject()
            var headers: HTTPFields = [.contentType: "application/json"]
            headers[.tokenEstimate] = "true"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: json.output)))
        }
    }

    /// The response named in the path, when the caller's tenant keeps it.
    private func kept(_ context: GatewayRequestContext, caller: Caller) async throws -> StoredResponse {
        try await self.kept(context.parameters.get("id") ?? "", caller: caller, missing: GatewayError.responseNotFound)
    }

    /// - Parameter missing: the error for an id the caller's tenant does not keep.
    private func kept(_ id: String, caller: Caller, missing: (String) -> GatewayError) async throws -> StoredResponse {
        guard let kept = try await self.state.database.storedResponse(id: id, tenant: caller.tenant ?? "") else { throw missing(id) }
        return kept
    }

    /// The upstream that keeps `kept`, asked about it as the client asked (its query kept), with its
    /// answer passed on as it came: its own errors included, but never its 401/403 (about our key).
    private func ask(_ kept: StoredResponse, _ method: HTTPRequest.Method, _ suffix: String = "", request: Request, requestID: String) async throws -> Response {
        guard let upstream = self.state.routing.upstreams[kept.provider] else {
            throw GatewayError.responseHolderGone(kept.id, provider: kept.provider)
        }
        let id = kept.id.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(["/"])) ?? kept.id
        let query = request.uri.query.map { "?" + $0 } ?? ""
        let body = method == .post ? try await self.state.body(of: request) : nil
        let reply = try await UpstreamCall.ask(method, path: "/responses/\(id)\(suffix)\(query)", body: body, of: upstream, requestID: requestID)
        guard reply.isSuccess || (reply.status != 401 && reply.status != 403 && reply.body.map(UpstreamCall.isErrorEnvelope) == true) else {
            throw reply.error(provider: kept.provider)
        }
        var headers: HTTPFields = [.contentType: "application/json"]
        headers[.requestID] = requestID
        return Response(status: HTTPResponse.Status(code: reply.status), headers: headers, body: ResponseBody(byteBuffer: reply.body ?? ByteBuffer()))
    }

    /// An input item as `input_items` lists it: with an id and a type, and a message's text as an
    /// `input_text` part, as OpenAI lists them.
    private static func listed(_ item: JSONValue, id: String) -> JSONValue {
        guard case .object(var members) = item else { return item }
        if item["id"] == nil { members.insert((key: "id", value: .string(id)), at: 0) }
        if item["type"] == nil { members.insert((key: "type", value: .string("message")), at: 1) }
        if let text = item["content"]?.string, let index = members.firstIndex(where: { $0.key == "content" }) {
            let part = JSONValue.object([(key: "type", value: .string("input_text")), (key: "text", value: .string(text))])
            members[index].value = .array([part])
        }
        return .object(members)
    }

    /// `resp_` and 48 random hex digits: an id nobody can guess, whatever request id the client chose.
    static func newID() -> String {
        var random = SystemRandomNumberGenerator()
        return "resp_" + (0..<3).map { _ in String(random.next() as UInt64, radix: 16).leftPadded(to: 16) }.joined()
    }

    /// What the Response echoes of its request.
    private static func echo(_ decoded: ResponsesRequestDecoder.Decoded) -> ResponsesResponseEncoder.Echo {
        let request = decoded.request
        return ResponsesResponseEncoder.Echo(
            instructions: decoded.instructions, maxOutputTokens: request.maxTokens, previousResponseID: decoded.previousResponseID, store: decoded.store,
            temperature: request.temperature, topP: request.topP, parallelToolCalls: request.parallelToolCalls, toolChoice: request.toolChoice,
            tools: request.tools, format: request.responseFormat
        )
    }
}

extension String {
    /// Zeros before the text, up to `width` characters.
    fileprivate func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - self.count)) + self
    }
}
