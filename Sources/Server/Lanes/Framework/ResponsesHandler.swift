import Engine
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// OpenAI's Responses API in front of every provider: `POST /v1/responses` translated through the
/// canonical model to the route's targets, whole or streamed as the Responses event sequence, and
/// the gateway's own state. An answer is kept unless `store` is false, scoped to the caller's tenant,
/// with its whole conversation, so `previous_response_id` continues it on any provider; `GET`,
/// `DELETE` and `input_items` read it, `POST /v1/responses/input_tokens` estimates a request.
struct ResponsesHandler: Sendable {
    let state: GatewayState

    func create(_ request: Request, context: GatewayRequestContext) async -> Response {
        await self.state.respond(to: request, context: context, in: .openAI) { requestID, started, caller in
            let body = try await self.state.body(of: request)
            let (decoded, history) = try await self.decode(body, caller: caller)
            let chat = decoded.request
            // What a kept answer keeps: the whole conversation, within bounds (checked before any upstream call).
            let conversation = decoded.store ? JSONValue.array(history + decoded.inputItems).jsonText : nil
            if let conversation, conversation.utf8.count > StoredResponse.largestConversation {
                throw GatewayError.invalidRequest(
                    "The conversation has grown past \(ByteSize.format(StoredResponse.largestConversation)), the most a kept response holds; start a new one (or send store: false).",
                    param: "previous_response_id"
                )
            }
            RequestTrace.current?.requested(model: chat.model, streaming: chat.stream, lane: "framework")
            RequestTrace.current?.capture(input: body)
            let routing = self.state.routing
            let features = routing.features(model: chat.model, streaming: chat.stream, maxTokens: chat.maxTokens, body: body, of: request)
            let plan = try self.state.plan(features, in: routing)
            let admission = try await self.state.admit(caller, plan: plan, routing: routing, features: features, body: body)
            return try await admission.guarding {
                let images = self.state.imageInlining(for: chat, logger: context.logger)
                let outcome = try await self.state.forward(plan, in: routing, request: request, requestID: requestID, context: context) { target, upstream in
                    try await TranslatedExchange.prepare(chat, target: target, upstream: upstream, images: images)
                }
                let answer = ResponsesAnswer(id: Self.newID(), createdAt: Int(Date().timeIntervalSince1970), echo: Self.echo(decoded))
                var exchange = ExchangeContext(
                    state: self.state, routing: routing, admission: admission, requestID: requestID, outcome: outcome, logger: context.logger, started: started
                )
                exchange.operation = "responses"
                exchange.clientConnection = context.connection
                if let inputItems = conversation {
                    let kept = StoredResponse(
                        id: answer.id, tenant: caller.tenant ?? "", keyId: caller.key?.id, createdAt: Date().timeIntervalSince1970,
                        provider: outcome.target.provider, upstreamModel: outcome.target.upstreamModel, heldUpstream: false,
                        inputItems: inputItems, response: ""
                    )
                    let database = self.state.database
                    exchange.keepAnswer = { response in
                        var kept = kept
                        kept.response = answer.object(response, model: kept.upstreamModel)
                        try await database.keep(kept)
                    }
                }
                var translation = TranslatedExchange(client: .openAI)
                translation.responses = answer
                let reply = outcome.reply
                guard reply.isSuccess, let responseBody = reply.body else {
                    return try translation.respond(exchange, request: chat, dropped: decoded.dropped, started: started)
                }
                var headers = HTTPFields()
                let (text, canonical) = try translation.decodedAnswer(
                    responseBody, exchange, dropped: decoded.dropped, overhead: outcome.overhead(since: started), fields: &headers
                )
                // Kept before the client has the id: a follow-up sent at once finds it. The answer is paid
                // for and accounted already: a database that fails now costs the follow-up, not the answer.
                await exchange.keep(canonical)
                return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: text))
            }
        }
    }

    /// The request decoded after the conversation it continues.
    /// - Returns: the decoded request, and the kept conversation's items (input, then output).
    private func decode(_ body: ByteBuffer, caller: Caller) async throws -> (ResponsesRequestDecoder.Decoded, [JSONValue]) {
        guard let previous = try JSONValue.requestObject(body)["previous_response_id"]?.string else {
            return (try ResponsesRequestDecoder.decode(body), [])
        }
        guard let kept = try await self.state.database.storedResponse(id: previous, tenant: caller.tenant ?? "") else {
            throw GatewayError.previousResponseNotFound(previous)
        }
        let history = ((try? JSONValue.parse(kept.inputItems))?.array ?? []) + ((try? JSONValue.parse(kept.response))?["output"]?.array ?? [])
        return (try ResponsesRequestDecoder.decode(body, history: history), history)
    }

    /// `GET /v1/responses/{id}`: a kept response, as the client got it.
    func retrieve(_ request: Request, context: GatewayRequestContext) async -> Response {
        await self.state.respond(to: request, context: context, in: .openAI) { _, _, caller in
            let kept = try await self.kept(context, caller: caller)
            return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: kept.response)))
        }
    }

    /// `GET /v1/responses/{id}/input_items`: the conversation's input items, newest first unless
    /// `order=asc`, `limit` (1-100, default 20) after the item `after`.
    func inputItems(_ request: Request, context: GatewayRequestContext) async -> Response {
        await self.state.respond(to: request, context: context, in: .openAI) { _, _, caller in
            let kept = try await self.kept(context, caller: caller)
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

    /// `DELETE /v1/responses/{id}`.
    func delete(_ request: Request, context: GatewayRequestContext) async -> Response {
        await self.state.respond(to: request, context: context, in: .openAI) { _, _, caller in
            let id = context.parameters.get("id") ?? ""
            guard try await self.state.database.deleteStoredResponse(id: id, tenant: caller.tenant ?? "") else { throw GatewayError.responseNotFound(id) }
            var json = JSONWriter()
            json.openObject()
            json.field("id", id)
            json.field("object", "response")
            json.field("deleted", true)
            json.closeObject()
            return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: json.output)))
        }
    }

    /// `POST /v1/responses/input_tokens`: the request's prompt tokens, estimated as admission does (a
    /// token per four bytes of the request and its kept conversation), and marked as an estimate.
    func inputTokens(_ request: Request, context: GatewayRequestContext) async -> Response {
        await self.state.respond(to: request, context: context, in: .openAI) { _, _, caller in
            let body = try await self.state.body(of: request)
            let (_, history) = try await self.decode(body, caller: caller)
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

    private func kept(_ context: GatewayRequestContext, caller: Caller) async throws -> StoredResponse {
        let id = context.parameters.get("id") ?? ""
        guard let kept = try await self.state.database.storedResponse(id: id, tenant: caller.tenant ?? "") else { throw GatewayError.responseNotFound(id) }
        return kept
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
