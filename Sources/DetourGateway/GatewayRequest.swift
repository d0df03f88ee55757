public import DetourPolicy
public import DetourRedirect

/// A request's header block as the server holds it, read in place rather than copied.
public protocol RequestHeaders: Sendable {
    /// The first value of the header `name` (given in lower case; names compare ASCII case-insensitively).
    func first(_ name: String) -> String?
    /// Every value of the header `name`, in order.
    func all(_ name: String) -> [String]
}

/// One request as Detour received it, before anything in it is believed: what ``Gateway/resolve(_:)`` reads.
///
/// Guarantees: ``fromTrustedProxy`` comes from the peer's address (``TrustedProxies``), never from a header, so a
/// client cannot choose whose `X-Forwarded-*` headers count.
public struct GatewayRequest: Sendable {
    public let method: String
    /// The request target as sent: `/path?query`, or a form the gateway refuses.
    public let target: String
    public let headers: any RequestHeaders
    /// The peer's IP address, when the connection has one.
    public let peer: String?
    public let fromTrustedProxy: Bool

    public init(method: String, target: String, headers: any RequestHeaders, peer: String?, fromTrustedProxy: Bool) {
        self.method = method
        self.target = target
        self.headers = headers
        self.peer = peer
        self.fromTrustedProxy = fromTrustedProxy
    }
}

/// A request resolved once: the method, scheme, host and normalised path of the request being decided, which in
/// forward-auth mode is the one the proxy in front forwarded. Every later step reads these values and nothing else.
public struct CanonicalRequest: Sendable {
    public let method: String
    /// How the client reached Detour or the proxy in front (`X-Forwarded-Proto` from a trusted proxy only).
    public let scheme: BrowserURL.Scheme
    /// As sent (`Host`, or the forwarded host), port included.
    public let host: String
    /// The target as sent: where a response's `Location` is resolved against.
    public let target: String
    /// The target after Detour's one normalisation: what is routed is what is forwarded.
    public let path: RequestPath
    public let headers: any RequestHeaders
    public let peer: String?
    public let fromTrustedProxy: Bool
    /// In forward-auth mode, what `/oauth2/auth`'s own query narrows (oauth2-proxy's `allowed_*` parameters).
    public var narrowing = AccessNarrowing()

    /// Who is asking, for the matrix's choice between redirects, 401s and pages (CONTRACT section 6).
    public var client: ClientKind { ClientKind.classify(method: method, header: { headers.first($0) }) }

    /// The token of an `Authorization: Bearer` header (RFC 6750 2.1), if the request has one.
    public var bearerToken: String? {
        guard let value = headers.first("authorization"), value.utf8.count > 7,
            value.utf8.prefix(7).elementsEqual("bearer ".utf8, by: { $0 == $1 || ($1 != 0x20 && $0 | 0x20 == $1) })
        else { return nil }
        let token = value.utf8.dropFirst(7).drop { $0 == 0x20 || $0 == 0x09 }
        let end = token.lastIndex { $0 != 0x20 && $0 != 0x09 }.map { token.index(after: $0) } ?? token.startIndex
        let trimmed = token[..<end]
        return trimmed.isEmpty ? nil : String(Substring(trimmed))
    }

    /// `X-Forwarded-For` for the upstream: the client's address, after the chain a trusted proxy sent.
    var forwardedFor: String? {
        guard fromTrustedProxy else { return peer }
        let chain = headers.all("x-forwarded-for") + [peer].compactMap { $0 }
        return chain.isEmpty ? nil : chain.joined(separator: ", ")
    }
}

/// How Detour was asked about a request (CONTRACT section 6): the same decision, answered in two ways.
public enum Mode: Sendable, Hashable {
    /// Detour forwards the request itself.
    case proxy
    /// `/oauth2/auth` with the request forwarded by a trusted proxy. With its method (Traefik, Caddy: row F3) the
    /// answers are the proxy's, with 202 in place of forwarding; with its URI only (nginx `auth_request`), 401 and
    /// 403 stand in for redirects (F2), which `auth_request` cannot pass on.
    case forwardAuth(forwardedMethod: Bool)
    /// `/oauth2/auth` with no forwarded URI: authentication only, 202 or 401.
    case authenticationOnly
}

/// What ``Gateway/resolve(_:)`` makes of a request before anyone's identity is looked at.
public enum Resolution: Sendable {
    /// One of Detour's own endpoints (never `/oauth2/auth`, which is ``decide(_:_:)`` in forward-auth mode).
    case endpoint(Endpoint)
    /// A request to decide, in this mode.
    case decide(CanonicalRequest, Mode)
    /// Refused before any decision (a malformed path, a forged forwarded request).
    case refuse(RequestRefusal)
}
