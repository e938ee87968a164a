#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import Engine

/// The classification behind image fetching: pure, so every range is checked here without a packet sent.
struct AddressPolicyTests {
    /// The address `inet_pton` reads from `text`, as a resolver would hand it over.
    static func address(_ text: String) throws -> IPAddress {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return try #require(withUnsafeBytes(of: v4) { IPAddress(bytes: $0) }) }
        var v6 = in6_addr()
        try #require(inet_pton(AF_INET6, text, &v6) == 1, "not an address: \(text)")
        return try #require(withUnsafeBytes(of: v6) { IPAddress(bytes: $0) })
    }

    static let scopes: [(String, AddressScope)] = [
        ("127.0.0.1", .loopback), ("127.255.255.254", .loopback), ("::1", .loopback), ("::ffff:127.0.0.1", .loopback),
        ("0.0.0.0", .unspecified), ("0.1.2.3", .unspecified), ("::", .unspecified), ("::ffff:0.0.0.0", .unspecified),
        ("10.0.0.1", .private), ("10.255.255.255", .private), ("172.16.0.1", .private), ("172.31.255.255", .private),
        ("192.168.1.1", .private), ("100.64.0.1", .private), ("100.127.255.255", .private), ("::ffff:10.1.2.3", .private),
        ("fc00::1", .private), ("fd12:3456::1", .private), ("fec0::1", .private),
        ("169.254.169.254", .linkLocal), ("::ffff:169.254.169.254", .linkLocal), ("fe80::1", .linkLocal), ("febf::1", .linkLocal),
        ("64:ff9b::a9fe:a9fe", .linkLocal),
        ("224.0.0.1", .multicast), ("239.255.255.250", .multicast), ("ff02::1", .multicast), ("ff05::2", .multicast),
        ("255.255.255.255", .broadcast),
        ("240.0.0.1", .reserved), ("192.0.2.1", .reserved), ("198.51.100.7", .reserved), ("203.0.113.9", .reserved),
        ("198.18.0.1", .reserved), ("192.0.0.8", .reserved), ("192.88.99.1", .reserved),
        ("::7f00:1", .reserved), ("100::1", .reserved), ("2001:db8::1", .reserved), ("2001::1", .reserved), ("2002:7f00:1::1", .reserved),
        ("3fff::1", .reserved), ("4000::1", .reserved), ("::ffff:240.0.0.1", .reserved),
        ("8.8.8.8", .global), ("1.1.1.1", .global), ("93.184.216.34", .global), ("100.63.255.255", .global), ("100.128.0.0", .global),
        ("172.15.255.255", .global), ("172.32.0.0", .global), ("11.0.0.1", .global), ("::ffff:8.8.8.8", .global),
        ("64:ff9b::808:808", .global), ("2606:4700::1111", .global), ("2a00:1450::1", .global),
    ]

    @Test(arguments: Self.scopes)
    func everyRangeHasItsScope(_ text: String, _ scope: AddressScope) throws {
        #expect(AddressPolicy.scope(of: try Self.address(text)) == scope, "\(text)")
    }

    @Test func onlyGlobalAddressesArePermittedAndLoopbackOnlyWhenTestsWidenIt() throws {
        let widened = AddressPolicy(allowsLoopback: true)
        for (text, scope) in Self.scopes {
            let address = try Self.address(text)
            #expect(AddressPolicy.publicOnly.permits(address) == (scope == .global), "\(text)")
            #expect(widened.permits(address) == (scope == .global || scope == .loopback), "\(text)")
        }
    }

    @Test func theTextFormIsOneTheSystemReadsBackToTheSameAddress() throws {
        for (text, _) in Self.scopes {
            let address = try Self.address(text)
            #expect(try Self.address(address.description) == address, "\(text) → \(address)")
        }
        #expect(try Self.address("127.0.0.1").description == "127.0.0.1")
        #expect(IPAddress(bytes: [1, 2, 3]) == nil)
    }
}
