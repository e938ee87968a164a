import Foundation
import NIOCore
import NIOPosix
import Server

/// One event loop per CPU this process may run on (its affinity mask, which `taskset` and container
/// CPU sets narrow), unless `SWITCHYARD_THREADS` says otherwise. NIO counts all of the machine's
/// CPUs, and two loops on one core pay a cross-thread wake-up for every upstream hop.
func eventLoopCount() -> Int {
    if let text = ProcessInfo.processInfo.environment["SWITCHYARD_THREADS"], let count = Int(text), count > 0 {
        return count
    }
    // `Cpus_allowed_list:\t0-1,3`
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") }),
        let list = line.split(separator: ":").last
    else { return System.coreCount }
    let count = list.split(separator: ",").reduce(0) { total, part in
        let bounds = part.split(separator: "-").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        return total + (bounds.count == 2 ? bounds[1] - bounds[0] + 1 : 1)
    }
    return max(1, min(count, System.coreCount))
}

NIOSingletons.groupLoopCountSuggestion = eventLoopCount()
// Run Swift concurrency on NIO's event loops, so a request handler and its sockets share threads
// instead of hopping between two pools on every await.
_ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
await SwitchyardCommand.runMain()
