import DetourGateway
import DetourRedirect
import NIOCore

/// How each route's upstream is reached: its address (read once per connection and origin), its TLS for an
/// `https://` upstream, and the timeouts.
///
/// Guarantees: an `https://` upstream is reached with its route's TLS or not at all, never in plaintext.
struct Upstreams: Sendable {
    let timeouts: UpstreamTimeouts
    /// By route name.
    let tls: [String: UpstreamTLSClient]

    /// Where an upstream request goes; `nil` when its URL cannot be reached as configured (a 502).
    func route(_ request: UpstreamRequest, memo connection: ConnectionInfo?) -> Address? {
        let upstream = request.url
        let isHTTPS = upstream.utf8.starts(with: "https:".utf8)
        let tls = isHTTPS ? request.route.flatMap { self.tls[$0] } : nil
        guard tls != nil || !isHTTPS else { return nil }
        // "http://" and "https://" end before byte 8; the first "/" after that starts the target.
        let targetStart = upstream.utf8.dropFirst(8).firstIndex(of: UInt8(ascii: "/")) ?? upstream.endIndex
        let origin = upstream[..<targetStart]
        let target = targetStart == upstream.endIndex ? "/" : upstream[targetStart...]
        if let memo = connection?.lastUpstream, memo.origin == origin {
            return Address(host: memo.host, port: memo.port, target: target, tls: tls)
        }
        guard let url = try? BrowserURL(parsing: String(origin)) else { return nil }
        let host = url.host.description
        let address = Address(
            host: host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host, port: Int(url.effectivePort),
            target: target, tls: tls)
        connection?.lastUpstream = (String(origin), address.host, address.port)
        return address
    }

    struct Address {
        /// As a socket connects to it: IPv6 addresses without brackets.
        let host: String
        let port: Int
        /// The normalised path and query, passed on as they are.
        let target: Substring
        let tls: UpstreamTLSClient?
    }
}
