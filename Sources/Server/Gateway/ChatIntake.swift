import Engine
import Hummingbird
import NIOCore

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
    func intake(
        _ request: Request, caller: Caller, dialect: ClientDialect, requestID: String, started: ContinuousClock.Instant
    ) async throws -> ChatIntake.Outcome {
        let body = try await self.body(of: request)
        let patch = try OpenAIRequestPatch(body: body)
        let routing = self.routing
        let features = routing.features(model: patch.clientModel, streaming: patch.isStreaming, maxTokens: patch.maxTokens, body: body, of: request)
        let plan = try self.plan(features, in: routing)
        let admission = try await self.admit(caller, plan: plan, routing: routing, features: features, body: body)
        let cachePlan = self.cache.plan(route: plan.route, body: body, dialect: dialect, caller: caller, request: request)
        if let cachePlan, cachePlan.lookup, let (cached, outcome) = self.cache.lookup(cachePlan) {
            return .answered(self.answerFromCache(
                cached, outcome: outcome, dialect: dialect, streaming: patch.isStreaming,
                includeUsage: dialect == .anthropic || patch.clientWantsStreamUsage,
                route: plan.route.alias, admission: admission, requestID: requestID, started: started, routing: routing
            ))
        }
        return .forward(ChatIntake(body: body, patch: patch, routing: routing, plan: plan, admission: admission, cachePlan: cachePlan))
    }
}
