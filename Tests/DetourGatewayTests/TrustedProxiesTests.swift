import DetourGateway
import Testing

@Suite struct TrustedProxiesTests {
    @Test func matchesAddressesAndBlocks() throws {
        let trusted = try TrustedProxies(["127.0.0.1", "10.0.0.0/8", "fd00::/8", "::1"])
        for address in ["127.0.0.1", "10.1.2.3", "10.255.255.255", "fd12::1", "::1"] {
            #expect(trusted.trusts(address), "\(address)")
        }
        for address in ["127.0.0.2", "11.0.0.1", "fe80::1", "::2", nil, "localhost", "not an address"] {
            #expect(!trusted.trusts(address), "\(address ?? "nil")")
        }
        #expect(!(try TrustedProxies([])).trusts("127.0.0.1"), "an empty list trusts nobody")
    }

    /// Issue 14.5: a dual-stack socket reports an IPv4 peer as `::ffff:a.b.c.d`; it is that IPv4 address, for
    /// entries written either way, and never a way around a narrower block.
    @Test func ipv4MappedPeersAreTheirIPv4Addresses() throws {
        let trusted = try TrustedProxies(["127.0.0.1", "10.0.0.0/8", "::ffff:192.168.1.0/120"])
        for address in ["::ffff:127.0.0.1", "::ffff:7f00:1", "::ffff:10.9.8.7", "192.168.1.77", "::ffff:192.168.1.5"] {
            #expect(trusted.trusts(address), "\(address)")
        }
        for address in ["::ffff:127.0.0.2", "::ffff:11.0.0.1", "::127.0.0.1", "::ffff:192.168.2.1", "64:ff9b::7f00:1"] {
            #expect(!trusted.trusts(address), "\(address)")
        }
    }

    @Test(arguments: ["10.0.0.0/33", "example.com", "10.0.0.0/x", "::1/129", ""])
    func refusesBadEntries(entry: String) {
        #expect(throws: TrustedProxies.InvalidEntry.self) { try TrustedProxies([entry]) }
    }
}
