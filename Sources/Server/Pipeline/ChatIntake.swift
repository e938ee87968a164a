import Engine
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization
import Tracing

/// A chat request read, routed, admitted and looked up in the cache: what both chat endpoints do
/// before they talk to an upstream.
struct ChatIntake: Sendable {
    let body: ByteBuffer
    /// Only `model`, `stream` and `max_tokens` are read: a same-dialect request is never decoded.
    let patch: OpenAIRequestPatch
    let routing: RoutingSnapshot
    let plan: FailoverPlan
    let admission: Admission
    let cachePlan: CachePlan?

    enum Outcome {
        /// The cache answered.
        case answered(Response)
        case forward(ChatIntake)
    }
}

extension GatewayState {
    /// - Parameter header: the request's field of that name (routing rules, cache control).
    func planChat(body: ByteBuffer, caller: Caller, dialect: ClientDialect, header: @escaping (HTTPField.Name) -> String?) throws(ChatPlan.Refusal) -> ChatPlan {
        let patch: OpenAIRequestPatch
        do {
            patch = try OpenAIRequestPatch(body: body)
        } catch {
            throw .invalidBody(error)
        }
        let routing = self.routing
        let features = routing.features(model: patch.clientModel, streaming: patch.isStreaming, maxTokens: patch.maxTokens, body: body, header: header)
        let plan: FailoverPlan
        do {
            plan = try self.plan(features, in: routing)
        } catch {
            throw .unroutable(error)
        }
        // Before admission: a bad cache header is refused without holding a reservation.
        do {
            let cachePlan = try self.cache.plan(route: plan.route, body: body, format: dialect.cacheFormat, caller: caller, header: header)
            return ChatPlan(patch: patch, routing: routing, features: features, plan: plan, cachePlan: cachePlan)
        } catch {
            throw .cache(error)
        }
    }

    func intake(
        _ request: Request, caller: Caller, dialect: ClientDialect, requestID: String, started: ContinuousClock.Instant, logger: Logger
    ) async throws -> ChatIntake.Outcome {
        let body = try await self.body(of: request)
        let planned: ChatPlan
        do {
            planned = try self.planChat(body: body, caller: caller, dialect: dialect) { request.headers[$0] }
        } catch {
            throw error.error
        }
        let (patch, routing, plan) = (planned.patch, planned.routing, planned.plan)
        let trace = RequestTrace.current
        trace?.requested(model: patch.clientModel, streaming: patch.isStreaming, lane: "framework")
        trace?.capture(input: body)
        var cachePlan = planned.cachePlan
        let admission = try await self.admit(caller, plan: plan, routing: routing, features: planned.features, body: body)
        if let cache = cachePlan {
            switch await self.lookUp(cache, route: plan.route.alias, caller: caller, routing: routing, requestID: requestID, logger: logger) {
            case .hit(let cached, let outcome):
                return .answered(self.answerFromCache(
                    cached, outcome: outcome, dialect: dialect, streaming: patch.isStreaming,
                    includeUsage: dialect == .anthropic || patch.clientWantsStreamUsage, realisticReplay: cache.realisticReplay,
                    route: plan.route.alias, admission: admission, requestID: requestID, started: started, routing: routing
                ))
            case .miss(let planned):
                cachePlan = planned
            }
        }
        return .forward(ChatIntake(body: body, patch: patch, routing: routing, plan: plan, admission: admission, cachePlan: cachePlan))
    }

    /// What the cache says of a planned request: an answer (exact, then the fleet's, then a reworded
    /// last turn's), or the plan again, with the vector that files the answer later.
    enum CacheLookup {
        case hit(CachedAnswer, CacheOutcome)
        case miss(CachePlan)
    }

    /// Looks a request up in the cache, on the request's trace as `switchyard.cache.lookup`.
    func lookUp(_ plan: CachePlan, route: String, caller: Caller, routing: RoutingSnapshot, requestID: String, logger: Logger) async -> CacheLookup {
        var cache = plan
        let trace = RequestTrace.current
        let lookup = trace?.step("switchyard.cache.lookup")
        func hit(_ cached: CachedAnswer, _ outcome: CacheOutcome) -> CacheLookup {
            if let lookup { trace?.end(lookup) { $0["switchyard.cache.outcome"] = outcome.rawValue } }
            return .hit(cached, outcome)
        }
        if cache.lookup, let cached = self.cache.exactMatch(cache) { return hit(cached, .hit) }
        if cache.lookup, let cached = await self.cache.sharedMatch(cache) { return hit(cached, .hit) }
        if let semantic = cache.semantic, cache.lookup || cache.store {
            // Embedded once: the same vector finds a match now and files the answer later.
            cache.vector = await self.embedding(of: semantic, route: route, caller: caller, routing: routing, requestID: requestID, logger: logger, span: lookup)
            if cache.lookup {
                switch self.cache.semanticMatch(cache) {
                case .hit(let cached): return hit(cached, .semanticHit)
                case .refused(let refusal): cache.refusal = refusal
                case .none: break
                }
            }
        }
        if cache.lookup { self.cache.count(.miss) }
        if let lookup {
            trace?.end(lookup) { attributes in
                attributes["switchyard.cache.outcome"] = (cache.lookup ? CacheOutcome.miss : .bypass).rawValue
                if let refusal = cache.refusal { attributes["switchyard.cache.refused"] = refusal.rawValue }
            }
        }
        return .miss(cache)
    }

    /// The last user turn's vector from the route's embedder; nil (the request goes on without the
    /// semantic cache) when a provider's embedder fails or is too slow. A provider's call gets its
    /// own ledger row (`operation = cache-embedding`, beside the request's), priced like any other, and
    /// its own client span under the lookup's `span` when the request is traced.
    func embedding(
        of semantic: SemanticPlan, route: String, caller: Caller, routing: RoutingSnapshot, requestID: String, logger: Logger, span lookup: (any Span)? = nil
    ) async -> [Float]? {
        guard let settings = semantic.embedder else { return self.cache.localVector(semantic.text) }
        guard let upstream = routing.upstreams[settings.provider],
            let admission = self.cache.admitEmbedding(settings, policy: upstream.settings.breaker, at: .now)
        else { return nil }
        let trace = lookup == nil ? nil : RequestTrace.current
        let span = lookup.flatMap { lookup in trace?.step("embeddings \(settings.model)", kind: .client, under: lookup) }
        span?.updateAttributes { attributes in
            attributes["gen_ai.operation.name"] = "embeddings"
            attributes["gen_ai.provider.name"] = upstream.settings.kind.genAIProviderName
            attributes["gen_ai.request.model"] = settings.model
            attributes["switchyard.provider"] = settings.provider
        }
        let embedder = ProviderEmbedder(upstream: upstream, model: settings.model, requestID: requestID, deadline: Self.embeddingDeadline)
        let started = ContinuousClock.now
        var row = LedgerRow(
            requestId: requestID, at: Date().timeIntervalSince1970, tenant: caller.tenant, keyId: caller.key?.id, route: route,
            provider: settings.provider, model: settings.model, outcome: "success", status: 200, inputTokens: 0, cachedTokens: 0,
            outputTokens: 0, reasoningTokens: 0, costUsd: 0, latencyMs: 0, ttftMs: nil, cache: "bypass", attempts: 1, operation: "cache-embedding"
        )
        defer {
            row.latencyMs = (ContinuousClock.now - started).seconds * 1000
            self.ledger.append(row)
            if let span {
                if row.outcome != "success" { span.setStatus(SpanStatus(code: .error, message: "the embedder failed: \(row.status)")) }
                trace?.end(span) { attributes in
                    attributes["gen_ai.usage.input_tokens"] = row.inputTokens
                    if row.outcome != "success" { attributes["error.type"] = row.outcome }
                }
            }
        }
        do {
            let (vectors, usage) = try await embedder.embedWithUsage([semantic.text])
            self.cache.settleEmbedding(settings, admission, succeeded: true, at: .now)
            row.inputTokens = usage.inputTokens
            row.costUsd = routing.price(of: RouteTarget(provider: settings.provider, model: settings.model)).map { $0.cost(usage) } ?? 0
            return vectors.first
        } catch where Task.isCancelled {
            // The client hung up while we asked: its request ends here, and the embedder is not to blame.
            self.cache.settleEmbedding(settings, admission, succeeded: nil, at: .now)
            (row.outcome, row.status) = (FaultDomain.caller.rawValue, 499)
            return nil
        } catch {
            if self.cache.settleEmbedding(settings, admission, succeeded: false, at: .now) {
                logger.warning("semantic cache: the embedder keeps failing and rests; requests skip the semantic lookup meanwhile", metadata: [
                    "embedder": "\(settings.identity)",
                ])
            }
            self.cache.embeddingFailures.add(1, ordering: .relaxed)
            self.metrics.recordEmbeddingFailure(route: route, embedder: settings)
            let failure = error as? GatewayError
            row.outcome = failure?.domain.rawValue ?? FaultDomain.gateway.rawValue
            row.status = failure?.httpStatus ?? 500
            logger.warning("semantic cache skipped: the embedder failed", metadata: [
                "embedder": "\(settings.identity)", "error": "\(String(describing: error))",
            ])
            return nil
        }
    }

    /// How long a cache lookup waits for a provider's embedding before it gives up on it.
    static let embeddingDeadline: Duration = .seconds(2)
}
