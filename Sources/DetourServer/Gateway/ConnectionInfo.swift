import DetourGateway

/// What Detour knows about one client connection, kept from one request to the next.
///
/// Guarantees: ``remoteAddress`` never changes, so it may be read anywhere; the memos are read and changed
/// only on the connection's event loop, one request at a time (decisions made off the loop are handed no
/// memo), so they need no lock.
public final class ConnectionInfo: @unchecked Sendable {
    public let remoteAddress: String?
    /// Whether the peer is a trusted proxy, decided at the first request of each configuration generation.
    private var trusted: (generation: Int, isTrusted: Bool)?
    /// The last `Cookie` headers seen and what they opened to (the gateway's memo).
    var lastSession: OpenedCookies?
    /// The last upstream origin and where it connects (the gateway's memo).
    var lastUpstream: (origin: String, host: String, port: Int)?
    /// The request being dispatched, as the access log names it: its `X-Request-Id` and the client's address. Set
    /// by the dispatcher, read by the connection right after, on the event loop.
    var current: (requestID: String, client: String) = ("-", "-")

    public init(remoteAddress: String?) { self.remoteAddress = remoteAddress }

    /// Whether `proxies`, the trusted proxies of configuration `generation`, hold the peer.
    func trustsPeer(_ proxies: TrustedProxies, generation: Int) -> Bool {
        if let trusted, trusted.generation == generation { return trusted.isTrusted }
        let decided = proxies.trusts(remoteAddress)
        trusted = (generation, decided)
        return decided
    }
}
