import DetourRedirect

/// `server.trusted_proxies`: the peers whose `X-Forwarded-*` headers Detour believes.
///
/// Entries are IP addresses or CIDR blocks (`10.0.0.0/8`, `::1`, `fd00::/8`); an empty list trusts
/// nobody, so a client can never choose the method, URL, scheme or address Detour decides on.
public struct TrustedProxies: Sendable {
    private struct Block: Sendable {
        let bytes: [UInt8]
        let prefixLength: Int
    }

    private let blocks: [Block]

    /// - Throws: the entry that is not an address or CIDR block.
    public init(_ entries: [String]) throws(InvalidEntry) {
        var blocks: [Block] = []
        for entry in entries {
            let parts = entry.split(separator: "/", maxSplits: 1)
            guard let address = parts.first.flatMap({ Self.bytes(of: String($0)) }) else {
                throw InvalidEntry(entry: entry)
            }
            let written = parts.first.flatMap { Self.bytes(of: String($0), unmapping: false) } ?? address
            guard let length = parts.count == 2 ? Int(parts[1]) : written.count * 8,
                (0...written.count * 8).contains(length)
            else { throw InvalidEntry(entry: entry) }
            // `::ffff:10.0.0.0/104` is the IPv4 block 10.0.0.0/8; a shorter mapped prefix stays an IPv6 block.
            if written.count == 16, address.count == 4, length >= 96 {
                blocks.append(Block(bytes: address, prefixLength: length - 96))
            } else {
                blocks.append(Block(bytes: written, prefixLength: length))
            }
        }
        self.blocks = blocks
    }

    public struct InvalidEntry: Error, CustomStringConvertible {
        let entry: String
        public var description: String { "server.trusted_proxies: \"\(entry)\" is not an IP address or CIDR block" }
    }

    public func trusts(_ address: String?) -> Bool {
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

    /// The address's bytes (4 for IPv4, 16 for IPv6), read as a browser reads hosts; `nil` for names. An
    /// IPv4-mapped IPv6 address (`::ffff:127.0.0.1`, how a dual-stack socket reports an IPv4 peer) is its
    /// IPv4 address, unless `unmapping` is false.
    private static func bytes(of address: String, unmapping: Bool = true) -> [UInt8]? {
        let bracketed = address.contains(":") && !address.hasPrefix("[") ? "[\(address)]" : address
        guard let url = try? BrowserURL(parsing: "http://\(bracketed)/") else { return nil }
        switch url.host {
        case .ipv4(let value): return [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: value >> $0) }
        case .ipv6(let pieces):
            let bytes = pieces.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
            let isMapped = bytes.prefix(10).allSatisfy { $0 == 0 } && bytes[10] == 0xFF && bytes[11] == 0xFF
            return unmapping && isMapped ? Array(bytes.suffix(4)) : bytes
        case .domain: return nil
        }
    }
}
