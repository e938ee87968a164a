extension AdminSnapshot {
    /// Assembles the snapshot from the live state: the config in force, the targets' health, the
    /// rolling windows. Pure, so it is tested without a server.
    public static func build(
        config: GatewayConfig,
        configVersion: Int,
        configSource: String,
        uptime: Duration,
        targets statuses: [TargetStatus],
        telemetry: GatewayTelemetry,
        now second: Int64,
        editedRoutes: Set<String>
    ) -> AdminSnapshot {
        let targets = statuses.map { status in
            let window = telemetry.target(status.target, now: second)
            return AdminTarget(
                provider: status.target.provider,
                model: status.target.model,
                health: status.unavailable ?? "healthy",
                breaker: status.breaker,
                drained: status.drained,
                restingSeconds: status.restingSeconds,
                inFlight: status.inFlight,
                reportedQueue: status.reportedQueue,
                requests1m: status.attempts1m,
                errorRate1m: status.attempts1m == 0 ? 0 : Double(status.failedAttempts1m) / Double(status.attempts1m),
                latencyMs: window?.latencyMs ?? Percentiles(),
                timeToFirstTokenMs: window?.timeToFirstTokenMs ?? Percentiles(),
                lastError: status.lastError,
                recentErrors: status.recentFailures.map {
                    AdminTargetError(secondsAgo: $0.secondsAgo, kind: $0.kind, faultDomain: $0.faultDomain.rawValue, message: $0.detail)
                }
            )
        }
        let routes = config.routes.map { route in
            let served = route.targets.map { telemetry.target($0.key, now: second)?.requests ?? 0 }
            let total = served.reduce(0, +)
            return AdminRoute(
                alias: route.alias,
                strategy: route.strategy.rawValue,
                targets: zip(route.targets, served).map { target, count in
                    AdminRouteTarget(
                        provider: target.provider, model: target.model, weight: target.weight, priority: target.priority,
                        share1m: total == 0 ? 0 : Double(count) / Double(total)
                    )
                },
                fallbacks: route.fallbacks,
                hedged: route.hedge != nil,
                editedAtRuntime: editedRoutes.contains(route.alias),
                requests1m: telemetry.route(route.alias, now: second)?.requests ?? 0
            )
        }
        return AdminSnapshot(
            uptimeSeconds: uptime.seconds,
            configVersion: configVersion,
            configSource: configSource,
            windows: telemetry.gatewayWindows(now: second),
            targets: targets,
            routes: routes,
            tenants: [],
            cache: nil
        )
    }
}

/// What changed between two configurations, in words an operator reads in a reload report.
public enum ConfigDiff {
    /// - Returns: the changes that apply live, and the ones that need a restart.
    public static func between(_ old: GatewayConfig, _ new: GatewayConfig) -> (changes: [String], needsRestart: [String]) {
        var changes: [String] = []
        let oldProviders = Dictionary(old.providers.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let newProviders = Dictionary(new.providers.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        for provider in new.providers {
            guard let before = oldProviders[provider.id] else {
                changes.append("provider \(provider.id): added")
                continue
            }
            if before != provider { changes.append("provider \(provider.id): changed") }
        }
        for provider in old.providers where newProviders[provider.id] == nil {
            changes.append("provider \(provider.id): removed")
        }

        let oldRoutes = Dictionary(old.routes.map { ($0.alias, $0) }, uniquingKeysWith: { first, _ in first })
        let newRoutes = Dictionary(new.routes.map { ($0.alias, $0) }, uniquingKeysWith: { first, _ in first })
        for route in new.routes {
            guard let before = oldRoutes[route.alias] else {
                changes.append("route \(route.alias): added")
                continue
            }
            let parts = self.changedParts(before, route)
            if !parts.isEmpty { changes.append("route \(route.alias): changed (\(parts.joined(separator: ", ")))") }
        }
        for route in old.routes where newRoutes[route.alias] == nil {
            changes.append("route \(route.alias): removed")
        }
        if old.rules != new.rules { changes.append("rules: \(old.rules.count) → \(new.rules.count)") }

        var needsRestart: [String] = []
        if old.server.listen != new.server.listen { needsRestart.append("server.listen") }
        if old.server.stateDir != new.server.stateDir { needsRestart.append("server.state_dir") }
        if old.server.maxBodyBytes != new.server.maxBodyBytes { needsRestart.append("server.max_body") }
        if old.server.logLevel != new.server.logLevel { needsRestart.append("server.log_level") }
        if old.server.fetchImageURLs != new.server.fetchImageURLs { needsRestart.append("server.fetch_image_urls") }
        if old.server.imageLimits != new.server.imageLimits { needsRestart.append("server.image_limits") }
        if old.server.client != new.server.client { needsRestart.append("server client limits (header_timeout, body_min_rate, body_grace, idle_timeout, max_connections)") }
        if old.simulator != new.simulator { needsRestart.append("simulator") }
        if old.state != new.state { needsRestart.append("state") }
        if old.database != new.database { needsRestart.append("database") }
        if old.responsesKeepDays != new.responsesKeepDays { needsRestart.append("responses") }
        if old.tracing != new.tracing { needsRestart.append("tracing") }
        if old.cacheShared != new.cacheShared { needsRestart.append("cache.shared") }
        return (changes, needsRestart)
    }

    public static func changedParts(_ old: RouteSettings, _ new: RouteSettings) -> [String] {
        var parts: [String] = []
        if old.targets != new.targets { parts.append("targets") }
        if old.strategy != new.strategy { parts.append("strategy \(old.strategy.rawValue) → \(new.strategy.rawValue)") }
        if old.fallbacks != new.fallbacks || old.contextFallback != new.contextFallback { parts.append("fallbacks") }
        if old.retry != new.retry { parts.append("retry") }
        if old.hedge != new.hedge { parts.append("hedge") }
        return parts
    }
}
