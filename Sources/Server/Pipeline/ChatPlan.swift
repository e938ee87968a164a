import Engine
import HTTPTypes
import NIOCore

/// What both lanes make of a chat request's body before admission: its patch, the routing in force,
/// the features routing looks at, the plan, and the cache's part. One function for both lanes, so a
/// step added to one is on the other.
struct ChatPlan {
    let patch: OpenAIRequestPatch
    let routing: RoutingSnapshot
    let features: RequestFeatures
    let plan: FailoverPlan
    let cachePlan: CachePlan?

    /// The step that refused the request, and the error its caller gets.
    enum Refusal: Error {
        case invalidBody(any Error)
        case unroutable(GatewayError)
        case cache(any Error)

        var error: any Error {
            switch self {
            case .invalidBody(let error), .cache(let error): error
            case .unroutable(let error): error
            }
        }
    }
}
