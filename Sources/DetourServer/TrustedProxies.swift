import DetourRedirect

/// `server.trusted_proxies`: the peers whose `X-Forwarded-*` headers Detour believes.
///
/// Entries are IP addresses or CIDR blocks (`10.0.0.0/8`, `::1`, `fd00::/8`); an empty list trusts
/// nobody, so a client can never choose the method, URL, scheme or address Detour decides on.
struct TrustedProxies: Sendable {
    private struct Block: Sendable {
        let bytes: [UInt8]
        let prefixLength: Int
    }

    private let blocks: [Block]

    /// - Throws: the entry that is not an address or CIDR block.
    init(_ entries: [String]) throws(InvalidEntry) {
        var blocks: [Block] = []
        for entry in entries {
            let parts = entry.split(separator: "/", maxSplits: 1)
            guard let address = parts.first.flatMap({ Self.bytes(of: String($0)) }) else {
                throw InvalidEntry(entry: entry)
            }
            let length = parts.count == 2 ? Int(parts[1]) : address.count * 8
            guard let length, (0...address.count * 8).contains(length) else { throw InvalidEntry(entry: entry) }
            blocks.append(Block(bytes: address, prefixLength: length))
        }
        self.blocks = blocks
    }

    struct InvalidEntry: Error, CustomStringConvertible {
        let entry: String
        var description: String { "server.trusted_proxies: \"\(entry)\" is not an IP address or CIDR block" }
    }

    func trusts(_ address: String?) -> Bool {
        guard let address, let bytes = Self.bytes(of: address) else { return false }
        return blocks.contains { block in
            guard block.bytes.count == bytes.count else { return false }
            var remaining = block.prefixLength
            for (a, b) in zip(block.bytes, bytes) where remaining > 0 {
                let mask: UInt8 = remaining >= 8 ? 0xFF : ~(0xFF >> UInt8(remaining))
                guard a & mask == b & mask else { return false }
                remaining -= 8
            }
            return true
        }
    }

    /// The address's bytes (4 for IPv4, 16 for IPv6), read as a browser reads hosts; `nil` for names.
    private static func bytes(of address: String) -> [UInt8]? {
        let bracketed = address.contains(":") && !address.hasPrefix("[") ? "[\(address)]" : address
        guard let url = try? BrowserURL(parsing: "http://\(bracketed)/") else { return nil }
        switch url.host {
        case .ipv4(let value): return [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: value >> $0) }
        case .ipv6(let pieces): return pieces.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
        case .domain: return nil
        }
    }
}
