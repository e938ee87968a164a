import Foundation

/// The admin API's messages (`/v1/...` on the admin socket), shared by the server, `switchyard ctl`
/// and the console. JSON keys are the property names; every type decodes what it encodes.
public enum AdminJSON {
    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }

    public static func decoder() -> JSONDecoder {
        JSONDecoder()
    }
}

/// `GET /v1/snapshot`: everything the console draws, computed from rolling windows kept as traffic
/// flows (never by scanning the ledger).
public struct AdminSnapshot: Codable, Sendable, Equatable {
    public var uptimeSeconds: Double
    /// Bumped by every applied reload or route edit.
    public var configVersion: Int
    /// Where the configuration came from: a file path, or "environment".
    public var configSource: String
    /// The whole gateway over "10s", "1m" and "15m".
    public var windows: [String: WindowSummary]
    public var targets: [AdminTarget]
    public var routes: [AdminRoute]
    /// Per tenant; empty until tenants exist.
    public var tenants: [AdminTenant]
    /// Nil until caching exists.
    public var cache: AdminCache?
    /// The replicas of this gateway's fleet that beat recently, itself included; nil outside a fleet
    /// (`state: local`) or when the fleet's state cannot be read.
    public var fleet: [AdminReplica]?
    /// Where the fleet's state lives and how it answers; nil outside a fleet.
    public var sharedState: AdminSharedState?
    /// Where the ledger is written and how far behind it is.
    public var ledger: AdminLedger?

    public init(
        uptimeSeconds: Double,
        configVersion: Int,
        configSource: String,
        windows: [String: WindowSummary],
        targets: [AdminTarget],
        routes: [AdminRoute],
        tenants: [AdminTenant],
        cache: AdminCache?
    ) {
        self.uptimeSeconds = uptimeSeconds
        self.configVersion = configVersion
        self.configSource = configSource
        self.windows = windows
        self.targets = targets
        self.routes = routes
        self.tenants = tenants
        self.cache = cache
    }
}

/// The ledger's database and this replica's rows not yet in it.
public struct AdminLedger: Codable, Sendable, Equatable {
    /// `sqlite` or the PostgreSQL URL without its password.
    public var database: String
    public var rowsWritten: Int
    /// Rows waiting in memory for the next write.
    public var rowsQueued: Int
    /// Rows kept on this replica's disk while the shared database did not take them.
    public var rowsJournalled: Int
    /// How old the oldest row not yet in the database is; 0 when none waits.
    public var secondsBehind: Double
    /// Whether the shared database failed its last write.
    public var databaseDown: Bool

    public init(database: String, rowsWritten: Int, rowsQueued: Int, rowsJournalled: Int, secondsBehind: Double, databaseDown: Bool) {
        self.database = database
        self.rowsWritten = rowsWritten
        self.rowsQueued = rowsQueued
        self.rowsJournalled = rowsJournalled
        self.secondsBehind = secondsBehind
        self.databaseDown = databaseDown
    }
}

/// A fleet's shared state (Redis), as this replica sees it.
public struct AdminSharedState: Codable, Sendable, Equatable {
    /// This replica's id in the roll call.
    public var replica: String
    /// The URL without its password.
    public var url: String
    /// `deny` or `allow`: what admission does while Redis does not answer.
    public var onError: String
    /// Whether the roll call could be read just now.
    public var reachable: Bool
    /// Admissions Redis could not decide since start, refused (`deny`) or let through (`allow`).
    public var unavailableDenied: Int
    public var unavailableAllowed: Int
    /// The shared exact cache's hits and the lookups or stores Redis did not answer; nil when not shared.
    public var sharedCacheHits: Int?
    public var sharedCacheFailures: Int?

    public init(
        replica: String, url: String, onError: String, reachable: Bool, unavailableDenied: Int, unavailableAllowed: Int,
        sharedCacheHits: Int? = nil, sharedCacheFailures: Int? = nil
    ) {
        self.replica = replica
        self.url = url
        self.onError = onError
        self.reachable = reachable
        self.unavailableDenied = unavailableDenied
        self.unavailableAllowed = unavailableAllowed
        self.sharedCacheHits = sharedCacheHits
        self.sharedCacheFailures = sharedCacheFailures
    }
}

/// One replica of a fleet, as its last heartbeat (every 2 s) described it.
public struct AdminReplica: Codable, Sendable, Equatable {
    /// The host name and listening port.
    public var id: String
    /// Where it listens.
    public var address: String
    public var version: String
    /// A digest of its config file (`+edits` when routes were edited at runtime): replicas whose
    /// digest differs from the others' run another config.
    public var configDigest: String
    public var configVersion: Int
    /// Seconds since 1970 when it started.
    public var upSince: Double
    public var requestsLastMinute: Int
    public var errorRate: Double
    /// Seconds since its last heartbeat, on Redis's clock.
    public var lastSeenSecondsAgo: Double
    /// Why its last reload was rejected (it runs its previous config); absent once a reload succeeds.
    public var reloadProblem: String?

    public init(
        id: String, address: String, version: String, configDigest: String, configVersion: Int, upSince: Double, requestsLastMinute: Int, errorRate: Double,
        lastSeenSecondsAgo: Double = 0, reloadProblem: String? = nil
    ) {
        self.id = id
        self.address = address
        self.version = version
        self.configDigest = configDigest
        self.configVersion = configVersion
        self.upSince = upSince
        self.requestsLastMinute = requestsLastMinute
        self.errorRate = errorRate
        self.lastSeenSecondsAgo = lastSeenSecondsAgo
        self.reloadProblem = reloadProblem
    }
}

/// One provider target: its health and the last minute of its traffic.
public struct AdminTarget: Codable, Sendable, Equatable {
    public var provider: String
    public var model: String
    /// "healthy", or why it takes no new requests: drained, resting, breaker_open, health_check_failing.
    public var health: String
    /// closed | open | half_open
    public var breaker: String
    public var drained: Bool
    public var restingSeconds: Double?
    public var inFlight: Int
    public var reportedQueue: Int?
    public var requests1m: Int
    public var errorRate1m: Double
    public var latencyMs: Percentiles
    public var timeToFirstTokenMs: Percentiles
    public var lastError: String?
    /// Its last failed attempts, newest first (a failover's hidden failures included).
    public var recentErrors: [AdminTargetError]?

    public init(
        provider: String,
        model: String,
        health: String,
        breaker: String,
        drained: Bool,
        restingSeconds: Double?,
        inFlight: Int,
        reportedQueue: Int?,
        requests1m: Int,
        errorRate1m: Double,
        latencyMs: Percentiles,
        timeToFirstTokenMs: Percentiles,
        lastError: String?,
        recentErrors: [AdminTargetError]? = nil
    ) {
        self.provider = provider
        self.model = model
        self.health = health
        self.breaker = breaker
        self.drained = drained
        self.restingSeconds = restingSeconds
        self.inFlight = inFlight
        self.reportedQueue = reportedQueue
        self.requests1m = requests1m
        self.errorRate1m = errorRate1m
        self.latencyMs = latencyMs
        self.timeToFirstTokenMs = timeToFirstTokenMs
        self.lastError = lastError
        self.recentErrors = recentErrors
    }
}

/// A failed attempt at a target.
public struct AdminTargetError: Codable, Sendable, Equatable {
    /// How long before the snapshot it failed.
    public var secondsAgo: Double
    /// `server_error`, `timeout`, `rate_limited`, `connect`, …
    public var kind: String
    /// caller | policy | provider | gateway
    public var faultDomain: String
    public var message: String

    public init(secondsAgo: Double, kind: String, faultDomain: String, message: String) {
        self.secondsAgo = secondsAgo
        self.kind = kind
        self.faultDomain = faultDomain
        self.message = message
    }
}

public struct AdminRoute: Codable, Sendable, Equatable {
    public var alias: String
    public var strategy: String
    public var targets: [AdminRouteTarget]
    public var fallbacks: [String]
    public var hedged: Bool
    /// True when the route was changed through the admin API since the file was last loaded.
    public var editedAtRuntime: Bool
    public var requests1m: Int

    public init(
        alias: String,
        strategy: String,
        targets: [AdminRouteTarget],
        fallbacks: [String],
        hedged: Bool,
        editedAtRuntime: Bool,
        requests1m: Int
    ) {
        self.alias = alias
        self.strategy = strategy
        self.targets = targets
        self.fallbacks = fallbacks
        self.hedged = hedged
        self.editedAtRuntime = editedAtRuntime
        self.requests1m = requests1m
    }
}

public struct AdminRouteTarget: Codable, Sendable, Equatable {
    public var provider: String
    public var model: String
    public var weight: Int
    public var priority: Int
    /// Share of the route's answered requests over the last minute (0…1).
    public var share1m: Double

    public init(
        provider: String,
        model: String,
        weight: Int,
        priority: Int,
        share1m: Double
    ) {
        self.provider = provider
        self.model = model
        self.weight = weight
        self.priority = priority
        self.share1m = share1m
    }
}

public struct AdminTenant: Codable, Sendable, Equatable {
    public var name: String
    public var requestsToday: Int
    public var tokensToday: Int
    public var costTodayUsd: Double
    /// The larger of the daily and monthly budgets' used shares; nil without a budget.
    public var budgetUsed: Double?
    public var limitRejections: Int
    /// The budgets themselves, so a console can draw spend against them and project the day.
    public var dailyBudgetUsd: Double?
    public var monthlyBudgetUsd: Double?
    public var costMonthUsd: Double?
    /// Today's refusals by this replica's admission, by reason (the error code: `rate_limited`,
    /// `budget_exceeded`, …).
    public var rejectionsByReason: [String: Int]?

    public init(
        name: String,
        requestsToday: Int,
        tokensToday: Int,
        costTodayUsd: Double,
        budgetUsed: Double?,
        limitRejections: Int,
        dailyBudgetUsd: Double? = nil,
        monthlyBudgetUsd: Double? = nil,
        costMonthUsd: Double? = nil,
        rejectionsByReason: [String: Int]? = nil
    ) {
        self.name = name
        self.requestsToday = requestsToday
        self.tokensToday = tokensToday
        self.costTodayUsd = costTodayUsd
        self.budgetUsed = budgetUsed
        self.limitRejections = limitRejections
        self.dailyBudgetUsd = dailyBudgetUsd
        self.monthlyBudgetUsd = monthlyBudgetUsd
        self.costMonthUsd = costMonthUsd
        self.rejectionsByReason = rejectionsByReason
    }
}

/// `GET /v1/tenants/{name}`: one tenant's day in detail, for the console's tenant view.
public struct AdminTenantDetail: Codable, Sendable, Equatable {
    public var name: String
    /// Today's spend by `provider/model`, from the ledger (the fleet's, when it is shared), most first.
    public var models: [AdminSpend]
    /// Today's spend by key, every live key of the tenant listed (unused ones at zero), most first.
    public var keys: [AdminSpend]
    /// This replica's last refusals of the tenant's requests, newest first.
    public var lastRejections: [AdminRejection]
    /// Why the ledger could not be read (the lists above are then empty), nil when it was.
    public var ledgerProblem: String?

    public init(name: String, models: [AdminSpend], keys: [AdminSpend], lastRejections: [AdminRejection], ledgerProblem: String? = nil) {
        self.name = name
        self.models = models
        self.keys = keys
        self.lastRejections = lastRejections
        self.ledgerProblem = ledgerProblem
    }
}

/// Spend of one model or key today.
public struct AdminSpend: Codable, Sendable, Equatable {
    /// `provider/model`, or the key's name.
    public var name: String
    /// The key's id (what `DELETE /v1/keys/{id}` takes) and prefix; nil for a model.
    public var keyId: String?
    public var keyPrefix: String?
    public var requests: Int
    public var tokens: Int
    public var costUsd: Double

    public init(name: String, keyId: String? = nil, keyPrefix: String? = nil, requests: Int, tokens: Int, costUsd: Double) {
        self.name = name
        self.keyId = keyId
        self.keyPrefix = keyPrefix
        self.requests = requests
        self.tokens = tokens
        self.costUsd = costUsd
    }
}

/// A request the tenant's limits refused.
public struct AdminRejection: Codable, Sendable, Equatable {
    /// Seconds since 1970.
    public var time: Double
    /// The error code (`rate_limited`, `budget_exceeded`, …).
    public var reason: String
    public var status: Int
    public var message: String

    public init(time: Double, reason: String, status: Int, message: String) {
        self.time = time
        self.reason = reason
        self.status = status
        self.message = message
    }
}

public struct AdminCache: Codable, Sendable, Equatable {
    public var entries: Int
    public var bytes: Int
    public var hitRate: Double
    public var semanticHitRate: Double
    public var missRate: Double
    /// The semantic index: vectors of last user turns, and the partitions they fall in.
    public var vectors: Int
    public var partitions: Int
    /// Calls to a provider's embedder that failed or were too slow (the request went on as a miss).
    public var embeddingFailures: Int

    public init(
        entries: Int,
        bytes: Int,
        hitRate: Double,
        semanticHitRate: Double,
        missRate: Double,
        vectors: Int = 0,
        partitions: Int = 0,
        embeddingFailures: Int = 0
    ) {
        self.entries = entries
        self.bytes = bytes
        self.hitRate = hitRate
        self.semanticHitRate = semanticHitRate
        self.missRate = missRate
        self.vectors = vectors
        self.partitions = partitions
        self.embeddingFailures = embeddingFailures
    }

    /// The semantic index's fields came later: a console reads a gateway without them as zeros.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.entries = try container.decode(Int.self, forKey: .entries)
        self.bytes = try container.decode(Int.self, forKey: .bytes)
        self.hitRate = try container.decode(Double.self, forKey: .hitRate)
        self.semanticHitRate = try container.decode(Double.self, forKey: .semanticHitRate)
        self.missRate = try container.decode(Double.self, forKey: .missRate)
        self.vectors = try container.decodeIfPresent(Int.self, forKey: .vectors) ?? 0
        self.partitions = try container.decodeIfPresent(Int.self, forKey: .partitions) ?? 0
        self.embeddingFailures = try container.decodeIfPresent(Int.self, forKey: .embeddingFailures) ?? 0
    }
}

/// One entry of `GET /v1/events` (Server-Sent Events, `data:` lines of this JSON).
public struct AdminEvent: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        case request
        case breakerOpened = "breaker_opened"
        case breakerReset = "breaker_reset"
        case drained
        case undrained
        case routeUpdated = "route_updated"
        case configReloaded = "config_reloaded"
        case reloadRejected = "reload_rejected"
        case cacheFlushed = "cache_flushed"
        case targetRested = "target_rested"
    }

    /// Increases by one per event, so a reader that fell behind sees how many it missed.
    public var seq: Int
    /// Seconds since 1970.
    public var time: Double
    public var kind: Kind
    public var message: String
    public var requestId: String?
    public var route: String?
    public var provider: String?
    public var model: String?
    public var status: Int?
    public var latencyMs: Double?
    /// caller | policy | provider | gateway, for failed requests.
    public var failure: String?

    public init(kind: Kind, message: String) {
        self.seq = 0
        self.time = 0
        self.kind = kind
        self.message = message
    }
}

/// `PUT /v1/routes/{alias}`: a route's new strategy and targets.
public struct RouteEdit: Codable, Sendable, Equatable {
    public var strategy: String?
    public var targets: [Target]

    public struct Target: Codable, Sendable, Equatable {
        public var provider: String
        public var model: String
        public var weight: Int?
        public var priority: Int?

        public init(provider: String, model: String, weight: Int? = nil, priority: Int? = nil) {
            self.provider = provider
            self.model = model
            self.weight = weight
            self.priority = priority
        }
    }

    public init(strategy: String? = nil, targets: [Target]) {
        self.strategy = strategy
        self.targets = targets
    }

    /// The route with this edit applied, or every reason it cannot be.
    public func applied(to route: RouteSettings, providers: [String]) throws(AdminProblem) -> RouteSettings {
        var problems: [String] = []
        var edited = route
        if let name = self.strategy {
            if let strategy = RouteStrategy(rawValue: name) {
                edited.strategy = strategy
            } else {
                problems.append("unknown strategy '\(name)'; use one of \(RouteStrategy.allCases.map(\.rawValue).joined(separator: ", "))")
            }
        }
        if self.targets.isEmpty { problems.append("a route needs at least one target") }
        edited.targets = []
        for (index, target) in self.targets.enumerated() {
            if !providers.contains(target.provider) {
                problems.append("targets[\(index)]: unknown provider '\(target.provider)' (known: \(providers.joined(separator: ", ")))")
            }
            if target.model.isEmpty { problems.append("targets[\(index)]: 'model' is empty") }
            if let weight = target.weight, !(0...RouteTarget.heaviest).contains(weight) {
                problems.append("targets[\(index)]: weight must be 0 to \(RouteTarget.heaviest)")
            }
            // A target kept from the old route keeps its price.
            let price = route.targets.first { $0.provider == target.provider && $0.model == target.model }?.price
            edited.targets.append(RouteTarget(provider: target.provider, model: target.model, weight: target.weight ?? 1, priority: target.priority ?? 0, price: price))
        }
        if edited.strategy == .weighted && !edited.targets.isEmpty && edited.targets.allSatisfy({ $0.weight == 0 }) {
            problems.append("every target has weight 0, so none can be chosen")
        }
        guard problems.isEmpty else { throw AdminProblem(status: 422, code: "invalid_route", message: problems.joined(separator: "; ")) }
        return edited
    }
}

/// What `POST /v1/config/reload` (and SIGHUP) did.
public struct ReloadReport: Codable, Sendable, Equatable {
    public var configVersion: Int
    /// "route gpt-4o: changed (targets)", "provider groq: added"…; empty when nothing changed.
    public var changes: [String]
    /// Settings that only a restart applies (listen address, state dir…).
    public var needsRestart: [String]
    /// Runtime route edits the file replaced.
    public var discardedEdits: [String]

    public init(configVersion: Int, changes: [String], needsRestart: [String], discardedEdits: [String]) {
        self.configVersion = configVersion
        self.changes = changes
        self.needsRestart = needsRestart
        self.discardedEdits = discardedEdits
    }
}

/// `{"ok":true,…}` answers of the action endpoints.
public struct AdminAck: Codable, Sendable, Equatable {
    public var ok: Bool
    public var message: String

    public init(message: String) {
        self.ok = true
        self.message = message
    }
}

/// An admin call that failed: its HTTP status and `{"error":{"code","message"}}`.
public struct AdminProblem: Error, Codable, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    public var code: String
    public var message: String

    public init(status: Int, code: String, message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    public var description: String { self.message }

    public struct Envelope: Codable, Sendable {
        public var error: Body

        public struct Body: Codable, Sendable {
            public var code: String
            public var message: String
        }
    }

    public var envelope: Envelope { Envelope(error: .init(code: self.code, message: self.message)) }
}

/// `POST /v1/keys`: a new virtual key for a tenant.
public struct KeyRequest: Codable, Sendable, Equatable {
    public var tenant: String
    public var name: String?
    public var rpm: Int?
    public var rpd: Int?
    public var tpm: Int?
    public var concurrency: Int?
    public var budgetDailyUsd: Double?
    public var budgetMonthlyUsd: Double?
    /// Globs over route aliases; empty or nil = every model.
    public var models: [String]?
    public var expiresInSeconds: Double?

    public init(tenant: String, name: String? = nil) {
        self.tenant = tenant
        self.name = name
    }

    public var limits: LimitSettings {
        LimitSettings(
            requestsPerMinute: self.rpm, requestsPerDay: self.rpd, tokensPerMinute: self.tpm, concurrency: self.concurrency,
            dailyBudgetUSD: self.budgetDailyUsd, monthlyBudgetUSD: self.budgetMonthlyUsd
        )
    }

    /// Every problem at once, or nil.
    public var problems: String? {
        var problems: [String] = []
        if self.tenant.isEmpty || self.tenant.contains(where: { $0.isWhitespace }) { problems.append("'tenant' must be a non-empty name without spaces") }
        for (name, value) in [("rpm", self.rpm), ("rpd", self.rpd), ("tpm", self.tpm), ("concurrency", self.concurrency)] {
            if let value, value < 1 { problems.append("'\(name)' must be at least 1") }
        }
        for (name, value) in [("budgetDailyUsd", self.budgetDailyUsd), ("budgetMonthlyUsd", self.budgetMonthlyUsd)] {
            if let value, value < 0 { problems.append("'\(name)' must be 0 or more") }
        }
        if let expires = self.expiresInSeconds, expires <= 0 { problems.append("'expiresInSeconds' must be positive") }
        return problems.isEmpty ? nil : problems.joined(separator: "; ")
    }
}

/// A key as listed: never the key itself.
public struct KeyView: Codable, Sendable, Equatable {
    public var id: String
    public var tenant: String
    public var name: String
    /// The first 12 characters, to recognise it.
    public var prefix: String
    /// "api" (made with `keys create`) or "config" (declared in the file).
    public var source: String
    public var createdAt: Double
    public var expiresAt: Double?
    public var revokedAt: Double?
    public var limits: String
    public var models: String

    public init(id: String, tenant: String, name: String, prefix: String, source: String, createdAt: Double, expiresAt: Double?, revokedAt: Double?, limits: String, models: String) {
        self.id = id
        self.tenant = tenant
        self.name = name
        self.prefix = prefix
        self.source = source
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.revokedAt = revokedAt
        self.limits = limits
        self.models = models
    }
}

/// The answer to `POST /v1/keys`: the only time the key is shown.
public struct CreatedKey: Codable, Sendable, Equatable {
    public var key: String
    public var view: KeyView

    public init(key: String, view: KeyView) {
        self.key = key
        self.view = view
    }
}

extension LimitSettings {
    /// `rpm 60, tpm 100000, $5/day` for listings.
    public var summary: String {
        var parts: [String] = []
        if let value = self.requestsPerMinute { parts.append("rpm \(value)") }
        if let value = self.requestsPerDay { parts.append("rpd \(value)") }
        if let value = self.tokensPerMinute { parts.append("tpm \(value)") }
        if let value = self.concurrency { parts.append("concurrency \(value)") }
        if let value = self.dailyBudgetUSD { parts.append("$\(value)/day") }
        if let value = self.monthlyBudgetUSD { parts.append("$\(value)/month") }
        return parts.isEmpty ? "unlimited" : parts.joined(separator: ", ")
    }
}
