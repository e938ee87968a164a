import Testing
@testable import Engine

struct ConfigLoaderTests {
    private func load(_ yaml: String, environment: [String: String] = [:]) throws(ConfigError) -> GatewayConfig {
        try ConfigLoader.load(yaml: yaml, source: "test.yaml", environment: environment)
    }

    private func issues(_ yaml: String, environment: [String: String] = [:]) -> [ConfigIssue] {
        do {
            _ = try self.load(yaml, environment: environment)
            return []
        } catch {
            return error.issues
        }
    }

    static let full = """
        server:
          listen: 127.0.0.1:9090
          state_dir: /tmp/sy
          max_body: 1MiB
          anonymous: true
          log_level: debug
        providers:
          openai:
            kind: openai
            api_key: ${OPENAI_API_KEY}
            timeouts: { connect: 500ms, first_byte: 20s, idle: 5s, total: 2m }
          groq:
            kind: openai-compatible
            preset: groq
            api_key: ${GROQ_KEY:-gsk-default}
          local:
            kind: ollama
            base_url: ${OLLAMA_HOST:-http://127.0.0.1:11434}/
            max_connections: 8
          sim:
            kind: simulator
        routes:
          gpt-4o:
            strategy: weighted
            targets:
              - { provider: openai, model: gpt-4o, weight: 3 }
              - { provider: groq, model: llama-3.3-70b-versatile, weight: 1, priority: 1 }
          small:
            targets:
              - { provider: local, model: llama3.2 }
        simulator: { ttft: 0ms, tokens_per_second: 0 }
        """

    @Test func readsEverySupportedKey() throws {
        let config = try self.load(Self.full, environment: ["OPENAI_API_KEY": "sk-test-1234567890"])
        #expect(config.server == ServerSettings(listen: ListenAddress(host: "127.0.0.1", port: 9090), stateDir: "/tmp/sy", maxBodyBytes: 1 << 20, logLevel: "debug"))
        #expect(config.providers.map(\.id) == ["openai", "groq", "local", "sim"])
        let openai = try #require(config.provider("openai"))
        #expect(openai.baseURL == "https://api.openai.com/v1")
        #expect(openai.apiKey?.exposedValue == "sk-test-1234567890")
        #expect(openai.timeouts == UpstreamTimeouts(connect: .milliseconds(500), firstByte: .seconds(20), idle: .seconds(5), total: .seconds(120)))
        #expect(config.provider("groq")?.baseURL == "https://api.groq.com/openai/v1")
        #expect(config.provider("groq")?.apiKey?.exposedValue == "gsk-default")
        #expect(config.provider("local")?.baseURL == "http://127.0.0.1:11434")
        #expect(config.provider("local")?.wire == .ollamaChat)
        #expect(config.provider("local")?.maxConnections == 8)
        #expect(config.provider("sim")?.baseURL == nil)
        #expect(config.needsInProcessSimulator)
        #expect(config.routes.map(\.alias) == ["gpt-4o", "small"])
        #expect(config.routes[0].targets[1] == RouteTarget(provider: "groq", model: "llama-3.3-70b-versatile", weight: 1, priority: 1))
        #expect(config.simulator == SimulatorSettings(timeToFirstToken: .zero, tokensPerSecond: 0))
    }

    @Test func reportsEveryProblemAtOnceWithLinesAndSuggestions() {
        let yaml = """
            server:
              lisen: 127.0.0.1:8080
              max_body: lots
            providers:
              openai:
                kind: opneai
              other:
                kind: openai-compatible
                base_url: ftp://x
            routes:
              gpt:
                targets:
                  - { provider: opnai, model: gpt-4o }
            """
        let found = self.issues(yaml)
        #expect(found.count == 5)
        #expect(found.contains { $0.line == 2 && $0.path == "server.lisen" && $0.message.contains("did you mean 'listen'?") })
        #expect(found.contains { $0.line == 3 && $0.path == "server.max_body" })
        #expect(found.contains { $0.line == 6 && $0.message.contains("did you mean 'openai'?") })
        #expect(found.contains { $0.line == 9 && $0.path == "providers.other.base_url" })
        #expect(found.contains { $0.path == "routes.gpt.targets[0].provider" && $0.message.contains("unknown provider 'opnai'") })
    }

    @Test func anUnsetVariableIsAnErrorThatSaysHowToDefaultIt() {
        let yaml = "providers:\n  openai:\n    kind: openai\n    api_key: ${OPENAI_API_KEY}\n"
        let found = self.issues(yaml)
        #expect(found.count == 1)
        #expect(found.first?.line == 4)
        #expect(found.first?.message.contains("${OPENAI_API_KEY:-default}") == true)
    }

    @Test func aShutdownDelayIsADurationOfAtMostTenMinutes() throws {
        let base = Self.oneRoute
        #expect(try self.load(base + "server: { shutdown_delay: 5s }").server.shutdownDelay == .seconds(5))
        #expect(try self.load(base).server.shutdownDelay == .zero)
        #expect(self.issues(base + "server: { shutdown_delay: 11m }").contains { $0.path == "server.shutdown_delay" && $0.message.contains("at most 10m") })
        #expect(self.issues(base + "server: { shutdown_delay: soon }").contains { $0.path == "server.shutdown_delay" })
    }

    @Test func aSharedDatabaseIsAPostgresURLWithItsRetention() throws {
        let base = Self.oneRoute
        let config = try self.load(base + "database: { url: 'postgres://gw:p%40ss@127.0.0.1:6543/ledger', retention_days: 90 }")
        guard case .postgres(let settings) = config.database.location else {
            Issue.record("not a PostgreSQL database: \(config.database)")
            return
        }
        #expect(settings.host == "127.0.0.1" && settings.port == 6543 && settings.user == "gw" && settings.database == "ledger")
        #expect(settings.password?.exposedValue == "p@ss" && settings.tlsMode == .disable && config.database.retentionDays == 90)
        #expect(!settings.redacted.contains("p@ss") && settings.redacted.contains(":***@"))
        // A remote host is verified unless the URL says otherwise, so a password never goes out in the clear.
        #expect(try PostgresSettings.parse("postgres://db.example/x").tlsMode == .verifyFull)
        #expect(try PostgresSettings.parse("postgresql://u@db.example/x?sslmode=require").tlsMode == .require)
        #expect(try self.load(base + "database: sqlite").database == DatabaseSettings())

        for (text, problem) in [
            ("database: mysql://127.0.0.1/x", "must be 'sqlite' or a postgres:// URL"),
            ("database: postgres://127.0.0.1:0/x", "the port must be 1-65535"),
            ("database: postgres://127.0.0.1/x?sslmode=maybe", "sslmode must be one of"),
            ("database: postgres://127.0.0.1/x?options=-c", "is not a parameter Switchyard reads"),
            ("database: { url: sqlite, retention_days: 0 }", "must be 1-10000 days"),
            ("database: { url: sqlite, keep: 3 }", "unknown key"),
        ] {
            let found = self.issues(base + text)
            #expect(found.contains { $0.path.hasPrefix("database") && $0.message.contains(problem) }, "\(text): \(found)")
        }
    }

    @Test func keptResponsesHaveARetentionOfOneDayToThirtyYears() throws {
        #expect(try self.load(Self.oneRoute).responsesKeepDays == 30, "OpenAI's own 30 days by default")
        #expect(try self.load(Self.oneRoute + "responses: { keep_days: 7 }").responsesKeepDays == 7)
        for text in ["responses: { keep_days: 0 }", "responses: { keep_days: 10001 }", "responses: { keep: 3 }"] {
            #expect(self.issues(Self.oneRoute + text).contains { $0.path.hasPrefix("responses") }, "\(text)")
        }
    }

    private static let oneRoute = """
        providers:
          sim: { kind: simulator }
        routes:
          r:
            targets: [{ provider: sim, model: c }]

        """

    @Test func weightsAreBoundedInTheFileAndInARouteEdit() throws {
        let found = self.issues("""
            providers: { a: { kind: simulator } }
            routes: { r: { targets: [{ provider: a, model: m, weight: 9223372036854775807 }] } }
            """)
        #expect(found.contains { $0.path == "routes.r.targets[0].weight" && $0.message.contains("0 to 1000000") }, "\(found)")
        let route = RouteSettings(alias: "r", targets: [RouteTarget(provider: "a", model: "m")])
        #expect(throws: AdminProblem.self) {
            try RouteEdit(strategy: nil, targets: [.init(provider: "a", model: "m", weight: Int.max)]).applied(to: route, providers: ["a"])
        }
    }

    @Test func aSharedCacheNeedsRedis() throws {
        #expect(try self.load(Self.oneRoute + "state: redis://127.0.0.5\ncache: { shared: true }\n").cacheShared)
        #expect(try !self.load(Self.oneRoute).cacheShared)
        let found = self.issues(Self.oneRoute + "cache: { shared: true }\n")
        #expect(found.contains { $0.path == "cache.shared" && $0.message.contains("needs 'state: redis://") }, "\(found)")
    }

    @Test func sharedStateIsOneLineOrAMappingWithItsOptions() throws {
        #expect(try self.load(Self.oneRoute).state == .local)
        #expect(try self.load(Self.oneRoute + "state: local\n").state == .local)
        guard case .redis(let plain) = try self.load(Self.oneRoute + "state: redis://127.0.0.5\n").state else {
            Issue.record("not redis")
            return
        }
        #expect(plain.host == "127.0.0.5" && plain.port == 6379 && plain.database == 0 && !plain.tls && plain.user == nil && plain.password == nil)
        #expect(plain.onError == .deny && plain.timeout == .milliseconds(250) && plain.leaseTTL == .seconds(30))

        let yaml = Self.oneRoute + """
            state:
              url: rediss://gateway:p%40ss:word@[::1]:6380/3
              on_error: allow
              timeout: 100ms
              lease_ttl: 2m
            """
        guard case .redis(let full) = try self.load(yaml).state else {
            Issue.record("not redis")
            return
        }
        #expect(full.host == "::1" && full.port == 6380 && full.database == 3 && full.tls)
        #expect(full.user == "gateway" && full.password?.exposedValue == "p@ss:word")
        #expect(full.onError == .allow && full.timeout == .milliseconds(100) && full.leaseTTL == .seconds(120))
        // The password never reaches a log line.
        #expect(full.redacted == "rediss://gateway:***@[::1]:6380/3")
        guard case .redis(let fromEnvironment) = try self.load(Self.oneRoute + "state: redis://:${REDIS_PASSWORD}@cache:7000\n", environment: ["REDIS_PASSWORD": "pw"]).state else {
            Issue.record("not redis")
            return
        }
        #expect(fromEnvironment.user == nil && fromEnvironment.password?.exposedValue == "pw" && fromEnvironment.redacted == "redis://:***@cache:7000/0")
    }

    @Test(arguments: [
        ("state: memcached://x\n", "redis://"),
        ("state: redis://\n", "no host"),
        ("state: redis://h:0\n", "port"),
        ("state: redis://h:99999\n", "port"),
        ("state: redis://h/x\n", "database"),
        ("state: redis://[::1\n", "']'"),
        ("state: { on_error: allow }\n", "required"),
        ("state: { url: 'redis://h', on_error: maybe }\n", "deny or allow"),
        ("state: { url: 'redis://h', timeout: 0s }\n", "longer than zero"),
        ("state: { url: local, on_error: allow }\n", "not to 'local'"),
        ("state: { url: 'redis://h', pool: 3 }\n", "pool"),
    ])
    func aWrongStateIsRefusedSayingWhy(_ line: String, _ detail: String) {
        let found = self.issues(Self.oneRoute + line)
        #expect(found.contains { $0.path.hasPrefix("state") && ($0.message.contains(detail) || $0.path.contains(detail)) }, "\(found)")
    }

    @Test func invalidYAMLIsReportedWithItsLine() {
        let found = self.issues("server:\n  listen: [unclosed\n")
        #expect(found.count == 1)
        #expect(found.first?.message.hasPrefix("invalid YAML") == true)
        #expect(found.first?.line != nil)
    }

    @Test func duplicateKeysAreReportedWithTheirLine() {
        let found = self.issues("providers:\n  a: { kind: openai-compatible, base_url: \"http://x\", base_url: \"http://y\" }\n")
        #expect(found == [ConfigIssue(line: 2, column: 33, path: "", message: "duplicate key 'base_url' in one mapping")])
    }

    @Test func missingRequiredFieldsAreReported() {
        let yaml = """
            providers:
              a: { kind: openai-compatible, base_url: "http://x" }
              b: { base_url: "http://y" }
              c: { kind: openai }
            routes:
              empty: { targets: [] }
              nomodel: { targets: [{ provider: a }] }
            """
        let found = self.issues(yaml)
        #expect(found.contains { $0.path == "providers.b" && $0.message.contains("'kind' is required") })
        #expect(found.contains { $0.path == "providers.c.api_key" && $0.message.contains("API key is required") })
        #expect(found.contains { $0.path == "routes.empty" })
        #expect(found.contains { $0.path == "routes.nomodel.targets[0]" })
    }

    @Test func aDeclaredKeyMustBeOneTheGatewayLooksUp() {
        // A credential without `sk-sy-` is taken for a provider's or an SDK's placeholder, never looked
        // up: a declared key without it could never match, so the config says so instead of ignoring it.
        let yaml = """
            tenants:
              acme:
                keys:
                  ci: { key: "sk-acme-0123456789abcdef0123" }
                  short: { key: "sk-sy-0123" }
            """
        let found = self.issues(yaml)
        #expect(found.contains { $0.path == "tenants.acme.keys.ci.key" && $0.message.contains("must start with 'sk-sy-'") })
        #expect(found.contains { $0.path == "tenants.acme.keys.short.key" && $0.message.contains("at least 16 characters") })
    }

    @Test func secretsNeverPrintInFull() throws {
        let config = try self.load(Self.full, environment: ["OPENAI_API_KEY": "sk-live-abcdefghijklmnop"])
        let printed = "\(config)"
        #expect(!printed.contains("sk-live-abcdefghijklmnop"))
        #expect(printed.contains("sk-l…(24 chars)"))
    }
}

struct ConfigValueTests {
    @Test func expandsVariablesAndDefaults() throws {
        let environment = ["A": "1", "EMPTY": ""]
        #expect(try EnvInterpolation.expand("x${A}y", environment: environment) == "x1y")
        #expect(try EnvInterpolation.expand("${EMPTY:-d}", environment: environment) == "d")
        #expect(try EnvInterpolation.expand("${NOPE:-}", environment: environment) == "")
        #expect(try EnvInterpolation.expand("$${A} and $5", environment: environment) == "${A} and $5")
        #expect(throws: EnvInterpolation.Failure.unset("NOPE")) { try EnvInterpolation.expand("${NOPE}", environment: environment) }
        #expect(throws: EnvInterpolation.Failure.unterminated) { try EnvInterpolation.expand("${A", environment: environment) }
    }

    @Test func parsesSizesAndDurations() {
        #expect(ByteSize.parse("8MiB") == 8 << 20)
        #expect(ByteSize.parse("1.5 KiB") == 1536)
        #expect(ByteSize.parse("100kB") == 100_000)
        #expect(ByteSize.parse("42") == 42)
        #expect(ByteSize.parse("-1") == nil)
        #expect(ByteSize.parse("big") == nil)
        #expect(ByteSize.format(8 << 20) == "8 MiB")
        #expect(DurationText.parse("500ms") == .milliseconds(500))
        #expect(DurationText.parse("1m30s") == .seconds(90))
        #expect(DurationText.parse("2h") == .seconds(7200))
        #expect(DurationText.parse("10") == nil)
        #expect(DurationText.parse("5 parsecs") == nil)
        // Sizes that would trap a conversion are refused, not trapped on.
        #expect(DurationText.parse("99999999999999999999h") == nil)
        #expect(DurationText.parse("1e300s") == nil)
        #expect(ByteSize.parse("99999999999GiB") == nil)
        #expect(ByteSize.parse("nanMiB") == nil)
        #expect(DurationText.format(.seconds(90)) == "1.5s" || DurationText.format(.seconds(90)) == "90s")
        #expect(DurationText.format(.milliseconds(250)) == "250ms")
    }

    @Test func parsesListenAddresses() {
        #expect(ListenAddress.parse("127.0.0.1:8080") == ListenAddress(host: "127.0.0.1", port: 8080))
        #expect(ListenAddress.parse("[::1]:80") == ListenAddress(host: "::1", port: 80))
        #expect(ListenAddress.parse(":9000") == ListenAddress(host: "0.0.0.0", port: 9000))
        #expect(ListenAddress.parse("localhost") == nil)
        #expect(ListenAddress.parse("h:70000") == nil)
    }
}

struct ZeroConfigTests {
    @Test func withNoKeysTheSimulatorServes() {
        let result = ZeroConfig.make(environment: [:])
        #expect(result.usesSimulator)
        #expect(result.config.needsInProcessSimulator)
        #expect(result.config.routes.map(\.alias) == ["gpt-4o-mini", "gpt-4o", "claude-sonnet-4-5", "llama3.2", "gemini-2.5-flash"])
        #expect(result.config.provider("sim-anthropic")?.wire == .anthropicMessages)
    }

    @Test func providersComeFromTheEnvironment() {
        let result = ZeroConfig.make(environment: [
            "OPENAI_API_KEY": "sk-abcdefghijkl", "OLLAMA_HOST": "127.0.0.1:11434", "OLLAMA_MODELS": "qwen3, llama3.2",
            "ANTHROPIC_API_KEY": "x",
        ])
        #expect(!result.usesSimulator)
        #expect(result.config.providers.map(\.id) == ["openai", "ollama", "anthropic"])
        #expect(result.config.provider("anthropic")?.wire == .anthropicMessages)
        #expect(result.config.routes.contains { $0.alias == "claude-sonnet-4-5" && $0.targets[0].provider == "anthropic" })
        #expect(result.config.provider("ollama")?.baseURL == "http://127.0.0.1:11434")
        #expect(result.config.provider("ollama")?.wire == .ollamaChat)
        #expect(result.config.routes.contains { $0.alias == "qwen3" && $0.targets[0].provider == "ollama" })
        #expect(result.notes.contains { $0.contains("ANTHROPIC_API_KEY") })
    }
}

struct GatewayErrorTests {
    @Test func statusesDomainsAndRetryability() {
        #expect(GatewayError.malformedRequest("x").httpStatus == 400)
        #expect(GatewayError.bodyTooLarge(limit: 8 << 20).httpStatus == 413)
        #expect(GatewayError.bodyTooLarge(limit: 8 << 20).message.contains("8 MiB"))
        #expect(GatewayError.upstreamUnreachable(provider: "p", detail: "d").httpStatus == 502)
        #expect(GatewayError.upstreamTimeout(provider: "p", phase: "idle", limit: "1s").httpStatus == 504)
        #expect(GatewayError.upstreamStatus(provider: "p", status: 429).httpStatus == 429)
        #expect(GatewayError.upstreamStatus(provider: "p", status: 429).isRetryable)
        #expect(GatewayError.upstreamStatus(provider: "p", status: 400).isRetryable == false)
        #expect(GatewayError.upstreamStatus(provider: "p", status: 529).httpStatus == 503)
        #expect(GatewayError.upstreamStatus(provider: "p", status: 500).httpStatus == 502)
        #expect(GatewayError.unknownModel("m", known: []).domain == .caller)
        #expect(GatewayError.internalFailure("x").domain == .gateway)
    }

    @Test func rendersBothDialectsAsValidJSON() throws {
        let error = GatewayError.invalidRequest("Bad \"quote\"\nline", param: "model")
        let openAI = error.openAIBody()
        #expect(openAI == #"{"error":{"message":"Bad \"quote\"\nline","type":"invalid_request_error","param":"model","code":"invalid_request"}}"#)
        let anthropic = error.anthropicBody(requestID: "req_1")
        #expect(anthropic == #"{"type":"error","error":{"type":"invalid_request_error","message":"Bad \"quote\"\nline"},"request_id":"req_1"}"#)
    }
}

struct AnthropicProviderConfigTests {
    @Test func anthropicProvidersSpeakMessagesAndNeedAKey() throws {
        let config = try ConfigLoader.load(
            yaml: "providers:\n  claude: { kind: anthropic, api_key: sk-ant-123456789, default_max_tokens: 2048 }\n  fake: { kind: simulator, dialect: anthropic }\n",
            source: "t", environment: [:]
        )
        #expect(config.provider("claude")?.wire == .anthropicMessages)
        #expect(config.provider("claude")?.baseURL == "https://api.anthropic.com/v1")
        #expect(config.provider("claude")?.defaultMaxTokens == 2048)
        #expect(config.provider("fake")?.wire == .anthropicMessages)
        #expect(throws: ConfigError.self) {
            try ConfigLoader.load(yaml: "providers:\n  claude: { kind: anthropic }\n", source: "t", environment: [:])
        }
        #expect(throws: ConfigError.self) {
            try ConfigLoader.load(yaml: "providers:\n  o: { kind: openai, api_key: k, dialect: anthropic }\n", source: "t", environment: [:])
        }
    }
}

extension ConfigLoaderTests {
    @Test func cacheSettingsNameTheirEmbedderAndReplayPace() throws {
        let yaml = """
            providers:
              sim: { kind: simulator }
              local: { kind: ollama, base_url: http://127.0.0.1:11434 }
            routes:
              a:
                targets: [{ provider: sim, model: m }]
                cache: { ttl: 10m, replay: realistic, semantic: { threshold: 0.9, embedder: { provider: local, model: nomic-embed-text } } }
              b:
                targets: [{ provider: sim, model: m }]
                cache: { semantic: { threshold: 0.95, embedder: ngram, guard: false } }
            """
        let config = try self.load(yaml)
        let first = try #require(config.routes.first { $0.alias == "a" }?.cache)
        #expect(first.realisticReplay && first.semanticThreshold == 0.9 && first.embedder == EmbedderSettings(provider: "local", model: "nomic-embed-text"))
        #expect(first.semanticGuard, "the guard is on unless turned off")
        let second = try #require(config.routes.first { $0.alias == "b" }?.cache)
        #expect(!second.realisticReplay && second.embedder == nil && second.semanticThreshold == 0.95 && !second.semanticGuard)
    }

    /// No silent weak default: the built-in embedder matches near-identical wording only, so a
    /// semantic cache names its embedder, or names the built-in one.
    @Test func aSemanticCacheNamesItsEmbedder() {
        let found = self.issues("""
            providers: { sim: { kind: simulator } }
            routes:
              a: { targets: [{ provider: sim, model: m }], cache: { semantic: { threshold: 0.9 } } }
              b: { targets: [{ provider: sim, model: m }], cache: { semantic: { embedder: trigram } } }
              c: { targets: [{ provider: sim, model: m }], cache: { semantic: { threshold: 0.9, embedder: ngram, guard: maybe } } }
            """)
        #expect(found.contains { $0.path == "routes.a.cache.semantic.embedder" && $0.message.contains("required") && $0.message.contains("ngram") })
        #expect(found.contains { $0.path == "routes.b.cache.semantic.embedder" && $0.message.contains("or ngram") })
        #expect(found.contains { $0.path == "routes.c.cache.semantic.guard" })
        #expect(found.count == 3, "\(found)")
        let defaulted = try? self.load("""
            providers: { sim: { kind: simulator } }
            routes:
              a: { targets: [{ provider: sim, model: m }], cache: { semantic: { embedder: { provider: sim, model: e } } } }
            """)
        #expect(defaulted?.routes.first?.cache?.semanticThreshold == CacheSettings.defaultSemanticThreshold)
    }

    @Test func clientLimitsHaveDefaultsAndAreRead() throws {
        let defaults = try self.load("providers: { sim: { kind: simulator } }").server.client
        #expect(defaults.headerTimeout == .seconds(10) && defaults.bodyGrace == .seconds(10) && defaults.idleTimeout == .seconds(60))
        #expect(defaults.bodyMinRate == 1024 && defaults.maxConnections == nil)
        #expect(ClientLimits.automaticMaxConnections(openFileLimit: 1_048_576) == 10_000)
        #expect(ClientLimits.automaticMaxConnections(openFileLimit: 1024) == 512)
        #expect(ClientLimits.automaticMaxConnections(openFileLimit: 0) == 1)
        let client = try self.load("""
            server: { header_timeout: 2s, body_min_rate: 4KiB, body_grace: 500ms, idle_timeout: 1m, max_connections: 300 }
            providers: { sim: { kind: simulator } }
            """).server.client
        #expect(client.headerTimeout == .seconds(2) && client.bodyMinRate == 4096 && client.bodyGrace == .milliseconds(500))
        #expect(client.idleTimeout == .seconds(60) && client.maxConnections == 300)
    }

    @Test func badClientLimitsAreReportedWithTheirPath() {
        let found = self.issues("""
            server: { header_timeout: 0s, body_min_rate: 0, body_grace: soon, idle_timeout: -1s, max_connections: 0 }
            providers: { sim: { kind: simulator } }
            """)
        #expect(found.contains { $0.path == "server.header_timeout" && $0.message.contains("longer than zero") })
        #expect(found.contains { $0.path == "server.body_min_rate" && $0.message.contains("at least 1 byte a second") })
        #expect(found.contains { $0.path == "server.body_grace" && $0.message.contains("not a duration") })
        #expect(found.contains { $0.path == "server.idle_timeout" })
        #expect(found.contains { $0.path == "server.max_connections" && $0.message.contains("at least 1") })
        #expect(self.issues("server: { max_connections: 2000000 }\nproviders: { sim: { kind: simulator } }").contains {
            $0.path == "server.max_connections" && $0.message.contains("at most 1000000")
        })
    }

    @Test func aBadEmbedderOrPaceIsReportedWithItsPath() {
        let found = self.issues("""
            providers:
              sim: { kind: simulator }
              claude: { kind: anthropic, api_key: x }
            routes:
              a:
                targets: [{ provider: sim, model: m }]
                cache: { replay: slow, semantic: { threshold: 0.9, embedder: { provider: simm, model: e } } }
              b:
                targets: [{ provider: sim, model: m }]
                cache: { semantic: { embedder: { provider: claude, model: e } } }
              c:
                targets: [{ provider: sim, model: m }]
                cache: { semantic: { threshold: 0.9, embedder: { provider: sim } } }
            """)
        #expect(found.contains { $0.path == "routes.a.cache.replay" && $0.message.contains("instant or realistic") })
        #expect(found.contains { $0.path == "routes.a.cache.semantic.embedder.provider" && $0.message.contains("did you mean 'sim'?") })
        #expect(!found.contains { $0.path == "routes.b.cache.semantic.threshold" }, "the threshold has a default")
        #expect(found.contains { $0.path == "routes.b.cache.semantic.embedder.provider" && $0.message.contains("Anthropic") })
        #expect(found.contains { $0.path == "routes.c.cache.semantic.embedder" && $0.message.contains("provider and model") })
        // One problem, one report.
        let once = self.issues("""
            providers: { sim: { kind: simulator } }
            routes:
              a: { targets: [{ provider: sim, model: m }], cache: { semantic: { threshold: 1.5, embedder: nope } } }
            """)
        #expect(once.filter { $0.path.hasPrefix("routes.a.cache.semantic") }.count == 2, "\(once)")
    }

    @Test func imageLimitsHaveSaneDefaultsAndAreRead() throws {
        let defaults = try self.load("server: { fetch_image_urls: true }\n").server.imageLimits
        #expect(defaults.perImage == 5 << 20 && defaults.perRequest == 20 << 20 && defaults.count == 16 && defaults.timeout == .seconds(10))
        let read = try self.load("server:\n  image_limits: { per_image: 1MiB, per_request: 3MiB, count: 4, timeout: 2s }\n").server.imageLimits
        #expect(read.perImage == 1 << 20 && read.perRequest == 3 << 20 && read.count == 4 && read.timeout == .seconds(2))
    }

    @Test func badImageLimitsAreReportedWithTheirPaths() {
        let found = self.issues("""
            server:
              image_limits: { per_image: 0, count: 0, timeout: 0s, bytes: 1 }
            """)
        #expect(found.contains { $0.path == "server.image_limits.per_image" && $0.message.contains("more than zero") }, "\(found)")
        #expect(found.contains { $0.path == "server.image_limits.count" && $0.message.contains("at least 1") }, "\(found)")
        #expect(found.contains { $0.path == "server.image_limits.timeout" && $0.message.contains("longer than zero") }, "\(found)")
        #expect(found.contains { $0.path == "server.image_limits.bytes" && $0.message.contains("unknown key") }, "\(found)")
        let crossed = self.issues("server:\n  image_limits: { per_image: 8MiB, per_request: 4MiB, count: 100000 }\n")
        #expect(crossed.contains { $0.path == "server.image_limits.per_request" && $0.message.contains("at least per_image (8 MiB)") }, "\(crossed)")
        #expect(crossed.contains { $0.path == "server.image_limits.count" && $0.message.contains("at most 256") }, "\(crossed)")
    }
}

extension ConfigLoaderTests {
    /// The demo's configuration loads as it is, with what the demo shows: tenants with budgets and
    /// keys, priced models, a cached route and a flaky provider.
    @Test func theDemoConfigurationLoads() throws {
        let config = try ConfigLoader.load(yaml: DemoConfig.yaml, source: "demo", environment: [:])
        #expect(config.tenants.map(\.name) == ["acme", "globex", "initech"])
        #expect(config.tenants.allSatisfy { $0.limits.dailyBudgetUSD != nil && $0.keys.count == 1 })
        #expect(config.routes.contains { $0.cache?.semanticThreshold != nil && $0.cache?.embedder != nil })
        #expect(config.provider("flaky")?.breaker.consecutiveFailures == 3)
        #expect(config.prices.price(for: "gpt-4o") != nil && config.server.anonymous)
    }
}
