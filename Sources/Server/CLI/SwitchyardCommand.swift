import ArgumentParser
import Engine
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import UnixSignals

/// `switchyard`: the gateway's command line.
public struct SwitchyardCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "switchyard",
        abstract: "An AI inference gateway: one endpoint in front of many LLM providers.",
        subcommands: [Serve.self, Simulate.self, ConfigCommand.self, Ctl.self, Keys.self, Tenants.self, UsageReport.self, LedgerCommand.self, BenchmarkCommand.self],
        defaultSubcommand: Serve.self
    )

    public init() {}
}

// MARK: - serve

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the gateway (the default command).")

    @Option(name: .long, help: "Config file (YAML). Default: $SWITCHYARD_CONFIG, else zero-config from the environment.")
    var config: String?

    @Option(name: .long, help: "Listen address host:port (overrides server.listen and $SWITCHYARD_LISTEN).")
    var listen: String?

    @Option(name: .long, help: "State directory (overrides server.state_dir and $SWITCHYARD_STATE_DIR).")
    var stateDir: String?

    @Flag(name: .long, help: "Serve the demo configuration (simulated providers, priced; tenants with budgets; a cache; a flaky provider) with synthetic traffic.")
    var demo = false

    @Flag(name: .long, help: "Send synthetic traffic to this gateway (its tenants' declared keys, its routes), for a demo.")
    var demoTraffic = false

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        var notes: [String] = []
        var gatewayConfig: GatewayConfig
        var source: ConfigSource?
        let (listen, stateDir) = (self.listen, self.stateDir)
        if self.demo {
            guard self.config == nil else { throw ValidationError("--demo serves its own configuration; with --config, use --demo-traffic") }
            gatewayConfig = try ConfigLoader.load(yaml: DemoConfig.yaml, source: "the demo configuration", environment: environment)
            try ConfigFile.applyOverrides(&gatewayConfig, environment: environment, listen: listen, stateDir: stateDir)
            notes.append("the demo configuration (switchyard serve --demo): simulated providers, three tenants with budgets, a cached route, a flaky provider, synthetic traffic")
        } else if let path = self.config ?? environment["SWITCHYARD_CONFIG"].flatMap({ $0.isEmpty ? nil : $0 }) {
            source = ConfigSource(path: path) { config in
                try ConfigFile.applyOverrides(&config, environment: ProcessInfo.processInfo.environment, listen: listen, stateDir: stateDir)
            }
            gatewayConfig = try source?.load() ?? GatewayConfig()
            notes.append("config from \(path) (SIGHUP or `switchyard ctl reload` re-reads it)")
        } else {
            let zero = ZeroConfig.make(environment: environment)
            gatewayConfig = zero.config
            notes += zero.notes
            try ConfigFile.applyOverrides(&gatewayConfig, environment: environment, listen: listen, stateDir: stateDir)
        }

        let logger = LogSetup.bootstrap(level: gatewayConfig.server.logLevel)
        for note in notes { logger.info("\(note)") }
        for provider in gatewayConfig.providers {
            logger.info(
                "provider \(provider.id)",
                metadata: [
                    "gw.kind": "\(provider.kind.rawValue)",
                    "gw.base_url": "\(provider.baseURL ?? "in-process simulator")",
                    "gw.api_key": "\(provider.apiKey?.redacted ?? "none")",
                ]
            )
        }

        let routes = gatewayConfig.routes.map(\.alias)
        let host = gatewayConfig.server.listen.host
        let traffic = self.demo || self.demoTraffic ? gatewayConfig : nil
        var service = GatewayService(config: gatewayConfig, source: source, logger: logger) { started in
            let address = "http://\(host):\(started.port)"
            if let traffic {
                // Ends with the process: nothing waits for a demo's requests.
                let local = ["0.0.0.0", "::", "[::]"].contains(host) ? "http://127.0.0.1:\(started.port)" : address
                Task.detached { await DemoTraffic(address: local, config: traffic, logger: logger).run() }
            }
            logger.info("listening on \(address)", metadata: ["gw.models": "\(routes.joined(separator: ","))"])
            logger.info("admin socket \(started.adminSocket) (switchyard ctl status, switchyard-console)")
            if let simulatorURL = started.simulatorURL {
                logger.info("simulated providers on \(simulatorURL)")
            }
            if let model = routes.first {
                logger.info(
                    "try it: curl -s \(address)/v1/chat/completions -H 'content-type: application/json' -d '{\"model\":\"\(model)\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}'"
                )
            }
        }
        service.tracing = try TracingSettings.resolve(gatewayConfig.tracing, environment: environment)
        // The gateway's sampler has read these and decides before a span exists; swift-otel, which reads
        // the environment again, must record every span it is then asked for, not sample a second time.
        if service.tracing != nil {
            for name in ["OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG"] { unsetenv(name) }
        }
        let group = ServiceGroup(
            configuration: .init(services: [service], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        )
        try await group.run()
        logger.info("stopped")
    }
}

// MARK: - simulate

struct Simulate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run only the simulated providers (OpenAI, Anthropic and Ollama shapes) on their own port."
    )

    @Option(name: .long, help: "Port to listen on (127.0.0.1).")
    var port: Int = 8090

    @Option(name: .long, help: "Time to first token, e.g. 200ms.")
    var ttft: String = "200ms"

    @Option(name: .long, help: "Tokens per second (0 = as fast as possible).")
    var tps: Double = 80

    func run() async throws {
        guard let ttft = DurationText.parse(self.ttft) else {
            throw ValidationError("--ttft: '\(self.ttft)' is not a duration (e.g. 200ms)")
        }
        let logger = LogSetup.bootstrap(level: ProcessInfo.processInfo.environment["SWITCHYARD_LOG_LEVEL"] ?? "info")
        let app = Application(
            router: SimulatorRouter(settings: SimulatorSettings(timeToFirstToken: ttft, tokensPerSecond: self.tps)).build(),
            configuration: .init(address: .hostname("127.0.0.1", port: self.port), serverName: nil),
            logger: logger
        )
        logger.info("simulated providers on http://127.0.0.1:\(self.port) (/v1/chat/completions, /v1/messages, /api/chat, /v1/embeddings, /api/embed)")
        try await app.runService()
    }
}

// MARK: - config

struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Work with config files.",
        subcommands: [Check.self]
    )

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Validate a config file offline and summarize it.")

        @Argument(help: "The YAML file to check.")
        var file: String

        func run() async throws {
            let config: GatewayConfig
            do {
                config = try ConfigFile.load(path: self.file, environment: ProcessInfo.processInfo.environment)
            } catch let error as ConfigError {
                FileHandle.standardError.write(Data((error.description + "\n").utf8))
                throw ExitCode(1)
            }
            print("\(self.file): OK")
            print("  listen \(config.server.listen), state_dir \(config.server.stateDir), max_body \(ByteSize.format(config.server.maxBodyBytes))")
            for provider in config.providers {
                print("  provider \(provider.id): \(provider.kind.rawValue) \(provider.baseURL ?? "(in-process simulator)") key=\(provider.apiKey?.redacted ?? "none")")
            }
            for route in config.routes {
                let targets = route.targets.map { "\($0.provider)/\($0.model) w\($0.weight) p\($0.priority)" }.joined(separator: ", ")
                var extras: [String] = []
                if !route.fallbacks.isEmpty { extras.append("fallbacks \(route.fallbacks.joined(separator: ", "))") }
                if let larger = route.contextFallback { extras.append("context fallback \(larger)") }
                if route.hedge != nil { extras.append("hedged") }
                extras.append("\(route.retry.attempts) attempts within \(DurationText.format(route.retry.deadline))")
                print("  route \(route.alias) (\(route.strategy.rawValue)): \(targets); \(extras.joined(separator: "; "))")
            }
            for (index, rule) in config.rules.enumerated() {
                print("  rule \(index + 1) → \(rule.route)")
            }
        }
    }
}

// MARK: - Shared

enum ConfigFile {
    struct Unreadable: Error, CustomStringConvertible {
        let path: String
        var description: String { "cannot read config file \(self.path)" }
    }

    struct BadPriceFile: Error, CustomStringConvertible {
        let path: String
        var description: String { "prices_file \(self.path): not a LiteLLM-format JSON object of models" }
    }

    /// Reads and validates the file; a `prices_file` it names is read too (relative to the file).
    static func load(path: String, environment: [String: String]) throws -> GatewayConfig {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw Unreadable(path: path)
        }
        var config = try ConfigLoader.load(yaml: text, source: path, environment: environment)
        if let pricesFile = config.pricesFile {
            let resolved = pricesFile.hasPrefix("/") ? pricesFile : ((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent(pricesFile)
            guard let json = FileManager.default.contents(atPath: resolved).flatMap({ JSONValue.parse(ByteBuffer(bytes: $0)) }), !json.keys.isEmpty else {
                throw BadPriceFile(path: resolved)
            }
            config.filePrices = PriceTable.liteLLM(json).table
        }
        return config
    }

    /// Environment and flags win over the file: flags over `SWITCHYARD_*` over `server:`.
    static func applyOverrides(_ config: inout GatewayConfig, environment: [String: String], listen: String?, stateDir: String?) throws {
        if let text = listen ?? environment["SWITCHYARD_LISTEN"].flatMap({ $0.isEmpty ? nil : $0 }) {
            guard let address = ListenAddress.parse(text) else { throw ValidationError("listen address '\(text)' is not host:port") }
            config.server.listen = address
        }
        if let directory = stateDir ?? environment["SWITCHYARD_STATE_DIR"].flatMap({ $0.isEmpty ? nil : $0 }) {
            config.server.stateDir = directory
        }
        if let text = environment["SWITCHYARD_SHUTDOWN_DELAY"], !text.isEmpty {
            guard let delay = DurationText.parse(text), delay <= ServerSettings.longestShutdownDelay else {
                throw ValidationError("SWITCHYARD_SHUTDOWN_DELAY '\(text)' is not a duration of at most 10m (e.g. 5s)")
            }
            config.server.shutdownDelay = delay
        }
        if let level = environment["SWITCHYARD_LOG_LEVEL"], !level.isEmpty {
            guard ServerSettings.logLevels.contains(level) else {
                throw ValidationError("SWITCHYARD_LOG_LEVEL '\(level)' is not one of \(ServerSettings.logLevels.joined(separator: ", "))")
            }
            config.server.logLevel = level
        }
    }
}

enum LogSetup {
    /// One process-wide log handler on stderr, at the configured level: JSON lines when stderr is not
    /// a terminal (a service manager, a container, a file), readable text when a person watches.
    /// `SWITCHYARD_LOG_FORMAT=json|text` chooses explicitly. A traced request's lines carry its
    /// `trace_id` and `span_id`.
    static func bootstrap(level: String) -> Logger {
        let logLevel = Logger.Level(rawValue: level) ?? .info
        let format = ProcessInfo.processInfo.environment["SWITCHYARD_LOG_FORMAT"] ?? (isatty(2) == 1 ? "text" : "json")
        LoggingSystem.bootstrap({ label, traceIDs in
            guard format == "json" else {
                var handler = StreamLogHandler.standardError(label: label, metadataProvider: traceIDs)
                handler.logLevel = logLevel
                return handler
            }
            return JSONLogHandler(label: label, level: logLevel, metadataProvider: traceIDs)
        }, metadataProvider: RequestTrace.logMetadataProvider)
        return Logger(label: "switchyard")
    }
}

extension SwitchyardCommand {
    /// Parses the command line and runs the chosen command.
    ///
    /// Dispatch is by concrete type: ArgumentParser's static `main()` picks its synchronous variant
    /// from a top-level `await`, and a dynamic cast to `AsyncParsableCommand` fails on Linux, both of
    /// which end in the help screen instead of the command. A command missing from `asynchronous` did
    /// just that (`SwitchyardCommandTests` checks every command is in it).
    public static func runMain() async {
        do {
            var command = try Self.parseAsRoot()
            if let run = Self.asynchronous[ObjectIdentifier(type(of: command))] {
                try await run(command)
            } else {
                try command.run()
            }
        } catch {
            Self.exit(withError: error)
        }
    }

    /// Every asynchronous command, by its type.
    static let asynchronous: [ObjectIdentifier: @Sendable (any ParsableCommand) async throws -> Void] = Dictionary(uniqueKeysWithValues: [
        Self.entry(Serve.self), Self.entry(Simulate.self), Self.entry(ConfigCommand.Check.self), Self.entry(Ctl.Status.self),
        Self.entry(Ctl.Drain.self), Self.entry(Ctl.Undrain.self), Self.entry(Ctl.Breaker.self), Self.entry(Ctl.Routes.Set.self), Self.entry(Ctl.Reload.self),
        Self.entry(Ctl.Cache.Flush.self), Self.entry(Ctl.Events.self), Self.entry(Ctl.Audit.self), Self.entry(Keys.Create.self),
        Self.entry(Keys.List.self), Self.entry(Keys.Revoke.self), Self.entry(Tenants.List.self), Self.entry(UsageReport.self),
        Self.entry(LedgerCommand.RollUpCommand.self), Self.entry(BenchmarkCommand.SemanticIndexBenchmark.self),
        Self.entry(BenchmarkCommand.LedgerBenchmark.self),
    ])

    private static func entry<Command: AsyncParsableCommand>(
        _: Command.Type
    ) -> (ObjectIdentifier, @Sendable (any ParsableCommand) async throws -> Void) {
        (ObjectIdentifier(Command.self), { command in
            guard var concrete = command as? Command else { return }
            try await concrete.run()
        })
    }
}
