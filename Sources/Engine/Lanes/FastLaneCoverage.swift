/// What the fast lane does with each configuration setting that can shape a request: the list a
/// test holds against the settings' own fields, so a setting added without deciding what the fast
/// lane does with it fails the build's tests instead of being silently skipped on one lane.
public enum FastLaneCoverage {
    public enum Treatment: Sendable, Equatable {
        /// Applied on the fast lane by the same code as on the framework lane.
        case shared
        /// Requests it concerns take the framework lane, for this reason.
        case skips(FastLaneSkip)
        /// Not part of serving a request (start-up, the admin API, the simulator, pricing at load).
        case notOnRequestPath
    }

    /// `providers.<id>` (`ProviderSettings`).
    public static let provider: [String: Treatment] = [
        "id": .shared,
        "kind": .shared,
        "baseURL": .shared,
        "apiKey": .shared,
        "headers": .shared,
        "timeouts": .shared,
        "maxConnections": .shared,
        "acceptsStreamOptions": .shared,
        "wire": .skips(.upstreamDialect),
        "defaultMaxTokens": .shared,
        "apiVersion": .shared,
        // Only `/v1/responses` asks it, and the framework lane serves that endpoint.
        "responsesAPI": .skips(.otherEndpoint),
        "breaker": .shared,
        "healthCheck": .shared,
        "loadPoll": .shared,
        "tls": .shared,
    ]

    /// `routes.<alias>` (`RouteSettings`).
    public static let route: [String: Treatment] = [
        "alias": .shared,
        "targets": .shared,
        "strategy": .shared,
        "fallbacks": .shared,
        "contextFallback": .shared,
        "retry": .shared,
        "hedge": .skips(.hedged),
        "cache": .skips(.cached),
    ]

    /// A route's target (`RouteTarget`).
    public static let target: [String: Treatment] = [
        "provider": .shared,
        "model": .shared,
        "weight": .shared,
        "priority": .shared,
        "price": .shared,
    ]

    /// `server` (`ServerSettings`).
    public static let server: [String: Treatment] = [
        "listen": .notOnRequestPath,
        "stateDir": .notOnRequestPath,
        "maxBodyBytes": .skips(.bodyTooLarge),
        "logLevel": .notOnRequestPath,
        "fetchImageURLs": .skips(.fetchesImages),
        "imageLimits": .skips(.fetchesImages),
        "anonymous": .shared,
        "budgetStatus": .shared,
        "adminSocket": .notOnRequestPath,
        "adminListen": .notOnRequestPath,
        "adminToken": .notOnRequestPath,
        "client": .shared,
        "fastLane": .skips(.disabled),
        // The listener's, before it closes: both lanes' requests are accepted and finished alike.
        "shutdownDelay": .notOnRequestPath,
    ]

    /// The top level (`GatewayConfig`).
    public static let config: [String: Treatment] = [
        "server": .shared,
        "providers": .shared,
        "routes": .shared,
        "rules": .shared,
        "simulator": .notOnRequestPath,
        "tenants": .shared,
        "prices": .shared,
        "pricesFile": .notOnRequestPath,
        "filePrices": .shared,
        "cacheMemory": .skips(.cached),
        "cachePersistent": .skips(.cached),
        "cacheShared": .skips(.cached),
        // Shared through Redis, admission is a round trip: over the loop's own connection on the fast
        // lane, the framework's while that connection is not up (`limitsElsewhere`).
        "state": .shared,
        // Keys and ledger rows are the same to both lanes; a key another replica made a moment ago, not
        // yet announced here, is looked up by the framework lane (`callerRefused` on the fast one).
        "database": .shared,
        "tracing": .shared,
        "responsesKeepDays": .notOnRequestPath,
    ]
}
