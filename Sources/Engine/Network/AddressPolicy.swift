/// An IP address as a resolver returns it: IPv4 or IPv6, by value.
public enum IPAddress: Sendable, Hashable, CustomStringConvertible {
    case v4(UInt32)
    /// The 128 bits as two halves, most significant first.
    case v6(high: UInt64, low: UInt64)

    /// From its bytes in network order: 4 for IPv4, 16 for IPv6; nil for any other count.
    public init?(bytes: some Collection<UInt8>) {
        switch bytes.count {
        case 4: self = .v4(bytes.reduce(0) { $0 << 8 | UInt32($1) })
        case 16:
            let high = bytes.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let low = bytes.dropFirst(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            self = .v6(high: high, low: low)
        default: return nil
        }
    }

    /// Dotted quad, or eight uncompressed hex groups: text any `inet_pton` reads back to the same address.
    public var description: String {
        switch self {
        case .v4(let value):
            return stride(from: 24, through: 0, by: -8).map { String((value >> UInt32($0)) & 0xFF) }.joined(separator: ".")
        case .v6(let high, let low):
            let groups = [high, low].flatMap { half in stride(from: 48, through: 0, by: -16).map { (half >> UInt64($0)) & 0xFFFF } }
            return groups.map { String($0, radix: 16) }.joined(separator: ":")
        }
    }
}

/// What an address reaches, as far as a gateway fetching on a client's behalf must care.
public enum AddressScope: String, Sendable, Equatable {
    /// Routed on the public internet: the only scope a client may make the gateway fetch from.
    case global
    case loopback
    /// RFC 1918, CGNAT (100.64/10), IPv6 unique-local (fc00::/7) and the deprecated site-local fec0::/10.
    case `private`
    case linkLocal
    case multicast
    /// 0.0.0.0/8 and `::`: connecting there reaches this host.
    case unspecified
    case broadcast
    /// Documentation, benchmarking, protocol-assignment and future-use ranges, transition
    /// prefixes that hide an IPv4 address (6to4, Teredo), and all IPv6 outside 2000::/3.
    case reserved
}

/// Which addresses the gateway may connect to when a client names the host (image URLs).
///
/// The rule is an allow-list: only `global` addresses, because an address the classification does
/// not know to be public must be treated as internal. IPv4-mapped (`::ffff:a.b.c.d`) and NAT64
/// (`64:ff9b::a.b.c.d`) addresses are judged by the IPv4 address inside them.
public struct AddressPolicy: Sendable, Equatable {
    /// Loopback too. Set only by tests, whose servers can only listen on loopback; never from configuration.
    public var allowsLoopback: Bool

    /// The policy of a running gateway: public addresses only.
    public static let publicOnly = AddressPolicy(allowsLoopback: false)

    public init(allowsLoopback: Bool) {
        self.allowsLoopback = allowsLoopback
    }

    public func permits(_ address: IPAddress) -> Bool {
        switch Self.scope(of: address) {
        case .global: return true
        case .loopback: return self.allowsLoopback
        default: return false
        }
    }

    public static func scope(of address: IPAddress) -> AddressScope {
        switch address {
        case .v4(let value): return self.scope(ofV4: value)
        case .v6(let high, let low): return self.scope(ofV6: high, low)
        }
    }

    private static func scope(ofV4 address: UInt32) -> AddressScope {
        func within(_ prefix: UInt32, _ length: UInt32) -> Bool {
            address >> (32 - length) == prefix >> (32 - length)
        }
        if within(0x0000_0000, 8) { return .unspecified }  // 0.0.0.0/8
        if within(0x7F00_0000, 8) { return .loopback }  // 127.0.0.0/8
        if within(0x0A00_0000, 8) || within(0xAC10_0000, 12) || within(0xC0A8_0000, 16) { return .private }  // RFC 1918
        if within(0x6440_0000, 10) { return .private }  // 100.64.0.0/10, carrier-grade NAT
        if within(0xA9FE_0000, 16) { return .linkLocal }  // 169.254.0.0/16, cloud metadata lives here
        if within(0xE000_0000, 4) { return .multicast }  // 224.0.0.0/4
        if address == 0xFFFF_FFFF { return .broadcast }
        let reserved: [(UInt32, UInt32)] = [
            (0xC000_0000, 24),  // 192.0.0.0/24 IETF protocol assignments
            (0xC000_0200, 24),  // 192.0.2.0/24 TEST-NET-1
            (0xC058_6300, 24),  // 192.88.99.0/24 6to4 relay anycast
            (0xC612_0000, 15),  // 198.18.0.0/15 benchmarking
            (0xC633_6400, 24),  // 198.51.100.0/24 TEST-NET-2
            (0xCB00_7100, 24),  // 203.0.113.0/24 TEST-NET-3
            (0xF000_0000, 4),  // 240.0.0.0/4 future use
        ]
        return reserved.contains { within($0.0, $0.1) } ? .reserved : .global
    }

    private static func scope(ofV6 high: UInt64, _ low: UInt64) -> AddressScope {
        func within(_ prefix: UInt64, _ length: UInt64) -> Bool {
            high >> (64 - length) == prefix >> (64 - length)
        }
        if high == 0 && low == 0 { return .unspecified }
        if high == 0 && low == 1 { return .loopback }
        let embeddedV4 = UInt32(truncatingIfNeeded: low)
        if high == 0 && low >> 32 == 0xFFFF { return self.scope(ofV4: embeddedV4) }  // ::ffff:0:0/96, IPv4-mapped
        if high == 0x0064_FF9B_0000_0000 && low >> 32 == 0 { return self.scope(ofV4: embeddedV4) }  // 64:ff9b::/96, NAT64
        if within(0xFF00_0000_0000_0000, 8) { return .multicast }
        if within(0xFE80_0000_0000_0000, 10) { return .linkLocal }
        if within(0xFC00_0000_0000_0000, 7) || within(0xFEC0_0000_0000_0000, 10) { return .private }
        let reserved: [(UInt64, UInt64)] = [
            (0x2001_0000_0000_0000, 23),  // IETF protocol assignments, Teredo among them
            (0x2001_0DB8_0000_0000, 32),  // documentation
            (0x2002_0000_0000_0000, 16),  // 6to4: an IPv4 address (any IPv4 address) behind a relay
            (0x3FFF_0000_0000_0000, 20),  // documentation
        ]
        guard within(0x2000_0000_0000_0000, 3), !reserved.contains(where: { within($0.0, $0.1) }) else { return .reserved }
        return .global
    }
}
