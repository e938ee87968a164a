internal import Yams

/// Reads a YAML config file into a validated `GatewayConfig`.
///
/// It never stops at the first problem: every unknown key (with a suggestion), wrong type, missing
/// variable and dangling reference is collected with its line, so one run of `config check` lists all.
/// A file with any problem yields no config at all: there is no half-applied configuration.
public enum ConfigLoader {
    /// Keys whose features are not in this build yet. They are rejected, never silently ignored:
    /// an operator who configures a budget must not believe it is enforced.
    static let notYetAvailable: [String: String] = [:]

    /// - Parameters:
    ///   - yaml: the file's text.
    ///   - source: the file name, for messages.
    ///   - environment: for `${VAR}` expansion.
    /// - Throws: `ConfigError` listing every problem.
    public static func load(yaml: String, source: String, environment: [String: String]) throws(ConfigError) -> GatewayConfig {
        var reader = Reader(environment: environment)
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw ConfigError(source: source, issues: [Self.issue(for: error)])
        } catch {
            throw ConfigError(source: source, issues: [ConfigIssue(line: nil, column: nil, path: "", message: "\(error)")])
        }
        let config = reader.readConfig(root)
        guard reader.issues.isEmpty, let config else {
            throw ConfigError(source: source, issues: reader.issues)
        }
        return config
    }

    private static func issue(for error: YamlError) -> ConfigIssue {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let detail = context.map { "\($0.text) \(problem)" } ?? problem
            return ConfigIssue(line: mark.line, column: mark.column, path: "", message: "invalid YAML: \(detail)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let names = duplicates.map { "'\($0)'" }.joined(separator: ", ")
            return ConfigIssue(line: context.mark.line, column: context.mark.column, path: "", message: "duplicate key \(names) in one mapping")
        default:
            return ConfigIssue(line: nil, column: nil, path: "", message: "invalid YAML: \(error)")
        }
    }
}

// MARK: - Reader

private struct Reader {
    let environment: [String: String]
    var issues: [ConfigIssue] = []

    init(environment: [String: String]) {
        self.environment = environment
    }

    mutating func report(_ node: Node?, _ path: String, _ message: String) {
        self.issues.append(ConfigIssue(line: node?.mark?.line, column: node?.mark?.column, path: path, message: message))
    }

    mutating func readConfig(_ root: Node?) -> GatewayConfig? {
        guard let root else {
            self.report(nil, "", "the file is empty")
            return nil
        }
        let topKeys = ["server", "providers", "routes", "rules", "simulator", "tenants", "prices", "prices_file", "cache", "state", "database", "tracing", "responses"] + ConfigLoader.notYetAvailable.keys.sorted()
        guard let top = self.mapping(root, "", allowed: topKeys) else { return nil }

        var config = GatewayConfig()
        var sharedCacheNode: Node?
        for (key, keyNode, value) in top {
            switch key {
            case "server": config.server = self.readServer(value)
            case "simulator": config.simulator = self.readSimulator(value)
            case "providers": config.providers = self.readProviders(value)
            case "routes": config.routes = self.readRoutes(value)
            case "rules": config.rules = self.readRules(value)
            case "tenants": config.tenants = self.readTenants(value)
            case "prices": config.prices = self.readPrices(value)
            case "prices_file": config.pricesFile = self.string(value, "prices_file")
            case "state": config.state = self.readState(value) ?? config.state
            case "database": config.database = self.readDatabase(value) ?? config.database
            case "tracing": config.tracing = self.readTracing(value)
            case "responses":
                for (_, _, entry) in self.mapping(value, "responses", allowed: ["keep_days"]) ?? [] {
                    guard let days = self.int(entry, "responses.keep_days") else { continue }
                    guard (1...DatabaseSettings.longestRetentionDays).contains(days) else {
                        self.report(entry, "responses.keep_days", "must be 1-\(DatabaseSettings.longestRetentionDays) days")
                        continue
                    }
                    config.responsesKeepDays = days
                }
            case "cache":
                for (key, _, entry) in self.mapping(value, "cache", allowed: ["memory", "persistent", "shared"]) ?? [] {
                    if key == "memory" { config.cacheMemory = self.size(entry, "cache.memory") ?? config.cacheMemory }
                    if key == "persistent" { config.cachePersistent = self.bool(entry, "cache.persistent") ?? false }
                    if key == "shared" {
                        config.cacheShared = self.bool(entry, "cache.shared") ?? false
                        sharedCacheNode = entry
                    }
                }
            default:
                let feature = ConfigLoader.notYetAvailable[key] ?? key
                self.report(keyNode, key, "\(feature) are not available in this version of Switchyard; remove this section")
            }
        }
        if config.cacheShared, config.state == .local, let node = sharedCacheNode {
            self.report(node, "cache.shared", "a shared cache lives in Redis: it needs 'state: redis://…'")
        }
        self.checkReferences(config, top)
        return config
    }

    // MARK: Sections

    /// `state: local`, `state: redis://…`, or `state: { url: redis://…, on_error, timeout, lease_ttl }`.
    mutating func readState(_ node: Node) -> StateSettings? {
        var url: (String, Node)?
        var options: [(String, Node, Node)] = []
        if case .mapping = node {
            for entry in self.mapping(node, "state", allowed: ["url", "on_error", "timeout", "lease_ttl"]) ?? [] {
                if entry.0 == "url" {
                    url = self.string(entry.2, "state.url").map { ($0, entry.2) }
                } else {
                    options.append(entry)
                }
            }
            guard url != nil else {
                self.report(node, "state.url", "is required: redis://host:port[/db]")
                return nil
            }
        } else {
            url = self.string(node, "state").map { ($0, node) }
        }
        guard let (text, urlNode) = url else { return nil }
        if text == "local" {
            if !options.isEmpty { self.report(node, "state", "options apply to a redis:// URL, not to 'local'") }
            return .local
        }
        var settings: RedisStateSettings
        do {
            settings = try RedisStateSettings.parse(text)
        } catch {
            self.report(urlNode, "state", "'\(text.prefix(80))' \(error.message)")
            return nil
        }
        for (key, _, value) in options {
            switch key {
            case "on_error":
                guard let text = self.string(value, "state.on_error") else { continue }
                guard let policy = RedisStateSettings.OnError(rawValue: text) else {
                    self.report(value, "state.on_error", "must be deny or allow")
                    continue
                }
                settings.onError = policy
            case "timeout": settings.timeout = self.positiveDuration(value, "state.timeout") ?? settings.timeout
            case "lease_ttl": settings.leaseTTL = self.positiveDuration(value, "state.lease_ttl") ?? settings.leaseTTL
            default: continue
            }
        }
        return .redis(settings)
    }

    /// `tracing: { endpoint, service_name, sampler, sample_ratio, resource_attributes, headers, protocol,
    /// capture_content, max_queue_size, export_timeout, enabled }`; nil when `enabled: false`.
    mutating func readTracing(_ node: Node) -> TracingSettings? {
        var settings = TracingSettings()
        var enabled = true
        let keys = [
            "endpoint", "service_name", "sampler", "sample_ratio", "resource_attributes", "headers", "protocol", "capture_content", "max_queue_size",
            "export_timeout", "enabled",
        ]
        for (key, _, value) in self.mapping(node, "tracing", allowed: keys) ?? [] {
            let path = "tracing.\(key)"
            switch key {
            case "endpoint":
                guard let url = self.string(value, path) else { continue }
                guard url.hasPrefix("http://") || url.hasPrefix("https://"), url.count > "https://".count else {
                    self.report(value, path, "must be an http:// or https:// URL of an OTLP/HTTP collector (e.g. http://127.0.0.1:4318)")
                    continue
                }
                settings.endpoint = url
            case "service_name": settings.serviceName = self.string(value, path) ?? settings.serviceName
            case "sampler":
                guard let text = self.string(value, path) else { continue }
                guard let sampler = TracingSettings.Sampler(rawValue: text) else {
                    self.report(value, path, "must be one of \(TracingSettings.Sampler.allCases.map(\.rawValue).joined(separator: ", "))")
                    continue
                }
                settings.sampler = sampler
            case "sample_ratio":
                guard let ratio = self.double(value, path) else { continue }
                guard (0...1).contains(ratio) else {
                    self.report(value, path, "must be from 0 to 1 (0.01 keeps one trace in a hundred)")
                    continue
                }
                settings.sampleRatio = ratio
            case "resource_attributes", "headers":
                for (name, _, entry) in self.mapping(value, path, allowed: nil) ?? [] {
                    guard let text = self.string(entry, "\(path).\(name)") else { continue }
                    if key == "headers" { settings.headers[name] = Secret(text) } else { settings.resourceAttributes[name] = text }
                }
            case "protocol":
                guard let text = self.string(value, path) else { continue }
                guard let wire = TracingSettings.WireProtocol(rawValue: text) else {
                    self.report(value, path, "must be http/protobuf or http/json (gRPC is not built in)")
                    continue
                }
                settings.wireProtocol = wire
            case "capture_content": settings.captureContent = self.bool(value, path) ?? false
            case "max_queue_size":
                guard let size = self.int(value, path, atLeast: 1) else { continue }
                guard size <= TracingSettings.largestQueue else {
                    self.report(value, path, "must be at most \(TracingSettings.largestQueue)")
                    continue
                }
                settings.maxQueueSize = size
            case "export_timeout": settings.exportTimeout = self.positiveDuration(value, path) ?? settings.exportTimeout
            case "enabled": enabled = self.bool(value, path) ?? true
            default: continue
            }
        }
        if !settings.sampler.takesRatio, settings.sampleRatio != 1 {
            self.report(node, "tracing.sample_ratio", "applies to the traceidratio samplers; set sampler: parentbased_traceidratio")
        }
        return enabled ? settings : nil
    }

    /// `database: sqlite`, `database: postgres://…`, or `database: { url, retention_days }`.
    mutating func readDatabase(_ node: Node) -> DatabaseSettings? {
        var settings = DatabaseSettings()
        var url: (String, Node)?
        if case .mapping = node {
            for (key, _, value) in self.mapping(node, "database", allowed: ["url", "retention_days"]) ?? [] {
                switch key {
                case "url": url = self.string(value, "database.url").map { ($0, value) }
                default:
                    guard let days = self.int(value, "database.retention_days") else { continue }
                    guard (1...DatabaseSettings.longestRetentionDays).contains(days) else {
                        self.report(value, "database.retention_days", "must be 1-\(DatabaseSettings.longestRetentionDays) days")
                        continue
                    }
                    settings.retentionDays = days
                }
            }
        } else {
            url = self.string(node, "database").map { ($0, node) }
        }
        guard let (text, urlNode) = url, text != "sqlite" else { return settings }
        do {
            settings.location = .postgres(try PostgresSettings.parse(text))
        } catch {
            // The URL may hold a password: only its scheme and host part are echoed.
            self.report(urlNode, "database", "\(error.message)")
            return nil
        }
        return settings
    }

    mutating func readServer(_ node: Node) -> ServerSettings {
        var server = ServerSettings()
        defer {
            if server.adminListen != nil && server.adminToken == nil {
                self.report(node, "server.admin_listen", "a TCP admin listener needs server.admin_token; without one the admin API stays on its Unix socket")
            }
        }
        let keys = [
            "listen", "state_dir", "max_body", "anonymous", "log_level", "fetch_image_urls", "image_limits", "admin_socket", "admin_listen", "admin_token", "budget_status",
            "header_timeout", "body_min_rate", "body_grace", "idle_timeout", "max_connections", "fast_lane",
            "shutdown_delay",
        ]
        for (key, _, value) in self.mapping(node, "server", allowed: keys) ?? [] {
            let path = "server.\(key)"
            switch key {
            case "listen":
                if let text = self.string(value, path) {
                    if let address = ListenAddress.parse(text) {
                        server.listen = address
                    } else {
                        self.report(value, path, "'\(text)' is not host:port (e.g. 127.0.0.1:8080)")
                    }
                }
            case "state_dir": server.stateDir = self.string(value, path) ?? server.stateDir
            case "admin_socket": server.adminSocket = self.string(value, path)
            case "admin_token": server.adminToken = self.string(value, path).flatMap { $0.isEmpty ? nil : Secret($0) }
            case "admin_listen":
                if let text = self.string(value, path) {
                    if let address = ListenAddress.parse(text) {
                        server.adminListen = address
                    } else {
                        self.report(value, path, "'\(text)' is not host:port (e.g. 127.0.0.1:9090)")
                    }
                }
            case "fetch_image_urls": server.fetchImageURLs = self.bool(value, path) ?? server.fetchImageURLs
            case "image_limits": server.imageLimits = self.readImageLimits(value, path)
            case "max_body": server.maxBodyBytes = self.size(value, path) ?? server.maxBodyBytes
            case "anonymous": server.anonymous = self.bool(value, path) ?? server.anonymous
            case "fast_lane": server.fastLane = self.bool(value, path) ?? server.fastLane
            case "shutdown_delay":
                guard let delay = self.duration(value, path) else { continue }
                guard delay <= ServerSettings.longestShutdownDelay else {
                    self.report(value, path, "must be at most 10m")
                    continue
                }
                server.shutdownDelay = delay
            case "header_timeout": server.client.headerTimeout = self.positiveDuration(value, path) ?? server.client.headerTimeout
            case "body_grace": server.client.bodyGrace = self.positiveDuration(value, path) ?? server.client.bodyGrace
            case "idle_timeout": server.client.idleTimeout = self.positiveDuration(value, path) ?? server.client.idleTimeout
            case "body_min_rate":
                if let rate = self.size(value, path) {
                    if rate > 0 { server.client.bodyMinRate = rate } else { self.report(value, path, "must be at least 1 byte a second (e.g. 1KiB)") }
                }
            case "max_connections":
                if let cap = self.int(value, path, atLeast: 1) {
                    if cap <= ClientLimits.maxConnectionsLimit {
                        server.client.maxConnections = cap
                    } else {
                        self.report(value, path, "must be at most \(ClientLimits.maxConnectionsLimit)")
                    }
                }
            case "budget_status":
                if let status = self.int(value, path) {
                    if status == 429 || status == 402 { server.budgetStatus = status } else { self.report(value, path, "must be 429 or 402") }
                }
            case "log_level":
                if let level = self.string(value, path) {
                    if ServerSettings.logLevels.contains(level) {
                        server.logLevel = level
                    } else {
                        self.report(value, path, "unknown level '\(level)'; use one of \(ServerSettings.logLevels.joined(separator: ", "))")
                    }
                }
            default: continue
            }
        }
        return server
    }

    mutating func readImageLimits(_ node: Node, _ base: String) -> ImageFetchLimits {
        var limits = ImageFetchLimits()
        var perRequestNode: Node?
        for (key, _, value) in self.mapping(node, base, allowed: ["per_image", "per_request", "count", "timeout"]) ?? [] {
            let path = "\(base).\(key)"
            switch key {
            case "per_image", "per_request":
                guard let size = self.size(value, path) else { continue }
                guard size > 0 else {
                    self.report(value, path, "must be more than zero")
                    continue
                }
                if key == "per_image" { limits.perImage = size } else { (limits.perRequest, perRequestNode) = (size, value) }
            case "count":
                guard let count = self.int(value, path, atLeast: 1) else { continue }
                if count <= ImageFetchLimits.maxCount { limits.count = count } else { self.report(value, path, "must be at most \(ImageFetchLimits.maxCount)") }
            case "timeout": limits.timeout = self.positiveDuration(value, path) ?? limits.timeout
            default: continue
            }
        }
        if limits.perRequest < limits.perImage {
            self.report(perRequestNode ?? node, "\(base).per_request", "must be at least per_image (\(ByteSize.format(limits.perImage))): a request may always carry one whole image")
        }
        return limits
    }

    mutating func readSimulator(_ node: Node) -> SimulatorSettings {
        var settings = SimulatorSettings()
        for (key, _, value) in self.mapping(node, "simulator", allowed: ["ttft", "tokens_per_second"]) ?? [] {
            let path = "simulator.\(key)"
            switch key {
            case "ttft": settings.timeToFirstToken = self.duration(value, path) ?? settings.timeToFirstToken
            case "tokens_per_second":
                if let rate = self.double(value, path) {
                    if rate >= 0 { settings.tokensPerSecond = rate } else { self.report(value, path, "must be 0 or more") }
                }
            default: continue
            }
        }
        return settings
    }

    mutating func readProviders(_ node: Node) -> [ProviderSettings] {
        guard let entries = self.mapping(node, "providers", allowed: nil) else { return [] }
        var providers: [ProviderSettings] = []
        for (id, keyNode, value) in entries {
            if let provider = self.readProvider(id: id, keyNode: keyNode, value) { providers.append(provider) }
        }
        return providers
    }

    mutating func readProvider(id: String, keyNode: Node, _ node: Node) -> ProviderSettings? {
        let base = "providers.\(id)"
        let keys = [
            "kind", "preset", "dialect", "base_url", "api_key", "headers", "timeouts", "max_connections", "default_max_tokens", "api_version",
            "responses_api", "breaker", "health_check", "load_poll", "tls",
        ]
        guard let entries = self.mapping(node, base, allowed: keys) else { return nil }
        let values = Dictionary(entries.map { ($0.0, $0.2) }, uniquingKeysWith: { first, _ in first })

        guard let kindNode = values["kind"] else {
            self.report(keyNode, base, "'kind' is required (one of \(ProviderKind.allCases.map(\.rawValue).joined(separator: ", ")))")
            return nil
        }
        guard let kindText = self.string(kindNode, "\(base).kind") else { return nil }
        guard let kind = ProviderKind(rawValue: kindText) else {
            let hint = Suggestion.closest(to: kindText, in: ProviderKind.allCases.map(\.rawValue)).map { "; did you mean '\($0)'?" } ?? ""
            self.report(kindNode, "\(base).kind", "unknown kind '\(kindText)'\(hint)")
            return nil
        }

        var preset = ProviderPreset.implied(by: kind)
        if let presetNode = values["preset"], let name = self.string(presetNode, "\(base).preset") {
            if let named = ProviderPreset.named(name) {
                preset = named
            } else {
                let names = ProviderPreset.all.map(\.name)
                let hint = Suggestion.closest(to: name, in: names).map { "did you mean '\($0)'? " } ?? ""
                self.report(presetNode, "\(base).preset", "unknown preset '\(name)'; \(hint)known: \(names.joined(separator: ", "))")
            }
        }

        let defaultBase: String? = switch kind {
        case .anthropic: ProviderPreset.anthropicBaseURL
        case .ollama: ProviderPreset.ollamaNativeBaseURL
        case .gemini: ProviderPreset.geminiBaseURL
        default: preset?.baseURL
        }
        var provider = ProviderSettings(id: id, kind: kind, baseURL: defaultBase)
        provider.acceptsStreamOptions = preset?.acceptsStreamOptions ?? true
        if let dialectNode = values["dialect"], let name = self.string(dialectNode, "\(base).dialect") {
            if kind != .simulator {
                self.report(dialectNode, "\(base).dialect", "only simulator providers take a dialect; the kind sets it for the others")
            } else if let wire = WireFormat(rawValue: name) {
                provider.wire = wire
            } else {
                self.report(dialectNode, "\(base).dialect", "unknown dialect '\(name)'; use openai, anthropic, ollama or gemini")
            }
        }
        if let versionNode = values["api_version"], let version = self.string(versionNode, "\(base).api_version") {
            if kind == .azureOpenAI { provider.apiVersion = version } else { self.report(versionNode, "\(base).api_version", "only azure-openai providers take an api_version") }
        }
        if let responsesNode = values["responses_api"], let speaks = self.bool(responsesNode, "\(base).responses_api") {
            if provider.wire != .openAIChat {
                self.report(responsesNode, "\(base).responses_api", "only OpenAI-dialect providers can serve the Responses API")
            } else if speaks && provider.apiVersion != nil {
                self.report(responsesNode, "\(base).responses_api", "Azure serves the Responses API on its v1 API only: drop api_version to use it")
            } else {
                provider.responsesAPI = speaks
            }
        }
        if let maxNode = values["default_max_tokens"], let value = self.int(maxNode, "\(base).default_max_tokens") {
            if value > 0 { provider.defaultMaxTokens = value } else { self.report(maxNode, "\(base).default_max_tokens", "must be at least 1") }
        }
        if let urlNode = values["base_url"], let url = self.string(urlNode, "\(base).base_url") {
            if url.hasPrefix("http://") || url.hasPrefix("https://") {
                provider.baseURL = url.hasSuffix("/") ? String(url.dropLast()) : url
            } else {
                self.report(urlNode, "\(base).base_url", "'\(url)' must start with http:// or https://")
            }
        }
        if provider.baseURL == nil && values["base_url"] == nil && kind != .simulator {
            self.report(keyNode, base, "'base_url' is required for kind '\(kind.rawValue)' without a preset")
        }
        if let keyValue = values["api_key"], let key = self.string(keyValue, "\(base).api_key") {
            provider.apiKey = key.isEmpty ? nil : Secret(key)
        }
        if (preset?.requiresKey == true || [.anthropic, .azureOpenAI, .gemini].contains(kind)) && values["api_key"] == nil {
            self.report(keyNode, "\(base).api_key", "an API key is required for \(preset?.name ?? kind.rawValue)")
        }
        if let headersNode = values["headers"] {
            for (name, _, value) in self.mapping(headersNode, "\(base).headers", allowed: nil) ?? [] {
                if let text = self.string(value, "\(base).headers.\(name)") { provider.headers[name] = text }
            }
        }
        if let timeoutsNode = values["timeouts"] {
            provider.timeouts = self.readTimeouts(timeoutsNode, "\(base).timeouts")
        }
        if let poolNode = values["max_connections"], let size = self.int(poolNode, "\(base).max_connections") {
            if size > 0 { provider.maxConnections = size } else { self.report(poolNode, "\(base).max_connections", "must be at least 1") }
        }
        if let breakerNode = values["breaker"] {
            provider.breaker = self.readBreaker(breakerNode, "\(base).breaker")
        }
        if let checkNode = values["health_check"] {
            provider.healthCheck = self.readHealthCheck(checkNode, "\(base).health_check")
        }
        if let tlsNode = values["tls"] {
            provider.tls = self.readTLS(tlsNode, "\(base).tls")
            if provider.baseURL?.hasPrefix("https://") != true {
                self.report(tlsNode, "\(base).tls", "tls settings need an https:// base_url")
            }
        }
        if let pollNode = values["load_poll"], let interval = self.positiveDuration(pollNode, "\(base).load_poll") {
            if [.vllm, .ollama, .simulator].contains(kind) {
                provider.loadPoll = interval
            } else {
                self.report(pollNode, "\(base).load_poll", "only vllm, ollama and simulator providers report their load")
            }
        }
        return provider
    }

    mutating func readTLS(_ node: Node, _ base: String) -> UpstreamTLS {
        var tls = UpstreamTLS()
        for (key, _, value) in self.mapping(node, base, allowed: ["ca_file"]) ?? [] {
            let path = "\(base).\(key)"
            switch key {
            case "ca_file":
                if let file = self.string(value, path) {
                    if file.isEmpty { self.report(value, path, "must name a PEM file") } else { tls.caFile = file }
                }
            default: break
            }
        }
        return tls
    }

    mutating func readBreaker(_ node: Node, _ base: String) -> BreakerPolicy {
        var policy = BreakerPolicy()
        let keys = ["failures", "error_rate", "min_requests", "window", "open_for", "max_open_for", "probes"]
        for (key, _, value) in self.mapping(node, base, allowed: keys) ?? [] {
            let path = "\(base).\(key)"
            switch key {
            case "failures": policy.consecutiveFailures = self.int(value, path, atLeast: 1) ?? policy.consecutiveFailures
            case "min_requests": policy.minimumRequests = self.int(value, path, atLeast: 1) ?? policy.minimumRequests
            case "probes": policy.probes = self.int(value, path, atLeast: 1) ?? policy.probes
            case "window": policy.window = self.positiveDuration(value, path) ?? policy.window
            case "open_for": policy.openDuration = self.positiveDuration(value, path) ?? policy.openDuration
            case "max_open_for": policy.maxOpenDuration = self.positiveDuration(value, path) ?? policy.maxOpenDuration
            case "error_rate":
                if let rate = self.double(value, path) {
                    if rate > 0 && rate <= 1 { policy.errorRate = rate } else { self.report(value, path, "must be above 0 and at most 1") }
                }
            default: continue
            }
        }
        if policy.maxOpenDuration < policy.openDuration { policy.maxOpenDuration = policy.openDuration }
        return policy
    }

    mutating func readHealthCheck(_ node: Node, _ base: String) -> HealthCheckSettings {
        var check = HealthCheckSettings()
        for (key, _, value) in self.mapping(node, base, allowed: ["interval", "path", "timeout"]) ?? [] {
            let path = "\(base).\(key)"
            switch key {
            case "interval": check.interval = self.positiveDuration(value, path) ?? check.interval
            case "timeout": check.timeout = self.positiveDuration(value, path) ?? check.timeout
            case "path":
                if let text = self.string(value, path) {
                    if text.hasPrefix("/") { check.path = text } else { self.report(value, path, "must start with /") }
                }
            default: continue
            }
        }
        return check
    }

    mutating func readTimeouts(_ node: Node, _ base: String) -> UpstreamTimeouts {
        var timeouts = UpstreamTimeouts()
        for (key, _, value) in self.mapping(node, base, allowed: ["connect", "first_byte", "idle", "total"]) ?? [] {
            guard let duration = self.duration(value, "\(base).\(key)") else { continue }
            guard duration > .zero else {
                self.report(value, "\(base).\(key)", "must be longer than zero")
                continue
            }
            switch key {
            case "connect": timeouts.connect = duration
            case "first_byte": timeouts.firstByte = duration
            case "idle": timeouts.idle = duration
            case "total": timeouts.total = duration
            default: continue
            }
        }
        return timeouts
    }

    mutating func readRoutes(_ node: Node) -> [RouteSettings] {
        var routes: [RouteSettings] = []
        for (alias, keyNode, value) in self.mapping(node, "routes", allowed: nil) ?? [] {
            let base = "routes.\(alias)"
            let keys = ["targets", "strategy", "fallbacks", "context_fallback", "retry", "hedge", "cache"]
            guard let entries = self.mapping(value, base, allowed: keys) else { continue }
            var route = RouteSettings(alias: alias, targets: [])
            for (key, keyNode, value) in entries {
                let path = "\(base).\(key)"
                switch key {
                case "targets": route.targets = self.readTargets(value, "\(base).targets")
                case "strategy":
                    guard let name = self.string(value, path) else { continue }
                    if let strategy = RouteStrategy(rawValue: name) {
                        route.strategy = strategy
                    } else {
                        let known = RouteStrategy.allCases.map(\.rawValue)
                        let hint = Suggestion.closest(to: name, in: known).map { "did you mean '\($0)'? " } ?? ""
                        self.report(value, path, "unknown strategy '\(name)'; \(hint)use one of \(known.joined(separator: ", "))")
                    }
                case "fallbacks": route.fallbacks = self.stringList(value, path)
                case "context_fallback": route.contextFallback = self.string(value, path)
                case "retry": route.retry = self.readRetry(value, path)
                case "hedge": route.hedge = self.readHedge(value, path)
                case "cache": route.cache = self.readCache(value, path)
                default:
                    self.report(keyNode, path, "route \(key) is not available in this version of Switchyard; remove this key")
                }
            }
            if route.targets.isEmpty {
                self.report(keyNode, base, "a route needs at least one target")
            }
            routes.append(route)
        }
        return routes
    }

    mutating func readRetry(_ node: Node, _ base: String) -> RetryPolicy {
        var policy = RetryPolicy()
        for (key, _, value) in self.mapping(node, base, allowed: ["attempts", "backoff", "max_backoff", "deadline", "max_retry_after"]) ?? [] {
            let path = "\(base).\(key)"
            switch key {
            case "attempts": policy.attempts = self.int(value, path, atLeast: 1) ?? policy.attempts
            case "backoff": policy.backoff = self.positiveDuration(value, path) ?? policy.backoff
            case "max_backoff": policy.maxBackoff = self.positiveDuration(value, path) ?? policy.maxBackoff
            case "deadline": policy.deadline = self.positiveDuration(value, path) ?? policy.deadline
            case "max_retry_after": policy.maxRetryAfter = self.duration(value, path) ?? policy.maxRetryAfter
            default: continue
            }
        }
        return policy
    }

    /// `cache: { ttl: 1h, always: false, replay: instant, semantic: { threshold: 0.93, embedder: { provider, model } | ngram, guard: true } }`.
    mutating func readCache(_ node: Node, _ base: String) -> CacheSettings? {
        var settings = CacheSettings()
        for (key, _, value) in self.mapping(node, base, allowed: ["ttl", "always", "replay", "semantic"]) ?? [] {
            let path = "\(base).\(key)"
            switch key {
            case "ttl": settings.ttl = self.positiveDuration(value, path) ?? settings.ttl
            case "always": settings.always = self.bool(value, path) ?? false
            case "replay":
                switch self.string(value, path) {
                case "instant": settings.realisticReplay = false
                case "realistic": settings.realisticReplay = true
                case nil: continue
                case let other?: self.report(value, path, "'\(other)' is not a replay pace; expected instant or realistic")
                }
            case "semantic":
                var threshold: Double?
                var thresholdGiven = false
                var embedderGiven = false
                for (field, _, entry) in self.mapping(value, path, allowed: ["threshold", "embedder", "guard"]) ?? [] {
                    switch field {
                    case "threshold":
                        thresholdGiven = true
                        guard let number = self.double(entry, "\(path).threshold") else { continue }
                        if number > 0 && number <= 1 { threshold = number } else { self.report(entry, "\(path).threshold", "must be above 0 and at most 1") }
                    case "guard":
                        settings.semanticGuard = self.bool(entry, "\(path).guard") ?? true
                    case "embedder":
                        embedderGiven = true
                        if case .scalar = entry {
                            // The built-in embedder only by name: it matches near-identical wording, not paraphrases.
                            if self.string(entry, "\(path).embedder") != "ngram" {
                                self.report(entry, "\(path).embedder", "must be { provider, model } or ngram (the built-in embedder)")
                            }
                            continue
                        }
                        guard let members = self.mapping(entry, "\(path).embedder", allowed: ["provider", "model"]) else { continue }
                        var fields: [String: String] = [:]
                        for (name, _, item) in members { fields[name] = self.string(item, "\(path).embedder.\(name)") }
                        guard let provider = fields["provider"], let model = fields["model"], !provider.isEmpty, !model.isEmpty else {
                            self.report(entry, "\(path).embedder", "needs both provider and model")
                            continue
                        }
                        settings.embedder = EmbedderSettings(provider: provider, model: model)
                    default: continue
                    }
                }
                if !thresholdGiven { threshold = CacheSettings.defaultSemanticThreshold }
                if !embedderGiven {
                    self.report(
                        value, "\(path).embedder",
                        "is required: { provider, model } of a sentence-embedding model (see docs/caching.md), or ngram for the built-in one, which only matches near-identical wording"
                    )
                }
                settings.semanticThreshold = threshold
            default: continue
            }
        }
        return settings
    }

    /// `hedge: true`, or `hedge: {initial: 1s, min_samples: 20}`.
    mutating func readHedge(_ node: Node, _ base: String) -> HedgePolicy? {
        if case .scalar = node {
            return self.bool(node, base) == true ? HedgePolicy() : nil
        }
        var policy = HedgePolicy()
        for (key, _, value) in self.mapping(node, base, allowed: ["initial", "min_samples"]) ?? [] {
            let path = "\(base).\(key)"
            switch key {
            case "initial": policy.initialDelay = self.positiveDuration(value, path) ?? policy.initialDelay
            case "min_samples": policy.minimumSamples = self.int(value, path, atLeast: 1) ?? policy.minimumSamples
            default: continue
            }
        }
        return policy
    }

    mutating func readTenants(_ node: Node) -> [TenantSettings] {
        var tenants: [TenantSettings] = []
        for (name, _, value) in self.mapping(node, "tenants", allowed: nil) ?? [] {
            let base = "tenants.\(name)"
            var tenant = TenantSettings(name: name)
            for (key, _, entry) in self.mapping(value, base, allowed: ["limits", "budget", "models", "keys"]) ?? [] {
                switch key {
                case "limits": self.readLimits(entry, "\(base).limits", into: &tenant.limits)
                case "budget": self.readBudget(entry, "\(base).budget", into: &tenant.limits)
                case "models": tenant.models = self.stringList(entry, "\(base).models")
                case "keys":
                    for (keyName, keyNode, keyValue) in self.mapping(entry, "\(base).keys", allowed: nil) ?? [] {
                        let path = "\(base).keys.\(keyName)"
                        var declared: DeclaredKey?
                        var limits = LimitSettings()
                        var models: [String] = []
                        for (field, _, fieldValue) in self.mapping(keyValue, path, allowed: ["key", "limits", "budget", "models"]) ?? [] {
                            switch field {
                            case "key":
                                if let secret = self.string(fieldValue, "\(path).key") {
                                    if !secret.hasPrefix(DeclaredKey.prefix) {
                                        // Only credentials with our prefix are looked up: any other is a provider's or an SDK's placeholder.
                                        self.report(fieldValue, "\(path).key", "a key must start with '\(DeclaredKey.prefix)', how the gateway tells its keys from others")
                                    } else if secret.count >= 16 {
                                        declared = DeclaredKey(name: keyName, secret: Secret(secret))
                                    } else {
                                        self.report(fieldValue, "\(path).key", "a key must be at least 16 characters")
                                    }
                                }
                            case "limits": self.readLimits(fieldValue, "\(path).limits", into: &limits)
                            case "budget": self.readBudget(fieldValue, "\(path).budget", into: &limits)
                            case "models": models = self.stringList(fieldValue, "\(path).models")
                            default: continue
                            }
                        }
                        guard var key = declared else {
                            if !self.issues.contains(where: { $0.path == "\(path).key" }) { self.report(keyNode, path, "'key' is required (usually ${SOME_ENV_VAR})") }
                            continue
                        }
                        key.limits = limits
                        key.models = models
                        tenant.keys.append(key)
                    }
                default: continue
                }
            }
            tenants.append(tenant)
        }
        return tenants
    }

    mutating func readLimits(_ node: Node, _ base: String, into limits: inout LimitSettings) {
        for (key, _, value) in self.mapping(node, base, allowed: ["rpm", "rpd", "tpm", "concurrency"]) ?? [] {
            let number = self.int(value, "\(base).\(key)", atLeast: 1)
            switch key {
            case "rpm": limits.requestsPerMinute = number
            case "rpd": limits.requestsPerDay = number
            case "tpm": limits.tokensPerMinute = number
            case "concurrency": limits.concurrency = number
            default: continue
            }
        }
    }

    mutating func readBudget(_ node: Node, _ base: String, into limits: inout LimitSettings) {
        for (key, _, value) in self.mapping(node, base, allowed: ["daily_usd", "monthly_usd"]) ?? [] {
            guard let amount = self.double(value, "\(base).\(key)") else { continue }
            guard amount >= 0 else {
                self.report(value, "\(base).\(key)", "must be 0 or more")
                continue
            }
            if key == "daily_usd" { limits.dailyBudgetUSD = amount } else { limits.monthlyBudgetUSD = amount }
        }
    }

    /// `prices: { model: { input, cached_input, cache_write, output } }`, USD per million tokens.
    mutating func readPrices(_ node: Node) -> PriceTable {
        var table = PriceTable()
        for (model, _, value) in self.mapping(node, "prices", allowed: nil) ?? [] {
            let base = "prices.\(model)"
            var fields: [String: Double] = [:]
            for (key, _, entry) in self.mapping(value, base, allowed: ["input", "cached_input", "cache_write", "output"]) ?? [] {
                guard let amount = self.double(entry, "\(base).\(key)") else { continue }
                if amount < 0 { self.report(entry, "\(base).\(key)", "must be 0 or more") } else { fields[key] = amount }
            }
            guard let input = fields["input"], let output = fields["output"] else {
                self.report(value, base, "'input' and 'output' (USD per million tokens) are required")
                continue
            }
            table[model] = ModelPrice(input: input, cachedInput: fields["cached_input"], cacheWrite: fields["cache_write"], output: output, checked: "config")
        }
        return table
    }

    mutating func readRules(_ node: Node) -> [RouteRule] {
        guard case .sequence(let sequence) = node else {
            self.report(node, "rules", "expected a list of rules (- when: {...}, route: name)")
            return []
        }
        var rules: [RouteRule] = []
        for (index, item) in sequence.enumerated() {
            let base = "rules[\(index)]"
            guard let entries = self.mapping(item, base, allowed: ["when", "route"]) else { continue }
            let values = Dictionary(entries.map { ($0.0, $0.2) }, uniquingKeysWith: { first, _ in first })
            guard let routeNode = values["route"], let route = self.string(routeNode, "\(base).route") else {
                self.report(item, base, "'route' is required")
                continue
            }
            var conditions = RuleConditions()
            if let when = values["when"] {
                let keys = ["model", "tenant", "key", "header", "prompt_tokens_over", "has_tools", "has_images"]
                for (key, _, value) in self.mapping(when, "\(base).when", allowed: keys) ?? [] {
                    let path = "\(base).when.\(key)"
                    switch key {
                    case "model": conditions.model = self.string(value, path)
                    case "tenant": conditions.tenant = self.string(value, path)
                    case "key": conditions.key = self.string(value, path)
                    case "header":
                        for (name, _, pattern) in self.mapping(value, path, allowed: nil) ?? [] {
                            if let text = self.string(pattern, "\(path).\(name)") { conditions.headers[name.lowercased()] = text }
                        }
                    case "prompt_tokens_over": conditions.promptTokensOver = self.int(value, path, atLeast: 0)
                    case "has_tools": conditions.hasTools = self.bool(value, path)
                    case "has_images": conditions.hasImages = self.bool(value, path)
                    default: continue
                    }
                }
            }
            rules.append(RouteRule(conditions: conditions, route: route))
        }
        return rules
    }

    mutating func readTargets(_ node: Node, _ base: String) -> [RouteTarget] {
        guard case .sequence(let sequence) = node else {
            self.report(node, base, "expected a list of targets")
            return []
        }
        var targets: [RouteTarget] = []
        for (index, item) in sequence.enumerated() {
            let path = "\(base)[\(index)]"
            guard let entries = self.mapping(item, path, allowed: ["provider", "model", "weight", "priority", "price"]) else { continue }
            let values = Dictionary(entries.map { ($0.0, $0.2) }, uniquingKeysWith: { first, _ in first })
            guard let providerNode = values["provider"], let provider = self.string(providerNode, "\(path).provider") else {
                self.report(item, path, "'provider' is required")
                continue
            }
            guard let modelNode = values["model"], let model = self.string(modelNode, "\(path).model"), !model.isEmpty else {
                self.report(item, path, "'model' (the upstream model name) is required")
                continue
            }
            var target = RouteTarget(provider: provider, model: model)
            if let weightNode = values["weight"], let weight = self.int(weightNode, "\(path).weight") {
                if (0...RouteTarget.heaviest).contains(weight) {
                    target.weight = weight
                } else {
                    self.report(weightNode, "\(path).weight", "must be 0 to \(RouteTarget.heaviest)")
                }
            }
            if let priorityNode = values["priority"], let priority = self.int(priorityNode, "\(path).priority") {
                target.priority = priority
            }
            if let priceNode = values["price"] {
                var price = TokenPrice(input: 0, output: 0)
                for (key, _, value) in self.mapping(priceNode, "\(path).price", allowed: ["input", "output"]) ?? [] {
                    guard let number = self.double(value, "\(path).price.\(key)") else { continue }
                    guard number >= 0 else {
                        self.report(value, "\(path).price.\(key)", "must be 0 or more (USD per million tokens)")
                        continue
                    }
                    if key == "input" { price.input = number } else { price.output = number }
                }
                target.price = price
            }
            targets.append(target)
        }
        return targets
    }

    /// Routes may only name providers that exist.
    mutating func checkReferences(_ config: GatewayConfig, _ top: [(String, Node, Node)]) {
        guard let routesNode = top.first(where: { $0.0 == "routes" })?.2, case .mapping(let routes) = routesNode else { return }
        let known = config.providers.map(\.id)
        for route in config.routes {
            guard let routeNode = routes.first(where: { $0.key.string == route.alias })?.value else { continue }
            for (index, target) in route.targets.enumerated() where !known.contains(target.provider) {
                let hint = Suggestion.closest(to: target.provider, in: known).map { "; did you mean '\($0)'?" } ?? ""
                let targetNode = routeNode.mapping?["targets"]?.sequence?[index]
                self.report(targetNode ?? routeNode, "routes.\(route.alias).targets[\(index)].provider", "unknown provider '\(target.provider)'\(hint)")
            }
            if let embedder = route.cache?.embedder {
                let node = routeNode.mapping?["cache"]?.mapping?["semantic"]?.mapping?["embedder"] ?? routeNode
                let path = "routes.\(route.alias).cache.semantic.embedder.provider"
                if let provider = config.providers.first(where: { $0.id == embedder.provider }) {
                    if provider.wire == .anthropicMessages { self.report(node, path, "'\(embedder.provider)' is an Anthropic provider, which offers no embeddings") }
                } else {
                    let hint = Suggestion.closest(to: embedder.provider, in: known).map { "; did you mean '\($0)'?" } ?? ""
                    self.report(node, path, "unknown provider '\(embedder.provider)'\(hint)")
                }
            }
            if !route.targets.isEmpty && route.targets.allSatisfy({ $0.weight == 0 }) && route.strategy == .weighted {
                self.report(routeNode, "routes.\(route.alias)", "every target has weight 0, so none can be chosen")
            }
            let aliases = config.routes.map(\.alias)
            for (index, alias) in route.fallbacks.enumerated() where !aliases.contains(alias) || alias == route.alias {
                let node = routeNode.mapping?["fallbacks"]?.sequence?[index] ?? routeNode
                self.report(node, "routes.\(route.alias).fallbacks[\(index)]", self.routeReferenceProblem(alias, from: route.alias, known: aliases))
            }
            if let alias = route.contextFallback, !aliases.contains(alias) || alias == route.alias {
                self.report(routeNode.mapping?["context_fallback"] ?? routeNode, "routes.\(route.alias).context_fallback", self.routeReferenceProblem(alias, from: route.alias, known: aliases))
            }
        }
        guard let rulesNode = top.first(where: { $0.0 == "rules" })?.2 else { return }
        let aliases = config.routes.map(\.alias)
        for (index, rule) in config.rules.enumerated() where !aliases.contains(rule.route) {
            let node = rulesNode.sequence?[index].mapping?["route"] ?? rulesNode
            self.report(node, "rules[\(index)].route", self.routeReferenceProblem(rule.route, from: nil, known: aliases))
        }
    }

    func routeReferenceProblem(_ alias: String, from origin: String?, known: [String]) -> String {
        if alias == origin { return "a route cannot fall back to itself" }
        let hint = Suggestion.closest(to: alias, in: known).map { "; did you mean '\($0)'?" } ?? ""
        return "unknown route '\(alias)'\(hint)"
    }

    // MARK: Typed values

    /// The entries of a mapping in file order; reports unknown keys (with a suggestion) and duplicates.
    mutating func mapping(_ node: Node, _ path: String, allowed: [String]?) -> [(String, Node, Node)]? {
        guard case .mapping(let mapping) = node else {
            self.report(node, path, "expected a mapping (key: value)")
            return nil
        }
        var seen = Set<String>()
        var entries: [(String, Node, Node)] = []
        for (keyNode, value) in mapping {
            guard let key = keyNode.string else {
                self.report(keyNode, path, "keys must be strings")
                continue
            }
            let keyPath = path.isEmpty ? key : "\(path).\(key)"
            guard seen.insert(key).inserted else {
                self.report(keyNode, keyPath, "duplicate key")
                continue
            }
            if let allowed, !allowed.contains(key) {
                let hint = Suggestion.closest(to: key, in: allowed).map { "did you mean '\($0)'? " } ?? ""
                self.report(keyNode, keyPath, "unknown key; \(hint)known keys here: \(allowed.joined(separator: ", "))")
                continue
            }
            entries.append((key, keyNode, value))
        }
        return entries
    }

    mutating func string(_ node: Node, _ path: String) -> String? {
        guard case .scalar(let scalar) = node else {
            self.report(node, path, "expected a single value")
            return nil
        }
        do {
            return try EnvInterpolation.expand(scalar.string, environment: self.environment)
        } catch .unset(let name) {
            self.report(node, path, "environment variable \(name) is not set (write ${\(name):-default} for a fallback)")
        } catch {
            self.report(node, path, "unterminated ${ in '\(scalar.string)'")
        }
        return nil
    }

    mutating func int(_ node: Node, _ path: String) -> Int? {
        guard let text = self.string(node, path) else { return nil }
        guard let value = Int(text) else {
            self.report(node, path, "'\(text)' is not a whole number")
            return nil
        }
        return value
    }

    mutating func int(_ node: Node, _ path: String, atLeast minimum: Int) -> Int? {
        guard let value = self.int(node, path) else { return nil }
        guard value >= minimum else {
            self.report(node, path, "must be at least \(minimum)")
            return nil
        }
        return value
    }

    mutating func positiveDuration(_ node: Node, _ path: String) -> Duration? {
        guard let value = self.duration(node, path) else { return nil }
        guard value > .zero else {
            self.report(node, path, "must be longer than zero")
            return nil
        }
        return value
    }

    /// A list of strings, or one string as a list of one.
    mutating func stringList(_ node: Node, _ path: String) -> [String] {
        guard case .sequence(let sequence) = node else { return self.string(node, path).map { [$0] } ?? [] }
        return sequence.enumerated().compactMap { index, item in self.string(item, "\(path)[\(index)]") }
    }

    mutating func double(_ node: Node, _ path: String) -> Double? {
        guard let text = self.string(node, path) else { return nil }
        guard let value = Double(text) else {
            self.report(node, path, "'\(text)' is not a number")
            return nil
        }
        return value
    }

    mutating func bool(_ node: Node, _ path: String) -> Bool? {
        guard let text = self.string(node, path) else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            self.report(node, path, "'\(text)' is not true or false")
            return nil
        }
    }

    mutating func duration(_ node: Node, _ path: String) -> Duration? {
        guard let text = self.string(node, path) else { return nil }
        guard let value = DurationText.parse(text) else {
            self.report(node, path, "'\(text)' is not a duration (e.g. 500ms, 30s, 10m)")
            return nil
        }
        return value
    }

    mutating func size(_ node: Node, _ path: String) -> Int? {
        guard let text = self.string(node, path) else { return nil }
        guard let value = ByteSize.parse(text) else {
            self.report(node, path, "'\(text)' is not a size (e.g. 8MiB, 512KiB)")
            return nil
        }
        return value
    }
}
