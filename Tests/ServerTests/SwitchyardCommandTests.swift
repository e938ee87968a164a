import ArgumentParser
import Testing

@testable import Server

struct SwitchyardCommandTests {
    /// Every command the command line offers runs, rather than printing its help: an asynchronous
    /// command must be in `SwitchyardCommand.asynchronous` (`switchyard ledger rollup` was not, and
    /// printed its help). The synchronous ones are named here.
    @Test func everyCommandIsDispatched() {
        let synchronous: Set<ObjectIdentifier> = [ObjectIdentifier(BenchmarkCommand.FastPathBenchmark.self)]
        var leaves: [any ParsableCommand.Type] = []
        func walk(_ command: any ParsableCommand.Type) {
            let subcommands = command.configuration.subcommands
            if subcommands.isEmpty { leaves.append(command) }
            subcommands.forEach(walk)
        }
        walk(SwitchyardCommand.self)
        #expect(leaves.count > 15)
        for leaf in leaves where !synchronous.contains(ObjectIdentifier(leaf)) {
            #expect(SwitchyardCommand.asynchronous[ObjectIdentifier(leaf)] != nil, "\(leaf) is not dispatched: it would print its help")
        }
    }
}
