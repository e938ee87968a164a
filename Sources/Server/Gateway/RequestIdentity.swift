import Synchronization

/// Request ids: the client's own `x-request-id` when it sent a sane one (so traces join up), otherwise
/// a process-unique `req_<random prefix><counter>` that costs one atomic add, not a syscall.
final class RequestIdentity: Sendable {
    private let prefix: String
    private let counter = Atomic<UInt64>(0)

    /// `req_`, five random base-36 characters, then the counter in base 36: an id stays within the 15
    /// bytes a `String` holds without an allocation for the first 2 billion requests of a process.
    init() {
        var generator = SystemRandomNumberGenerator()
        let span: UInt64 = 60_466_176  // 36^5
        // A leading 1 keeps the five characters' zeros; it is dropped.
        self.prefix = "req_" + String(generator.next(upperBound: span) + span, radix: 36).dropFirst()
    }

    func make(clientSupplied: String?) -> String {
        if let supplied = clientSupplied, Self.isAcceptable(supplied) { return supplied }
        let value = self.counter.add(1, ordering: .relaxed).newValue
        return self.prefix + String(value, radix: 36)
    }

    /// Up to 128 printable ASCII characters: anything else could break log lines or header parsing.
    static func isAcceptable(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 128 && id.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }
}
