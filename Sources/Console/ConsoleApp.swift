import CCurl
import CNcursesw
import Engine
import Foundation
import Glibc
import Synchronization

/// Set by SIGINT/SIGTERM; the loop sees it and restores the terminal on its way out.
let interrupted = Atomic<Bool>(false)

/// `switchyard-console`: the live operations console of a running gateway, over its admin socket.
@main
enum ConsoleApp {
    struct Options {
        var socket: String
        var theme = "default"
        var refresh = Duration.seconds(1)
        var readOnly = false
    }

    static let usage = """
        usage: switchyard-console [--socket PATH] [--theme NAME] [--refresh 1s] [--read-only]

        The live operations console of a running Switchyard gateway, attached to its admin socket
        (default: $SWITCHYARD_ADMIN_SOCKET, else $SWITCHYARD_STATE_DIR/admin.sock, else ./.switchyard/admin.sock).
        Themes: themes/NAME.theme (default, light, monochrome, high-contrast). NO_COLOR is respected.
        Press ? or F1 inside for the keys.
        """

    static func main() {
        let options: Options
        switch self.parse(Array(CommandLine.arguments.dropFirst())) {
        case .success(let parsed): options = parsed
        case .failure(let problem):
            if problem.exitCode == 0 {
                FileHandle.standardOutput.write(Data(((problem.message.isEmpty ? Self.usage : problem.message) + "\n").utf8))
            } else {
                FileHandle.standardError.write(Data("\(problem.message)\n\n\(Self.usage)\n".utf8))
            }
            exit(problem.exitCode)
        }
        var theme = ProcessInfo.noColor ? Theme.attributesOnly : Theme.load(named: options.theme)
        if ProcessInfo.noColor && options.theme != "default" { theme = Theme.attributesOnly }
        curl_global_init(Int(CURL_GLOBAL_DEFAULT))
        self.run(options, theme: theme)
    }

    static func run(_ options: Options, theme: Theme) {
        for signalNumber in [SIGINT, SIGTERM, SIGHUP] {
            signal(signalNumber) { _ in interrupted.store(true, ordering: .relaxed) }
        }
        let terminal = Terminal(theme: theme)
        // However the process ends normally, the terminal is given back.
        atexit { endwin() }
        defer { terminal.restore() }

        let client = AdminClient(socketPath: options.socket)
        let follower = EventFollower(client: client)
        follower.start()
        defer { follower.stop() }

        var state = ViewState(readOnly: options.readOnly, socketPath: options.socket)
        if !theme.warnings.isEmpty { state.message = (theme.warnings.joined(separator: "; "), true) }
        var renderer = Renderer(unicode: terminal.unicode)
        var nextPoll = ContinuousClock.now
        var dirty = true
        while !interrupted.load(ordering: .relaxed) {
            let now = ContinuousClock.now
            if now >= nextPoll {
                nextPoll = now + options.refresh
                switch client.snapshot() {
                case .success(let snapshot): state.apply(snapshot: snapshot, at: Date().timeIntervalSince1970)
                case .failure(let failure): state.apply(disconnected: failure.message, at: Date().timeIntervalSince1970)
                }
                // Only while the Tenants screen shows it: one more small call per refresh.
                if let tenant = state.tenantDetailWanted { state.apply(tenantDetail: client.tenantDetail(tenant)) }
                dirty = true
            }
            let events = follower.drain()
            if !events.isEmpty {
                state.apply(events: events)
                dirty = true
            }
            if dirty {
                renderer.now = Date().timeIntervalSince1970
                let size = terminal.size
                terminal.draw(renderer.render(state, width: size.width, height: size.height))
                dirty = false
            }
            guard let key = terminal.readKey() else { continue }
            dirty = true
            if key == .resize {
                terminal.invalidate()
                continue
            }
            if state.mode == .normal { state.message = nil }
            for command in state.handle(key) {
                if command == .quit { return }
                let result = client.perform(command)
                state.apply(result: result.text, ok: result.ok, of: command)
                nextPoll = ContinuousClock.now
            }
        }
    }

    struct UsageProblem: Error {
        let message: String
        let exitCode: Int32
    }

    static func parse(_ arguments: [String]) -> Result<Options, UsageProblem> {
        let environment = ProcessInfo.processInfo.environment
        let defaultSocket = environment["SWITCHYARD_ADMIN_SOCKET"]
            ?? ((environment["SWITCHYARD_STATE_DIR"] ?? "./.switchyard") as NSString).appendingPathComponent("admin.sock")
        var options = Options(socket: defaultSocket)
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            func value() -> String? {
                index += 1
                return index < arguments.count ? arguments[index] : nil
            }
            switch argument {
            case "--help", "-h": return .failure(UsageProblem(message: "", exitCode: 0))
            case "--version":
                return .failure(UsageProblem(message: "switchyard-console 0.2.0 (\(String(cString: curses_version())), \(String(cString: curl_version())))", exitCode: 0))
            case "--read-only": options.readOnly = true
            case "--socket":
                guard let path = value() else { return .failure(UsageProblem(message: "--socket needs a path", exitCode: 2)) }
                options.socket = path
            case "--theme":
                guard let name = value() else { return .failure(UsageProblem(message: "--theme needs a name", exitCode: 2)) }
                options.theme = name
            case "--refresh":
                guard let text = value(), let interval = DurationText.parse(text), interval >= .milliseconds(100) else {
                    return .failure(UsageProblem(message: "--refresh needs a duration of at least 100ms (e.g. 1s, 500ms)", exitCode: 2))
                }
                options.refresh = interval
            default:
                return .failure(UsageProblem(message: "unknown argument '\(argument)'", exitCode: 2))
            }
            index += 1
        }
        return .success(options)
    }
}
