import Foundation

/// The gateway's whole configuration, validated. Built by `ConfigLoader` from YAML, or by
/// `ZeroConfig` from the environment when there is no file.
public struct GatewayConfig: Sendable, Equatable {
    public var server: ServerSettings
    /// In the order of the file, so listings and logs are stable.
    public var providers: [ProviderSettings]
    public var routes: [RouteSettings]
    /// `rules:` in file order; the first that matches a request picks its route.
    public var rules: [RouteRule]
    public var simulator: SimulatorSettings
    /// `tenants:` in file order, with their limits, budgets, models and declared keys.
    public var tenants: [TenantSettings] = []
    /// `prices:` — per-model overrides of the built-in table, USD per million tokens.
    public var prices = PriceTable()
    /// `prices_file:` — a LiteLLM-format price file, read by the server at start.
    public var pricesFile: String?
    /// The prices read from `prices_file`.
    public var filePrices = PriceTable()
    /// `cache: { memory }` — the bytes the response cache may hold.
    public var cacheMemory = 64 << 20
    /// `cache: { persistent: true }` — answers also kept in SQLite, loaded back at start.
    public var cachePersistent = false
    /// `cache: { shared: true }` — exact entries also kept in Redis (`state:`), so a hit on one replica
    /// serves the fleet.
    public var cacheShared = false
    /// Where limits, budgets and leases live: this process, or Redis for a fleet.
    public var state = StateSettings.local
    /// Where keys, the ledger and the audit log live: SQLite in the state dir, or a fleet's PostgreSQL.
    public var database = DatabaseSettings()
    /// `responses: { keep_days }` — how long Responses API answers are kept for `previous_response_id`
    /// (OpenAI keeps them 30 days).
    public var responsesKeepDays = 30
    /// `tracing:` — OpenTelemetry export; nil when the file has no such block (`OTEL_*` may still turn it on).
    public var tracing: TracingSettings?

    /// Built-in prices, under the file's, under the config's own.
    public var priceTable: PriceTable { PriceTable.builtIn.overlaid(with: self.filePrices).overlaid(with: self.prices) }

    /// The price of a target: its route's own `price`, else the config's `prices:` for the upstream
    /// model; local backends (Ollama, vLLM) and the simulator are free unless priced so; else the
    /// table's (built-in under the price file). Nil when unknown.
    public func price(of target: RouteTarget, in table: PriceTable) -> ModelPrice? {
        if let price = target.price { return ModelPrice(input: price.input, output: price.output, checked: "route") }
        if let price = self.prices.price(for: target.model) { return price }
        switch self.provider(target.provider)?.kind {
        case .ollama, .vllm, .simulator: return .free
        default: return table.price(for: target.model)
        }
    }

    public init(
        server: ServerSettings = ServerSettings(),
        providers: [ProviderSettings] = [],
        routes: [RouteSettings] = [],
        rules: [RouteRule] = [],
        simulator: SimulatorSettings = SimulatorSettings()
    ) {
        self.server = server
        self.providers = providers
        self.routes = routes
        self.rules = rules
        self.simulator = simulator
    }

    public func provider(_ id: String) -> ProviderSettings? {
        self.providers.first { $0.id == id }
    }

    public func tenant(_ name: String) -> TenantSettings? {
        self.tenants.first { $0.name == name }
    }

    /// Whether any provider is served by the in-process simulator.
    public var needsInProcessSimulator: Bool {
        self.providers.contains { $0.kind == .simulator && $0.baseURL == nil }
    }
}

/// `server:` — where and how the gateway listens.
///
/// - `listen` (host:port, default "127.0.0.1:8080"; env `SWITCHYARD_LISTEN`)
/// - `state_dir` (path, default "./.switchyard"; env `SWITCHYARD_STATE_DIR`): the SQLite file and admin socket
/// - `max_body` (size, default "8MiB"): larger request bodies get 413
/// - `anonymous` (bool, default true): accept requests without a key; only `true` until keys exist
/// - `log_level` (trace…critical, default "info"; env `SWITCHYARD_LOG_LEVEL`)
/// - `admin_socket` (path, default `STATE_DIR/admin.sock`): the admin API's Unix socket (mode 0600)
/// - `admin_listen` (host:port) and `admin_token` (secret): an optional TCP admin listener, which
///   exists only with a token and then requires it (`Authorization: Bearer …`)
/// - `fetch_image_urls` (bool, default false): let the gateway download image URLs (http/https,
///   `image/*` answers with status 200 only, no redirects followed) for upstreams that take inline
///   images only (Ollama, Gemini). Off by default: a gateway that fetches what clients name can be
///   pointed at internal addresses, so it refuses any host that resolves to a non-public address.
/// - `image_limits` (`per_image` 5MiB, `per_request` 20MiB, `count` 16, `timeout` 10s): what one
///   request may make the gateway fetch, see `ImageFetchLimits`
/// - `header_timeout`, `body_min_rate`, `body_grace`, `idle_timeout`, `max_connections`: how long
///   and how slowly a client may send, and how many may be connected (see `ClientLimits`).
/// - `shutdown_delay` (duration, default 0s, at most 10m; env `SWITCHYARD_SHUTDOWN_DELAY`): on SIGTERM,
///   how long the listener keeps accepting, with `/readyz` answering 503, before it closes and
///   in-flight requests finish: the time a load balancer or a Kubernetes Service needs to stop sending.
public struct ServerSettings: Sendable, Equatable {
    public var listen: ListenAddress
    public var stateDir: String
    public var maxBodyBytes: Int
    public var logLevel: String
    public var fetchImageURLs = false
    public var imageLimits = ImageFetchLimits()
    /// Accept requests without a key (as the anonymous tenant). A key that looks like ours
    /// (`sk-sy-…`) is always checked, anonymous or not.
    public var anonymous = true
    /// 429 (default) or 402 for a request refused by a money budget.
    public var budgetStatus = 429
    public var adminSocket: String?
    public var adminListen: ListenAddress?
    public var adminToken: Secret?
    /// Timeouts for clients sending requests, and the public listener's connection cap.
    public var client = ClientLimits()
    /// `server.fast_lane` (default true): whether requests the fast lane can serve take it. False sends
    /// every request through the framework lane: an operator's kill switch, and how the tests run
    /// each behaviour on both lanes.
    public var fastLane = true
    /// `server.shutdown_delay`: not ready but still listening, between SIGTERM and closing.
    public var shutdownDelay = Duration.zero
    public static let longestShutdownDelay = Duration.seconds(600)

    /// Where the admin socket is.
    public var adminSocketPath: String { self.adminSocket ?? (self.stateDir as NSString).appendingPathComponent("admin.sock") }

    public init(
        listen: ListenAddress = ListenAddress(host: "127.0.0.1", port: 8080),
        stateDir: String = "./.switchyard",
        maxBodyBytes: Int = 8 << 20,
        logLevel: String = "info"
    ) {
        self.listen = listen
        self.stateDir = stateDir
        self.maxBodyBytes = maxBodyBytes
        self.logLevel = logLevel
    }

    public static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
}

/// `server.image_limits:` — bounds on the images `fetch_image_urls` downloads for one request, so a
/// small request cannot make the gateway hold (or wait for) much more than it sent.
///
/// - `per_image` (size, default 5MiB, Anthropic's own per-image limit): a larger image is refused
/// - `per_request` (size, default 20MiB, at least `per_image`): all of one request's images together
/// - `count` (int, default 16, 1…256): image URLs one request may name; more are refused before any is fetched
/// - `timeout` (duration, default 10s): for one image, from resolving its host to its last byte
public struct ImageFetchLimits: Sendable, Equatable {
    public var perImage = 5 << 20
    public var perRequest = 20 << 20
    public var count = 16
    public var timeout: Duration = .seconds(10)

    /// The most `count` may be: more images than this is no longer one chat turn.
    public static let maxCount = 256

    public init() {}
}

/// What a client connection to the public API may take of the gateway: time to send a request, and
/// a place among the listener's connections. The timeouts cover only the client sending (a request
/// head, a request body) and the pause between its requests; while the gateway owes an answer (an
/// upstream at work, a long stream relayed) no client timeout runs: the provider's `timeouts` do.
///
/// - `header_timeout` (duration, default 10s): the whole request head must arrive within it, counted
///   from the connection's accept or from the first byte after a keep-alive pause. Past it: 408, closed.
/// - `body_min_rate` (size per second, default "1KiB") and `body_grace` (duration, default 10s): after
///   the grace, a request body must have arrived at this average rate since its head. Below it: 408
///   (when no answer has begun), closed. Slow legitimate uploads pass; a body trickled in to hold a
///   connection and its buffer does not.
/// - `idle_timeout` (duration, default 60s): a keep-alive connection with nothing owed and nothing
///   sent is closed after this long.
/// - `max_connections` (number, default the smaller of 10000 and half the process's open-file limit):
///   client connections open at once on the public listener. One more is answered 503
///   (`too_many_connections`, `Connection: close`) and closed, and counted in
///   `switchyard_client_connections_refused_total`.
public struct ClientLimits: Sendable, Equatable {
    public var headerTimeout: Duration = .seconds(10)
    public var bodyMinRate = 1024
    public var bodyGrace: Duration = .seconds(10)
    public var idleTimeout: Duration = .seconds(60)
    /// Nil: `automaticMaxConnections` of the process's open-file limit.
    public var maxConnections: Int?

    public init() {}

    /// Above any sane cap: a value past it is a typo.
    public static let maxConnectionsLimit = 1_000_000
    static let defaultMaxConnections = 10_000

    /// The cap when none is configured: 10000, or half the open-file limit when that is smaller (each
    /// client may need an upstream connection too, and the store and listeners need their own).
    public static func automaticMaxConnections(openFileLimit: Int) -> Int {
        min(Self.defaultMaxConnections, max(1, openFileLimit / 2))
    }
}

public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `127.0.0.1:8080`, `[::1]:8080`, `:8080` (all interfaces), `0.0.0.0:80`.
    public static func parse(_ text: String) -> ListenAddress? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return ListenAddress(host: host.isEmpty ? "0.0.0.0" : host, port: port)
    }

    public var description: String { self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)" }
}

/// `providers.<id>:` — one upstream.
///
/// - `kind` (openai | openai-compatible | anthropic | ollama | vllm | gemini | azure-openai | simulator)
/// - `dialect` (openai | anthropic | ollama | gemini, simulator only, default openai): which simulated API it serves
/// - `preset` (openai | groq | mistral | together | deepseek | openrouter | vllm | ollama): base URL defaults
/// - `base_url` (URL, default from the preset; for `simulator`, the in-process simulator)
/// - `api_key` (secret, usually `${ENV_VAR}`)
/// - `headers` (map of extra request headers)
/// - `timeouts` (`connect` 2s, `first_byte` 60s, `idle` 30s, `total` 10m)
/// - `max_connections` (int, default 64): the connection pool's size per event loop
/// - `default_max_tokens` (int, default 4096): sent to Anthropic upstreams when the client set none
/// - `api_version` (azure-openai only): with it, Azure's classic deployment URLs
///   (`{base_url}/deployments/{model}/chat/completions?api-version=…`); without it, the v1 API at `base_url`
/// - `responses_api` (bool; OpenAI-dialect providers only): whether the upstream serves OpenAI's
///   Responses API at `{base_url}/responses`, so `/v1/responses` passes through to it untouched.
///   Default true for `openai`, `azure-openai` (v1 API) and openai-dialect `simulator` providers,
///   false for the others (their Responses requests are translated to chat completions)
/// - `breaker` (`failures` 5, `error_rate` 0.5, `min_requests` 10, `window` 30s, `open_for` 15s,
///   `max_open_for` 5m, `probes` 1): when the provider's targets stop taking traffic
/// - `health_check` (`interval`, `path`, `timeout` 2s): an optional free request (e.g. `GET /models`)
///   whose failure takes the provider out of rotation until it passes again
/// - `load_poll` (duration; vllm, ollama and simulator only): read the backend's own queue depth
///   (vLLM `/metrics`, Ollama `/api/ps`) that often, for `least-busy` and `latency` routes
public struct ProviderSettings: Sendable, Equatable {
    public var id: String
    public var kind: ProviderKind
    /// Nil only for `simulator` providers served in-process.
    public var baseURL: String?
    public var apiKey: Secret?
    public var headers: [String: String]
    public var timeouts: UpstreamTimeouts
    public var maxConnections: Int
    public var acceptsStreamOptions: Bool
    public var wire: WireFormat
    public var defaultMaxTokens: Int
    /// Azure OpenAI's `api-version`, which selects its deployment-path URLs.
    public var apiVersion: String?
    /// `responses_api` as configured; nil = the kind's default (`speaksResponses`).
    public var responsesAPI: Bool?
    public var breaker = BreakerPolicy()
    public var healthCheck: HealthCheckSettings?
    /// How often to read the backend's own load report; nil = never.
    public var loadPoll: Duration?
    /// `tls:` — how an `https` upstream's certificate is checked.
    public var tls = UpstreamTLS()

    public init(
        id: String,
        kind: ProviderKind,
        baseURL: String?,
        apiKey: Secret? = nil,
        headers: [String: String] = [:],
        timeouts: UpstreamTimeouts = UpstreamTimeouts(),
        maxConnections: Int = 64,
        acceptsStreamOptions: Bool = true,
        wire: WireFormat? = nil,
        defaultMaxTokens: Int = 4096
    ) {
        self.id = id
        self.kind = kind
        self.baseURL = baseURL
        self.apiKey = apiKey
        self.headers = headers
        self.timeouts = timeouts
        self.maxConnections = maxConnections
        self.acceptsStreamOptions = acceptsStreamOptions
        self.wire = wire ?? {
            switch kind {
            case .anthropic: return .anthropicMessages
            case .ollama: return .ollamaChat
            case .gemini: return .geminiGenerateContent
            default: return .openAIChat
            }
        }()
        self.defaultMaxTokens = defaultMaxTokens
        self.apiVersion = nil
    }

    /// Whether Responses API requests pass through to this upstream as they are (its `/responses`),
    /// rather than being translated to its chat API. Azure serves it on its v1 API only.
    public var speaksResponses: Bool {
        guard self.wire == .openAIChat, self.apiVersion == nil else { return false }
        return self.responsesAPI ?? [.openai, .azureOpenAI, .simulator].contains(self.kind)
    }

    /// How the upstream takes its key: a separate strategy from the wire format, since vendors mix them.
    public var auth: AuthStyle {
        switch self.kind {
        case .anthropic: return .xAPIKey
        case .azureOpenAI: return .apiKeyHeader
        case .gemini: return .googAPIKey
        case .simulator:
            switch self.wire {
            case .anthropicMessages: return .xAPIKey
            case .geminiGenerateContent: return .googAPIKey
            default: return .bearer
            }
        default: return .bearer
        }
    }
}

/// `providers.<id>.tls:` — an `https` upstream's certificate is always verified, against the system
/// trust store (Debian's `ca-certificates`) and the host name or address of `base_url`.
///
/// - `ca_file` (path to PEM): certificates trusted for this provider besides the system's, for a
///   private CA (a self-hosted vLLM behind TLS, a company's TLS-inspecting egress). Read when the
///   config is applied: a file that is missing or holds no certificate refuses the config.
public struct UpstreamTLS: Sendable, Equatable {
    public var caFile: String?

    public init(caFile: String? = nil) {
        self.caFile = caFile
    }
}

public enum AuthStyle: Sendable, Equatable {
    /// `Authorization: Bearer <key>` (OpenAI and most compatible vendors).
    case bearer
    /// `x-api-key: <key>` plus `anthropic-version` (Anthropic).
    case xAPIKey
    /// `api-key: <key>` (Azure OpenAI).
    case apiKeyHeader
    /// `x-goog-api-key: <key>` (Gemini).
    case googAPIKey
}

/// The four ways an upstream call can take too long, each with its own limit.
public struct UpstreamTimeouts: Sendable, Equatable {
    /// Establishing the TCP (and TLS) connection.
    public var connect: Duration
    /// From sending the request to the response head (for a non-streaming call: the whole generation).
    public var firstByte: Duration
    /// The longest silence between two chunks of a streamed body.
    public var idle: Duration
    /// The whole exchange, however it is paced.
    public var total: Duration

    public init(
        connect: Duration = .seconds(2),
        firstByte: Duration = .seconds(60),
        idle: Duration = .seconds(30),
        total: Duration = .seconds(600)
    ) {
        self.connect = connect
        self.firstByte = firstByte
        self.idle = idle
        self.total = total
    }
}

/// One of a provider's four timeouts, named as its config key is.
public enum TimeoutPhase: String, Sendable {
    case connect
    case firstByte = "first_byte"
    case idle
    case total
}

extension UpstreamTimeouts {
    public subscript(phase: TimeoutPhase) -> Duration {
        switch phase {
        case .connect: self.connect
        case .firstByte: self.firstByte
        case .idle: self.idle
        case .total: self.total
        }
    }
}

/// `routes.<alias>:` — a client-visible model name and where it goes.
///
/// - `targets` (list of `{provider, model, weight (1), priority (0), price: {input, output}}`; price in
///   USD per million tokens, for the `cost` strategy)
/// - `strategy` (`weighted` (default) | `least-busy` | `latency` | `cost` | `priority`): how a target
///   is chosen within the best priority tier that has a healthy one; see docs/routing.md
/// - `fallbacks` (list of route aliases): tried in order once every target of this route has failed
/// - `context_fallback` (route alias): where a request goes when the upstream says the prompt is too
///   long for the model's context window
/// - `retry` (`attempts` 3, `backoff` 100ms, `max_backoff` 2s, `deadline` 10m, `max_retry_after` 10s)
/// - `hedge` (`true` or `{initial: 1s}`): after the route's observed p95 time to first token (before
///   20 samples: `initial`), a second attempt races the first on another target
public struct RouteSettings: Sendable, Equatable {
    public var alias: String
    public var targets: [RouteTarget]
    public var strategy: RouteStrategy
    public var fallbacks: [String] = []
    public var contextFallback: String?
    public var retry = RetryPolicy()
    public var hedge: HedgePolicy?
    /// `cache:` — nil = answers are not reused.
    public var cache: CacheSettings?

    public init(alias: String, targets: [RouteTarget], strategy: RouteStrategy = .weighted) {
        self.alias = alias
        self.targets = targets
        self.strategy = strategy
    }
}

public enum RouteStrategy: String, Sendable, Equatable, CaseIterable {
    case weighted
    case leastBusy = "least-busy"
    case latency
    case cost
    case priority
}

public struct RouteTarget: Sendable, Hashable {
    /// The largest weight: far beyond any useful ratio, and far from where sums of weights overflow.
    public static let heaviest = 1_000_000

    public var provider: String
    /// The model name sent upstream.
    public var model: String
    public var weight: Int
    /// Lower is preferred.
    public var priority: Int
    /// USD per million tokens; nil = unknown (the `cost` strategy puts such targets last).
    public var price: TokenPrice?

    public init(provider: String, model: String, weight: Int = 1, priority: Int = 0, price: TokenPrice? = nil) {
        self.provider = provider
        self.model = model
        self.weight = weight
        self.priority = priority
        self.price = price
    }

    public var key: TargetKey { TargetKey(provider: self.provider, model: self.model) }
}

/// Prices in USD per million tokens.
public struct TokenPrice: Sendable, Hashable {
    public var input: Double
    public var output: Double

    public init(input: Double, output: Double) {
        self.input = input
        self.output = output
    }

    public func cost(inputTokens: Int, outputTokens: Int) -> Double {
        (Double(inputTokens) * self.input + Double(outputTokens) * self.output) / 1_000_000
    }
}

/// `hedge:` — race a second attempt when the first is slower than usual.
public struct HedgePolicy: Sendable, Equatable {
    /// The delay used until the route has enough samples of its own.
    public var initialDelay: Duration
    /// Samples needed before the observed p95 replaces `initialDelay`.
    public var minimumSamples: Int

    public init(initialDelay: Duration = .seconds(1), minimumSamples: Int = 20) {
        self.initialDelay = initialDelay
        self.minimumSamples = minimumSamples
    }
}

/// `health_check:` — a request that costs no tokens, sent on its own schedule.
public struct HealthCheckSettings: Sendable, Equatable {
    public var interval: Duration
    /// Relative to the provider's base URL; nil = the kind's model list (`/models`, Ollama `/api/tags`).
    public var path: String?
    public var timeout: Duration

    public init(interval: Duration = .seconds(30), path: String? = nil, timeout: Duration = .seconds(2)) {
        self.interval = interval
        self.path = path
        self.timeout = timeout
    }
}

/// `tenants.<name>:` — a team that gets keys, limits, budgets and a bill.
///
/// - `limits` (`rpm`, `rpd`, `tpm`, `concurrency`)
/// - `budget` (`daily_usd`, `monthly_usd`)
/// - `models` (list of globs over route aliases; empty = all)
/// - `keys` (name → `{key: ${ENV}, limits, budget, models}`): keys declared in the file (GitOps),
///   besides those made with `switchyard keys create`
public struct TenantSettings: Sendable, Equatable {
    public var name: String
    public var limits = LimitSettings()
    public var models: [String] = []
    public var keys: [DeclaredKey] = []

    public init(name: String) {
        self.name = name
    }
}

/// A key declared in the config file; only its hash is kept once loaded.
public struct DeclaredKey: Sendable, Equatable {
    /// What every virtual key starts with, declared or created: a credential without it is never looked up.
    public static let prefix = "sk-sy-"

    public var name: String
    public var secret: Secret
    public var limits = LimitSettings()
    public var models: [String] = []

    public init(name: String, secret: Secret) {
        self.name = name
        self.secret = secret
    }
}

/// `simulator:` — the built-in fake providers' pacing.
///
/// - `ttft` (duration, default "200ms"): time to the first token
/// - `tokens_per_second` (number, default 80; 0 = as fast as possible)
public struct SimulatorSettings: Sendable, Equatable {
    public var timeToFirstToken: Duration
    public var tokensPerSecond: Double

    public init(timeToFirstToken: Duration = .milliseconds(200), tokensPerSecond: Double = 80) {
        self.timeToFirstToken = timeToFirstToken
        self.tokensPerSecond = tokensPerSecond
    }
}

/// A secret value (API key). It prints redacted everywhere, so it cannot leak into a log line by accident.
public struct Secret: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The real value: only for building the upstream request.
    public let exposedValue: String

    public init(_ value: String) {
        self.exposedValue = value
    }

    /// `sk-p…(51 chars)`: enough to tell keys apart, not enough to use one.
    public var redacted: String {
        guard self.exposedValue.count > 8 else { return "…(\(self.exposedValue.count) chars)" }
        return "\(self.exposedValue.prefix(4))…(\(self.exposedValue.count) chars)"
    }

    public var description: String { self.redacted }
    public var debugDescription: String { self.redacted }
}
