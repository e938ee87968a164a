import Synchronization

/// Request ids: the client's own `x-request-id` when it sent a sane one (so traces join up), otherwise
/// a process-unique `req_<random prefix><counter>` that costs one atomic add, not a syscall.
final class RequestIdentity: Sendable {
    private let prefix: String
    private let counter = Atomic<UInt64>(0)

    init() {
        var generator = SystemRandomNumberGenerator()
        self.prefix = "req_" + String(generator.next() as UInt32, radix: 36)
    }

    func make(clientSupplied: String?) -> String {
        if let supplied = clientSupplied, Self.isAcceptable(supplied) { return supplied }
        let value = self.counter.add(1, ordering: .relaxed).newValue
        return self.prefix + "_" + String(value, radix: 36)
    }

    /// Up to 128 printable ASCII characters: anything else could break log lines or header parsing.
    static func isAcceptable(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 128 && id.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }
}
