import CCurl
import CNcursesw
import Glibc

/// `switchyard-console`: the live operations console. The dashboard itself arrives with the admin
/// socket; for now this prints its usage and the terminal and HTTP libraries it is built on.
let usage = """
    usage: switchyard-console [--socket PATH] [--theme NAME] [--refresh 1s] [--read-only]

    The live ncurses operations console for a running Switchyard gateway. It attaches to the
    gateway's admin socket (default ./.switchyard/admin.sock).

    Not available yet: this build has no admin socket to attach to.
    """

let arguments = CommandLine.arguments.dropFirst()
if arguments.contains("--version") {
    let curl = String(cString: curl_version())
    let curses = String(cString: curses_version())
    print("switchyard-console 0.1.0 (\(curses), \(curl))")
    exit(0)
}
print(usage)
exit(arguments.isEmpty || arguments.contains("--help") || arguments.contains("-h") ? 0 : 2)
