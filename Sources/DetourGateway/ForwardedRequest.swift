import DetourPolicy
import DetourRedirect

/// The request a proxy in front asks about at `/oauth2/auth` (forward-auth), read from what it forwarded:
/// `X-Forwarded-Method`/`-Uri`/`-Host`/`-Proto` (Traefik, Caddy, nginx) or `X-Original-Method`/`-URL`
/// (ingress-nginx), believed from trusted proxies only (CONTRACT section 6).
///
/// Guarantees:
/// - A forwarded URL from a peer that is not trusted is refused (400): judging the request as if it were for `/`
///   would skip the rules of the path it really is for.
/// - Proxies pass their client's own headers along too, so two forwarded values that disagree (a client's
///   `X-Forwarded-Uri` beside ingress-nginx's `X-Original-URL`, a host beside an absolute URL naming another) are
///   refused (400), never guessed between.
/// - An absolute URL's target is taken as written, to meet the same normalisation as a direct request's (a URL
///   parser would resolve `%2e%2e` first, and the decision would be made on another path).
enum ForwardedRequest {
    static func resolve(
        _ request: GatewayRequest, ownPath: RequestPath, defaultScheme: BrowserURL.Scheme
    ) -> Resolution {
        let headers = request.headers
        let trusted = request.fromTrustedProxy
        if !trusted, headers.first("x-forwarded-uri") != nil || headers.first("x-original-url") != nil {
            return .refuse(.untrustedForwardedURL)
        }
        var disagreeing = false
        func forwarded(_ names: String..., as key: (String) -> String = { $0 }) -> String? {
            guard trusted else { return nil }
            let values = names.flatMap { headers.all($0) }
            if let first = values.first, values.contains(where: { key($0) != key(first) }) { disagreeing = true }
            return values.first
        }
        let method = forwarded("x-forwarded-method", "x-original-method", as: { $0.uppercased() })
        var uri = forwarded("x-forwarded-uri", "x-original-url", as: { splitAbsoluteURL($0)?.target ?? $0 })
        let forwardedHost = forwarded("x-forwarded-host", as: hostKey)
        var host = forwardedHost ?? headers.first("host") ?? ""
        let forwardedScheme = forwarded("x-forwarded-proto", as: { $0.lowercased() })
        // An absolute URL (ingress-nginx's `X-Original-URL`) names the host too: every host forwarded must be it.
        let absoluteURLs = trusted ? headers.all("x-forwarded-uri") + headers.all("x-original-url") : []
        let authorities = absoluteURLs.compactMap { splitAbsoluteURL($0).map { hostKey($0.authority) } }
        if let authority = authorities.first,
            authorities.contains(where: { $0 != authority }) || forwardedHost.map({ hostKey($0) != authority }) == true
        {
            disagreeing = true
        }
        guard !disagreeing else { return .refuse(.conflictingForwardedRequest) }
        if let original = uri, !original.hasPrefix("/") {
            guard let (authority, target) = splitAbsoluteURL(original) else {
                return .refuse(.unreadableForwardedURL)
            }
            uri = target
            host = authority
        } else if let absolute = (trusted ? headers.all("x-original-url") : []).first.flatMap(splitAbsoluteURL) {
            // A relative X-Forwarded-Uri came first; the absolute URL beside it (which agrees) still names the host.
            host = absolute.authority
        }
        let scheme = forwardedScheme.flatMap(BrowserURL.Scheme.init) ?? defaultScheme
        guard let uri else {
            return .decide(
                CanonicalRequest(
                    method: request.method, scheme: scheme, host: host, target: request.target, path: ownPath,
                    headers: headers, peer: request.peer, fromTrustedProxy: trusted,
                    narrowing: AccessNarrowing(target: request.target)), .authenticationOnly)
        }
        let path: RequestPath
        do {
            path = try RequestPath(normalizing: uri)
        } catch {
            return .refuse(.badPath(error))
        }
        return .decide(
            CanonicalRequest(
                method: method ?? "GET", scheme: scheme, host: host, target: uri, path: path, headers: headers,
                peer: request.peer, fromTrustedProxy: trusted, narrowing: AccessNarrowing(target: request.target)),
            .forwardAuth(forwardedMethod: method != nil))
    }

    /// A forwarded host as compared with another: as routes match it (``PolicyEngine/hostName(_:)``), or as written
    /// when it is not a host at all (two such are equal only when written alike).
    static func hostKey(_ host: String) -> String {
        PolicyEngine.hostName(host).map(String.init) ?? host
    }

    /// `https://host:port/path?query` as its authority and its target (`/` when it has none), both as written;
    /// `nil` unless it starts with an http(s) scheme and `//`.
    static func splitAbsoluteURL(_ url: String) -> (authority: String, target: String)? {
        let lowered = url.prefix(8).lowercased()
        let schemeLength = lowered.hasPrefix("https://") ? 8 : lowered.hasPrefix("http://") ? 7 : 0
        guard schemeLength > 0 else { return nil }
        let rest = url.utf8.dropFirst(schemeLength)
        let end = rest.firstIndex(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") }) ?? rest.endIndex
        let authority = String(Substring(rest[..<end]))
        let target = String(Substring(rest[end...]))
        guard !authority.isEmpty else { return nil }
        return (authority, target.hasPrefix("/") ? target : "/" + target)
    }
}
