/// Why a request did not take the fast lane: the closed list of reasons, each counted in
/// `switchyard_fast_lane_skipped_total{reason}`. The framework lane (Hummingbird and AsyncHTTPClient)
/// answers such a request in full; its behaviour is the same, only its cost differs. Thrown where a
/// part of the decision is made.
public enum FastLaneSkip: String, Sendable, CaseIterable, Error {
    /// `server.fast_lane: false`.
    case disabled
    /// Neither `POST /v1/chat/completions` nor `POST /v1/messages` (embeddings, models, health, metrics…).
    case otherEndpoint = "other_endpoint"
    /// The client ends the connection after this request (HTTP/1.0, `Connection: close`): the
    /// framework lane's `FrameworkWatch` owns how such a connection ends.
    case connectionCloses = "connection_closes"
    /// `Expect: 100-continue`.
    case expectsContinue = "expects_continue"
    /// A body larger than `server.max_body` (the framework lane answers its 413).
    case bodyTooLarge = "body_too_large"
    /// Framing the fast lane leaves to Hummingbird for the rest of the connection (a chunked body, an upgrade).
    case unusualFraming = "unusual_framing"
    /// An earlier request on the connection is still owed its answer by the framework lane.
    case behindFrameworkAnswer = "behind_framework_answer"
    /// The credential is refused (the framework lane answers the 401).
    case callerRefused = "caller_refused"
    /// A body the fast lane's patcher refuses (the framework lane answers the 400).
    case invalidBody = "invalid_body"
    /// No route serves the model, or the request's features rule every target out.
    case unroutable
    /// The route hedges (a second attempt races the first).
    case hedged
    /// An Anthropic client of an Anthropic upstream: passed through by the framework lane.
    case upstreamDialect = "upstream_dialect"
    /// A target takes images inline only (Gemini, Ollama) and `server.fetch_image_urls` is on: the
    /// framework lane fetches them.
    case fetchesImages = "fetches_images"
    /// A plain-HTTP target is reached through `HTTP_PROXY` (an `https` one goes through the proxy's
    /// `CONNECT` tunnel on the fast lane too).
    case egressProxy = "egress_proxy"
    /// A target's base URL or headers are beyond what the fast lane sends (credentials or a query in
    /// the URL, header text that is not valid HTTP).
    case unusualUpstream = "unusual_upstream"
    /// This event loop's share of a target's `max_connections` is nothing (more loops than connections).
    case noConnectionShare = "no_connection_share"
    /// The route caches answers for this request.
    case cached
    /// The caller's limits are kept where they cannot be decided on the spot.
    case limitsElsewhere = "limits_elsewhere"
}
