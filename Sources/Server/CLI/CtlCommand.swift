import ArgumentParser
import AsyncHTTPClient
import Engine
import Foundation
import NIOCore
import NIOHTTP1

/// `switchyard ctl`: the admin API from the shell, over the admin socket.
struct Ctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Operate a running gateway through its admin socket.",
        subcommands: [Status.self, Drain.self, Undrain.self, Breaker.self, Routes.self, Reload.self, Cache.self, Events.self, Audit.self]
    )

    struct Connection: ParsableArguments {
        @Option(name: .long, help: "The admin socket. Default: $SWITCHYARD_ADMIN_SOCKET, else $SWITCHYARD_STATE_DIR/admin.sock, else ./.switchyard/admin.sock.")
        var socket: String?

        @Flag(name: .long, help: "Print the API's JSON instead of tables.")
        var json = false

        var socketPath: String {
            let environment = ProcessInfo.processInfo.environment
            if let socket = self.socket ?? environment["SWITCHYARD_ADMIN_SOCKET"] { return socket }
            return ((environment["SWITCHYARD_STATE_DIR"] ?? "./.switchyard") as NSString).appendingPathComponent("admin.sock")
        }

        /// The URL of `path` on the admin socket (AsyncHTTPClient's `http+unix` scheme).
        func url(_ path: String) -> String {
            let encodedSocket = self.socketPath.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? self.socketPath
            return "http+unix://\(encodedSocket)\(path)"
        }

        /// Runs `body` with a client of its own, shut down after, whatever happens.
        static func withClient<Value>(read: Duration?, _ body: (HTTPClient) async throws -> Value) async throws -> Value {
            let timeout = HTTPClient.Configuration.Timeout(connect: .seconds(2), read: read.map { .milliseconds($0.milliseconds) })
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(timeout: timeout))
            do {
                let value = try await body(client)
                try await client.shutdown()
                return value
            } catch {
                try? await client.shutdown()
                throw error
            }
        }

        /// Calls the admin API; an error answer becomes a failing exit with its message.
        func call(_ method: HTTPMethod, _ path: String, body: Data? = nil) async throws -> Data {
            try await Self.withClient(read: .seconds(30)) { client in try await self.call(method, path, body: body, client: client) }
        }

        private func call(_ method: HTTPMethod, _ path: String, body: Data?, client: HTTPClient) async throws -> Data {
            var request = HTTPClientRequest(url: self.url(path))
            request.method = method
            if let body {
                request.headers.add(name: "content-type", value: "application/json")
                request.body = .bytes(ByteBuffer(bytes: body))
            }
            let response: HTTPClientResponse
            do {
                response = try await client.execute(request, timeout: .seconds(30))
            } catch {
                throw CtlFailure(message: "cannot reach the gateway's admin socket at \(self.socketPath) (\(error)); is it running with this state dir?")
            }
            let data = Data((try await response.body.collect(upTo: 16 << 20)).readableBytesView)
            guard (200..<300).contains(Int(response.status.code)) else {
                let problem = try? AdminJSON.decoder().decode(AdminProblem.Envelope.self, from: data)
                throw CtlFailure(message: "\(response.status.code): \(problem?.error.message ?? String(decoding: data, as: UTF8.self))")
            }
            return data
        }

        func show<Value: Decodable>(_ data: Data, as type: Value.Type, _ render: (Value) -> String) throws {
            if self.json {
                print(String(decoding: data, as: UTF8.self))
            } else {
                print(render(try AdminJSON.decoder().decode(type, from: data)), terminator: "")
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Traffic, targets and routes at a glance.")
        @OptionGroup var connection: Connection

        func run() async throws {
            let data = try await self.connection.call(.GET, "/v1/snapshot")
            try self.connection.show(data, as: AdminSnapshot.self, StatusText.render)
        }
    }

    struct Drain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop new requests to a provider; in-flight ones finish.")
        @OptionGroup var connection: Connection
        @Argument(help: "The provider id.") var provider: String

        func run() async throws {
            try await Self.toggle(self.provider, "drain", self.connection)
        }

        static func toggle(_ provider: String, _ verb: String, _ connection: Connection) async throws {
            let data = try await connection.call(.POST, "/v1/providers/\(AdminPath.segment(provider))/\(verb)")
            try connection.show(data, as: AdminAck.self) { "\($0.message)\n" }
        }
    }

    struct Undrain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Put a drained provider back in rotation.")
        @OptionGroup var connection: Connection
        @Argument(help: "The provider id.") var provider: String

        func run() async throws {
            try await Drain.toggle(self.provider, "undrain", self.connection)
        }
    }

    struct Breaker: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Open a provider's breakers (they rest, then probe) or reset them (closed, failures forgotten).",
            discussion: "Example: switchyard ctl breaker reset openai --model gpt-4o"
        )
        @OptionGroup var connection: Connection
        @Argument(help: "open | reset") var verb: String
        @Argument(help: "The provider id.") var provider: String
        @Option(name: .long, help: "Only this model's target.") var model: String?

        func run() async throws {
            guard ["open", "reset"].contains(self.verb) else { throw ValidationError("expected open or reset, not '\(self.verb)'") }
            let query = self.model.map { "?model=" + AdminPath.query($0) } ?? ""
            let data = try await self.connection.call(.POST, "/v1/providers/\(AdminPath.segment(self.provider))/breaker/\(self.verb)\(query)")
            try self.connection.show(data, as: AdminAck.self) { "\($0.message)\n" }
        }
    }

    struct Routes: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change routes at runtime.", subcommands: [Set.self])

        struct Set: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Replace a route's targets (and strategy). A reload of the file discards the edit.",
                discussion: "Example: switchyard ctl routes set gpt-4o --strategy weighted --target openai/gpt-4o:3 --target azure/gpt-4o:1"
            )
            @OptionGroup var connection: Connection
            @Argument(help: "The route alias.") var alias: String
            @Option(name: .long, help: "weighted | least-busy | latency | cost | priority") var strategy: String?
            @Option(name: .long, help: "provider/model[:weight[:priority]], repeatable, in order.") var target: [String] = []

            func run() async throws {
                let targets = try self.target.map { text -> RouteEdit.Target in
                    guard let slash = text.firstIndex(of: "/") else { throw ValidationError("--target '\(text)': expected provider/model[:weight[:priority]]") }
                    let provider = String(text[..<slash])
                    var parts = text[text.index(after: slash)...].split(separator: ":", omittingEmptySubsequences: false).map(String.init)
                    var priority: Int?
                    var weight: Int?
                    if parts.count >= 3, let number = Int(parts[parts.count - 1]), let w = Int(parts[parts.count - 2]) {
                        priority = number
                        weight = w
                        parts.removeLast(2)
                    } else if parts.count >= 2, let number = Int(parts[parts.count - 1]) {
                        weight = number
                        parts.removeLast()
                    }
                    return RouteEdit.Target(provider: provider, model: parts.joined(separator: ":"), weight: weight, priority: priority)
                }
                let body = try AdminJSON.encoder().encode(RouteEdit(strategy: self.strategy, targets: targets))
                let data = try await self.connection.call(.PUT, "/v1/routes/\(AdminPath.segment(self.alias))", body: body)
                try self.connection.show(data, as: AdminAck.self) { "\($0.message)\n" }
            }
        }
    }

    struct Reload: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Re-read and validate the config file; apply it only if all of it is valid.")
        @OptionGroup var connection: Connection

        func run() async throws {
            let data = try await self.connection.call(.POST, "/v1/config/reload")
            try self.connection.show(data, as: ReloadReport.self) { report in
                var text = "config v\(report.configVersion) in force\n"
                text += report.changes.isEmpty ? "  no changes\n" : report.changes.map { "  \($0)\n" }.joined()
                if !report.needsRestart.isEmpty { text += "  needs a restart to apply: \(report.needsRestart.joined(separator: ", "))\n" }
                if !report.discardedEdits.isEmpty { text += "  runtime edits replaced by the file: \(report.discardedEdits.joined(separator: ", "))\n" }
                return text
            }
        }
    }

    struct Cache: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Work with the response cache.", subcommands: [Flush.self])

        struct Flush: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Empty the cache (all, one tenant's, one route's).")
            @OptionGroup var connection: Connection
            @Option(name: .long) var tenant: String?
            @Option(name: .long) var route: String?

            func run() async throws {
                var query: [String] = []
                if let tenant = self.tenant { query.append("tenant=\(AdminPath.query(tenant))") }
                if let route = self.route { query.append("route=\(AdminPath.query(route))") }
                let data = try await self.connection.call(.POST, "/v1/cache/flush" + (query.isEmpty ? "" : "?" + query.joined(separator: "&")))
                try self.connection.show(data, as: AdminAck.self) { "\($0.message)\n" }
            }
        }
    }

    struct Events: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Follow the event stream (requests and state changes) until interrupted.")
        @OptionGroup var connection: Connection

        func run() async throws {
            try await Connection.withClient(read: nil) { client in
                let response = try await client.execute(HTTPClientRequest(url: self.connection.url("/v1/events")), timeout: .seconds(5))
                try await self.follow(response.body)
            }
        }

        private func follow(_ body: HTTPClientResponse.Body) async throws {
            var events = StreamEventFramer(.blankLine, provider: "switchyard")
            for try await chunk in body {
                let framed = events.feed(chunk)
                for event in framed.events {
                    guard let payload = event.content.withUnsafeReadableBytes(SSE.data) else { continue }
                    // Written unbuffered: line by line, also into a pipe.
                    if self.connection.json {
                        FileHandle.standardOutput.write(Data((payload + "\n").utf8))
                    } else if let event = try? AdminJSON.decoder().decode(AdminEvent.self, from: Data(payload.utf8)) {
                        FileHandle.standardOutput.write(Data((StatusText.line(event) + "\n").utf8))
                    }
                }
                if let failure = framed.failure { throw failure }
            }
        }
    }

    struct Audit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The latest admin actions: who did what.")
        @OptionGroup var connection: Connection

        func run() async throws {
            let data = try await self.connection.call(.GET, "/v1/audit")
            try self.connection.show(data, as: [AuditEntry].self) { rows in
                StatusText.table(
                    ["when", "who", "action", "target", "ok", "detail"],
                    rows.map { [StatusText.time($0.at), $0.actor, $0.action, $0.target ?? "-", $0.ok ? "yes" : "no", String($0.detail.prefix(60))] }
                )
            }
        }
    }
}

/// A failed admin call: reported as it is, without the usage text a `ValidationError` brings.
struct CtlFailure: Error, CustomStringConvertible {
    let message: String
    var description: String { self.message }
}

/// Human-readable renderings of admin messages.
enum StatusText {
    static func render(_ snapshot: AdminSnapshot) -> String {
        var text = "uptime \(Int(snapshot.uptimeSeconds)) s, config v\(snapshot.configVersion) (\(snapshot.configSource))\n\n"
        text += self.table(
            ["window", "req/s", "errors", "p50 ms", "p95 ms", "p99 ms", "ttft p50", "ttft p99"],
            ["10s", "1m", "15m"].compactMap { name in
                snapshot.windows[name].map { window in
                    [name, self.number(window.requestsPerSecond), self.percent(window.errorRate), self.ms(window.latencyMs.p50), self.ms(window.latencyMs.p95),
                     self.ms(window.latencyMs.p99), self.ms(window.timeToFirstTokenMs.p50), self.ms(window.timeToFirstTokenMs.p99)]
                }
            }
        )
        text += "\n" + self.table(
            ["target", "health", "breaker", "in flight", "req/1m", "errors", "p50 ms", "p99 ms", "last error"],
            snapshot.targets.map { target in
                ["\(target.provider)/\(target.model)", target.health, target.breaker, "\(target.inFlight)", "\(target.requests1m)",
                 self.percent(target.errorRate1m), self.ms(target.latencyMs.p50), self.ms(target.latencyMs.p99), String((target.lastError ?? "-").prefix(50))]
            }
        )
        text += "\n" + self.table(
            ["route", "strategy", "targets (weight, share 1m)", "req/1m"],
            snapshot.routes.map { route in
                let targets = route.targets.map { "\($0.provider)/\($0.model) w\($0.weight) \(Int(($0.share1m * 100).rounded()))%" }.joined(separator: ", ")
                return [route.alias + (route.editedAtRuntime ? " *" : ""), route.strategy, targets, "\(route.requests1m)"]
            }
        )
        if snapshot.routes.contains(where: \.editedAtRuntime) { text += "* edited at runtime; a reload of the file replaces it\n" }
        return text
    }

    static func line(_ event: AdminEvent) -> String {
        var parts = [self.time(event.time), event.kind.rawValue]
        if let status = event.status { parts.append("\(status)") }
        if let route = event.route { parts.append(route) }
        if let provider = event.provider { parts.append("→ \(provider)" + (event.model.map { "/\($0)" } ?? "")) }
        if let latency = event.latencyMs { parts.append("\(Int(latency.rounded())) ms") }
        if event.kind != .request || event.failure != nil { parts.append(event.message) }
        return parts.joined(separator: "  ")
    }

    static func table(_ header: [String], _ rows: [[String]]) -> String {
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        return all.map { row in
            row.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces) + "\n"
        }.joined()
    }

    static func ms(_ value: Double?) -> String { value.map { String(format: "%.1f", $0) } ?? "-" }
    static func number(_ value: Double) -> String { String(format: "%.1f", value) }
    static func percent(_ value: Double) -> String { String(format: "%.1f%%", value * 100) }

    static func time(_ seconds: Double) -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "HH:mm:ss"
        return formatter.string(from: Date(timeIntervalSince1970: seconds))
    }
}
