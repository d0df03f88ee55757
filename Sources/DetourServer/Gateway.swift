import DetourConfig
import DetourOIDC
import DetourPolicy
import DetourRedirect
import DetourSessions
import Foundation
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import Synchronization

/// Decides where each request goes, through the one policy engine, and prepares what the upstream sees.
///
/// Guarantees for proxied requests (CONTRACT section 2, section 7): hop-by-hop headers (RFC 9110 7.6.1,
/// and any named in `Connection`) are removed; client-supplied identity headers are removed in every
/// spelling (any case, `_` for `-`) before Detour adds its own; Detour's cookies never reach the
/// upstream; `X-Forwarded-For` carries the client's address, `X-Forwarded-Proto` and `-Host` the request's.
/// On the way back, a `Location` on the upstream's origin is moved to the public origin (U1) and the
/// status is never changed.
struct Gateway: Sendable {
    let engine: PolicyEngine
    let endpoints: Endpoints
    let sessions: SessionCookies
    let scheme: BrowserURL.Scheme
    let prefix: String
    let trustedProxies: TrustedProxies
    let upstreamTimeouts: UpstreamTimeouts
    /// Bearer tokens and session refresh; `nil` where no provider is configured (tests of the pure parts).
    let authentication: Authentication?
    /// How to reach each route's `https://` upstream, by route name.
    let upstreamTLS: [String: UpstreamTLSClient]
    /// ``PolicyEngine/origin(scheme:host:)``, captured once: a response's rewriting closure holds one reference to
    /// it rather than a copy of the engine.
    private let origin: @Sendable (BrowserURL.Scheme, String) -> String
    private let counters = RequestCounters()
    private let endpointFolder: String
    private let forwardAuthPath: String
    private static let rootEndpoints = ["/ping", "/ready", "/metrics"]

    init(
        engine: PolicyEngine, endpoints: Endpoints, sessions: SessionCookies, scheme: BrowserURL.Scheme, prefix: String,
        trustedProxies: TrustedProxies, upstreamTimeouts: UpstreamTimeouts = UpstreamTimeouts(),
        authentication: Authentication? = nil, upstreamTLS: [String: UpstreamTLSClient] = [:]
    ) {
        self.authentication = authentication
        self.upstreamTLS = upstreamTLS
        origin = { [engine] scheme, host in engine.origin(scheme: scheme, host: host) }
        self.upstreamTimeouts = upstreamTimeouts
        self.engine = engine
        self.endpoints = endpoints
        self.sessions = sessions
        self.scheme = scheme
        self.prefix = prefix
        self.trustedProxies = trustedProxies
        endpointFolder = prefix + "/"
        forwardAuthPath = prefix + "/auth"
    }

    /// ``route(_:_:)``, with each response counted as `detour_requests_total{route,status}` and Detour's own
    /// redirects as `detour_redirects_total{status}`.
    func dispatch(_ head: HTTPRequestHead, _ connection: ConnectionInfo) -> Dispatch {
        let (label, dispatch) = route(head, connection)
        return counted(dispatch, label: label)
    }

    private func counted(_ dispatch: Dispatch, label: String) -> Dispatch {
        switch dispatch {
        case .respond(let handler):
            let counters = self.counters
            return .respond { request in
                let response = await handler(request)
                counters.count(route: label, status: response.status, redirect: true)
                return response
            }
        case .proxy, .later:
            // A plan counts when the upstream's status is known (see `outcome`); a later one, once decided.
            return dispatch
        }
    }

    /// Where a request goes, and the route label it is counted under.
    private func route(_ head: HTTPRequestHead, _ connection: ConnectionInfo) -> (String, Dispatch) {
        let path = head.uri.utf8[..<(head.uri.utf8.firstIndex(of: UInt8(ascii: "?")) ?? head.uri.endIndex)]
        let isForwardAuth = path.elementsEqual(forwardAuthPath.utf8)
        // Detour's own endpoints first: /ping and friends cost no cookie opening and no policy decision. Compared as
        // bytes, as the target was sent (a `String` comparison would look for canonically equivalent characters).
        if !isForwardAuth,
            path.elementsEqual(prefix.utf8) || path.starts(with: endpointFolder.utf8)
                || Self.rootEndpoints.contains(where: { path.elementsEqual($0.utf8) })
        {
            return ("detour", .respond { await endpoints.handle($0) })
        }
        let now = Date()
        let trusted = connection.trustsPeer(trustedProxies)
        let (session, identity) = signedIn(head.headers, on: connection, now: now)
        if isForwardAuth {
            if let authentication, let session, authentication.refresher.needsRefresh(session, now: now) {
                return (
                    "forward-auth",
                    .later {
                        let (renewed, cookies) = await refreshed(session, head, authentication, now: now)
                        let answer = forwardAuth(
                            head, trusted: trusted, session: renewed, identity: renewed.map(Self.identity))
                        return counted(Self.withCookies(cookies, answer), label: "forward-auth")
                    }
                )
            }
            return ("forward-auth", forwardAuth(head, trusted: trusted, session: session, identity: identity))
        }
        let request = ProxiedRequest(
            head: head, connection: connection, trusted: trusted,
            scheme: trusted
                ? head.headers.first(name: "x-forwarded-proto").flatMap(BrowserURL.Scheme.init) ?? scheme : scheme)
        let decision = decide(request, identity: identity)
        let label = decision.rule ?? decision.reason
        if let authentication, let tokens = authentication.tokens(for: engine.bearerMode(for: decision)),
            let token = Self.bearerToken(in: head.headers)
        {
            // A token seen before is answered here, on the event loop; a new one is checked off it.
            if let known = tokens.cached(token, now: now) {
                return withBearerToken(token, known, request, authentication, memo: connection)
            }
            return (
                label,
                .later {
                    let checked = await tokens.check(token, now: now)
                    let (label, dispatch) = withBearerToken(token, checked, request, authentication, memo: nil)
                    return counted(dispatch, label: label)
                }
            )
        }
        if let authentication, let session, authentication.refresher.needsRefresh(session, now: now) {
            return (label, .later { await withRefreshedSession(session, request, authentication, now: now) })
        }
        return outcome(decision, request, accessToken: session?.accessToken, memo: connection)
    }

    /// A request on its way through the gateway, with what was learnt about its connection.
    private struct ProxiedRequest: Sendable {
        let head: HTTPRequestHead
        /// Read only for its address (and, on the event loop, its memos).
        let connection: ConnectionInfo
        let trusted: Bool
        let scheme: BrowserURL.Scheme
    }

    private func decide(_ request: ProxiedRequest, identity: Identity?) -> Decision {
        let headers = request.head.headers
        return engine.decide(
            PolicyEngine.Request(
                method: request.head.method.rawValue, scheme: request.scheme, host: headers.first(name: "host") ?? "",
                target: request.head.uri, identity: identity, header: { headers.first(name: $0) }))
    }

    /// What a decision becomes: a plan for the upstream, or Detour's own answer.
    ///
    /// - Parameters:
    ///   - accessToken: what `pass_access_token` forwards (the session's, or the bearer token itself).
    ///   - cookies: `Set-Cookie` headers for the response (a refreshed or ended session).
    ///   - memo: the connection whose memos may be used: only on its event loop, so `nil` off it.
    private func outcome(
        _ decision: Decision, _ request: ProxiedRequest, accessToken: String?, cookies: [SetCookie] = [],
        memo: ConnectionInfo?
    ) -> (String, Dispatch) {
        let label = decision.rule ?? decision.reason
        switch decision.outcome {
        case .proxy(let upstream, let added, let passAccessToken):
            // An https upstream is reached with its route's TLS, or not at all (never in plaintext).
            let isHTTPS = upstream.utf8.starts(with: "https:".utf8)
            let tls = isHTTPS ? decision.rule.flatMap { upstreamTLS[$0] } : nil
            guard let address = upstreamAddress(upstream, memo: memo), tls != nil || !isHTTPS else {
                return (label, .respond { _ in EndpointResponse(status: 502, body: "bad upstream\n") })
            }
            let head = request.head
            let headers = head.headers
            var fields = ProxyHeaders.forUpstream(headers, cookiePrefix: sessions.policy.sessionName)
            let sendsAccessToken = passAccessToken && accessToken != nil
            if sendsAccessToken { fields.removeAll { ProxyHeaders.name($0.0, spells: "authorization") } }
            // The client's headers were read by the request parser, which refuses control bytes (400); what
            // Detour adds from here on is checked below.
            let clientFields = fields.count
            for field in added { fields.append((field.name, field.value)) }
            // X-Forwarded-For is appended to only when the peer is a trusted proxy; otherwise it starts here.
            var forwardedFor = request.connection.remoteAddress
            if request.trusted {
                let chain = headers["x-forwarded-for"] + [forwardedFor].compactMap { $0 }
                forwardedFor = chain.isEmpty ? nil : chain.joined(separator: ", ")
            }
            if let forwardedFor { fields.append(("X-Forwarded-For", forwardedFor)) }
            if sendsAccessToken, let accessToken {
                fields.append(("Authorization", "Bearer \(accessToken)"))
                fields.append(("X-Forwarded-Access-Token", accessToken))
            }
            let setCookies = cookies.map(\.headerValue)
            // Identity headers come from claims, which users may be able to edit at the provider, and tokens from
            // the provider: a value with a line break is refused here, before anything is written, never split
            // into two headers (CONTRACT section 7).
            if let invalid = ProxyHeaders.firstInvalidValue(
                in: fields[clientFields...].lazy.map { (name: $0.0, value: $0.1) })
                ?? ProxyHeaders.firstInvalidValue(in: setCookies.lazy.map { (name: "Set-Cookie", value: $0) })
            {
                endpoints.logger.warning(
                    "request refused: a header value cannot be sent", metadata: ["header": "\(invalid)"])
                return (label, .respond { _ in ErrorPage.unsendableHeader })
            }
            var upstreamHead = HTTPRequestHead(version: .http1_1, method: head.method, uri: String(address.target))
            upstreamHead.headers = HTTPHeaders(fields)
            let (scheme, host, uri, origin) = (request.scheme, headers.first(name: "host") ?? "", head.uri, origin)
            return (
                label,
                .proxy(
                    ProxyPlan(
                        host: address.host,
                        port: address.port,
                        head: upstreamHead,
                        // Captures only what it needs: a copy of the whole gateway per request would cost retains.
                        rewriteResponse: { [counters] head in
                            counters.count(route: label, status: Int(head.status.code), redirect: false)
                            // The public URL is spelt out only when a response carries a Location.
                            var rewritten = ProxyHeaders.forClient(
                                head, upstreamRequest: upstream, publicRequest: origin(scheme, host) + uri)
                            rewritten.added = setCookies.map { ("Set-Cookie", $0) }
                            return rewritten
                        },
                        timeouts: upstreamTimeouts, tls: tls))
            )
        case .endpoint:
            return ("detour", .respond { await endpoints.handle($0) })
        default:
            return (label, Self.withCookies(cookies, answer(decision)))
        }
    }

    private static func withCookies(_ cookies: [SetCookie], _ dispatch: Dispatch) -> Dispatch {
        guard !cookies.isEmpty, case .respond(let handler) = dispatch else { return dispatch }
        return .respond { request in
            var response = await handler(request)
            response.headers += cookies.map { ("Set-Cookie", $0.headerValue) }
            return response
        }
    }

    /// The token of an `Authorization: Bearer` header (RFC 6750 2.1), if the request has one.
    static func bearerToken(in headers: HTTPHeaders) -> String? {
        guard let value = headers.first(name: "authorization"), value.utf8.count > 7,
            value.utf8.prefix(7).elementsEqual("bearer ".utf8, by: { $0 == $1 || ($1 != 0x20 && $0 | 0x20 == $1) })
        else { return nil }
        let token = ProxyHeaders.trimmed(Substring(value).dropFirst(7))
        return token.isEmpty ? nil : String(token)
    }

    /// A route with `bearer:` and a bearer token: the token decides who this is, whatever the cookies say.
    /// A token that fails is a 401 `invalid_token` (RFC 6750 3.1), or a 503 when the provider cannot be
    /// reached; never a redirect, never a 500.
    private func withBearerToken(
        _ token: String, _ checked: Result<TokenClaims?, OIDCError>, _ request: ProxiedRequest,
        _ authentication: Authentication, memo: ConnectionInfo?
    ) -> (String, Dispatch) {
        switch checked {
        case .success(let claims?):
            return outcome(decide(request, identity: Self.identity(claims)), request, accessToken: token, memo: memo)
        case .success(nil): return ("bearer", refusal(nil, authentication))
        case .failure(let error): return ("bearer", refusal(error, authentication))
        }
    }

    /// The answer for a token that did not check out (`nil`: not active): 401 `invalid_token`, or 503 when
    /// the provider cannot be reached.
    private func refusal(_ error: OIDCError?, _ authentication: Authentication) -> Dispatch {
        let reason = error?.code.rawValue ?? "inactive"
        authentication.logger.info("bearer token refused", metadata: ["reason": "\(reason)"])
        if error?.code == .providerUnavailable || error?.code == .providerTimedOut {
            return .respond { _ in Self.bearerProviderUnavailable }
        }
        return .respond { _ in Self.invalidToken(reason) }
    }

    /// A session whose access token is about to expire: refreshed first, or, when that fails, treated as
    /// signed out (rows A1-A3) and its cookie cleared.
    private func withRefreshedSession(
        _ session: Session, _ request: ProxiedRequest, _ authentication: Authentication, now: Date
    ) async -> Dispatch {
        let (renewed, cookies) = await refreshed(session, request.head, authentication, now: now)
        let (label, dispatch) = outcome(
            decide(request, identity: renewed.map(Self.identity)), request, accessToken: renewed?.accessToken,
            cookies: cookies, memo: nil)
        return counted(dispatch, label: label)
    }

    /// The session with fresh tokens and the cookies that store it, or `nil` and the cookies that end it.
    private func refreshed(
        _ session: Session, _ head: HTTPRequestHead, _ authentication: Authentication, now: Date
    ) async -> (Session?, [SetCookie]) {
        let existing = RequestCookies(headers: head.headers["cookie"])
        let ended = sessions.policy.delete(name: sessions.policy.sessionName, existing: existing)
        guard let renewed = await authentication.refresher.refreshed(session, now: now) else { return (nil, ended) }
        do {
            return (renewed, try sessions.store(renewed, existing: existing, now: now))
        } catch {
            // Fresh tokens that no longer fit end the session; signing in again explains why (a 500 page).
            authentication.logger.warning(
                "session ended: the refreshed session is too large for cookies", metadata: ["detail": "\(error)"])
            return (nil, ended)
        }
    }

    /// RFC 6750 3.1: 401 with `WWW-Authenticate: Bearer error="invalid_token"`; the reason code is safe to show.
    static func invalidToken(_ reason: String) -> EndpointResponse {
        EndpointResponse(
            status: 401,
            headers: [
                ("WWW-Authenticate", "Bearer error=\"invalid_token\""), ("Content-Type", "application/json"),
                ("Cache-Control", "no-store"),
            ],
            body: "{\"error\":\"invalid_token\",\"reason\":\"\(reason)\"}\n")
    }

    static let bearerProviderUnavailable = EndpointResponse(
        status: 503,
        headers: [("Content-Type", "application/json"), ("Cache-Control", "no-store"), ("Retry-After", "5")],
        body: "{\"error\":\"temporarily_unavailable\",\"reason\":\"provider-unavailable\"}\n")

    /// Detour's own answer for a decision that is not proxied, per the matrix.
    private func answer(_ decision: Decision) -> Dispatch {
        // A1's target was built from the Host header: it is checked like any rd, or a forged Host would
        // make the 303 after sign-in an open redirect.
        if case .signIn(.redirectToProvider, let returnTo, _) = decision.outcome {
            return .respond { endpoints.beginSignIn($0, requested: returnTo.href, now: Date()) }
        }
        return .respond { request in
            if let answer = decision.answer(method: request.method, client: request.client, authorizationURL: nil) {
                return EndpointResponse(answer)
            }
            return EndpointResponse(
                status: decision.status, headers: [("Content-Type", "text/plain"), ("Cache-Control", "no-store")],
                body: "\(decision.reason)\n")
        }
    }

    /// The session the cookies hold and its identity for policies. A connection remembers the last cookie
    /// header it opened: a browser sends the same one with each request, and only the expiry is checked again.
    private func signedIn(_ headers: HTTPHeaders, on connection: ConnectionInfo, now: Date) -> (Session?, Identity?) {
        if let memo = connection.lastSession, Self.cookieValues(in: headers, are: memo.cookieHeaders) {
            guard let session = memo.session, session.expiry > now else { return (nil, nil) }
            return (session, memo.identity)
        }
        let cookieHeaders = headers["cookie"]
        let session =
            cookieHeaders.isEmpty ? nil : sessions.session(in: RequestCookies(headers: cookieHeaders), now: now)
        let identity = session.map(Self.identity)
        connection.lastSession = OpenedCookies(cookieHeaders: cookieHeaders, session: session, identity: identity)
        return (session, identity)
    }

    /// Whether the request's `Cookie` headers hold `values`, in order: compared where they are, without building
    /// their list on every request.
    private static func cookieValues(in headers: HTTPHeaders, are values: [String]) -> Bool {
        var expected = values[...]
        for (name, value) in headers where ProxyHeaders.name(name, spells: "cookie") {
            guard expected.first == value else { return false }
            expected = expected.dropFirst()
        }
        return expected.isEmpty
    }

    /// Who a validated bearer token speaks for, read as a session's claims are.
    static func identity(_ claims: TokenClaims) -> Identity {
        Identity(
            subject: claims.subject, email: claims.email, emailVerified: claims.emailVerified, groups: claims.groups,
            preferredUsername: claims.preferredUsername ?? claims.all["username"]?.string,
            claims: Endpoints.userClaims(claims.all))
    }

    static func identity(_ session: Session) -> Identity {
        Identity(
            subject: session.subject, email: session.email, emailVerified: session.emailVerified,
            groups: session.groups,
            preferredUsername: session.preferredUsername, claims: session.claims)
    }

    /// `/oauth2/auth`, rows F1-F3. The forwarded method and URL (`X-Forwarded-Method`/`-Uri`/`-Host`/
    /// `-Proto`, or `X-Original-Method`/`-URL`) are believed from trusted proxies only.
    ///
    /// - With a forwarded method (Traefik, Caddy: F3) the forwarded request gets exactly the answer it
    ///   would get through the proxy (A1-A5), or 202 with identity headers when it would be proxied (F1).
    /// - With only a forwarded URI (nginx `auth_request`), the route's policy still decides, but the answer
    ///   is 202, 401 or 403: nginx turns a 401 into its `error_page` redirect (F2).
    /// - Without a forwarded URI it is authentication only: 202 or 401. So is a forwarded URI no route
    ///   matches when no route is configured at all (oauth2-proxy's model); with routes, that is a 404.
    /// - A forwarded URI from a peer that is not trusted is a 400: judging the request as if it were for
    ///   `/` would skip the rules of the path it really is for (CONTRACT section 7).
    private func forwardAuth(_ head: HTTPRequestHead, trusted: Bool, session: Session?, identity: Identity?)
        -> Dispatch
    {
        let headers = head.headers
        if !trusted, headers.contains(name: "x-forwarded-uri") || headers.contains(name: "x-original-url") {
            return .respond { _ in
                ErrorPage.response(400, "Forwarded request URLs are believed from trusted proxies only.")
            }
        }
        // What the trusted proxy forwarded under any of `names`. Proxies pass their client's own headers along too,
        // so two values that disagree (a client's `X-Forwarded-Uri` beside ingress-nginx's `X-Original-URL`) are a
        // request Detour cannot tell apart from a forgery: 400, never a guess.
        var disagreeing = false
        func forwarded(_ names: String..., as key: (String) -> String = { $0 }) -> String? {
            guard trusted else { return nil }
            let values = names.flatMap { headers[$0] }
            if let first = values.first, values.contains(where: { key($0) != key(first) }) { disagreeing = true }
            return values.first
        }
        let method = forwarded("x-forwarded-method", "x-original-method", as: { $0.uppercased() })
        var uri = forwarded("x-forwarded-uri", "x-original-url", as: { Self.splitAbsoluteURL($0)?.target ?? $0 })
        let forwardedHost = forwarded("x-forwarded-host", as: Self.hostKey)
        var host = forwardedHost ?? headers.first(name: "host") ?? ""
        let forwardedScheme = forwarded("x-forwarded-proto", as: { $0.lowercased() })
        // An absolute URL (ingress-nginx's `X-Original-URL`) names the host too: every host forwarded must be it.
        let authorities = (trusted ? headers["x-forwarded-uri"] + headers["x-original-url"] : []).compactMap {
            Self.splitAbsoluteURL($0).map { Self.hostKey($0.authority) }
        }
        if let authority = authorities.first,
            authorities.contains(where: { $0 != authority })
                || forwardedHost.map(Self.hostKey).map({ $0 != authority })
                    ?? false
        {
            disagreeing = true
        }
        guard !disagreeing else {
            return .respond { _ in ErrorPage.response(400, "The proxy in front forwarded two different requests.") }
        }
        if let original = uri, !original.hasPrefix("/") {
            // An absolute URL: its target is taken as written, to meet the same checks as a direct request's (a URL
            // parser would resolve `%2e%2e` first, and the decision would be made on another path).
            guard let (authority, target) = Self.splitAbsoluteURL(original) else {
                return .respond { _ in ErrorPage.response(400, "The forwarded request URL is not a URL.") }
            }
            uri = target
            host = authority
        } else if let absolute = (trusted ? headers["x-original-url"] : []).first.flatMap(Self.splitAbsoluteURL) {
            // A relative X-Forwarded-Uri came first; the absolute URL beside it (which agrees) still names the host.
            host = absolute.authority
        }
        let requestScheme = forwardedScheme.flatMap(BrowserURL.Scheme.init) ?? scheme
        let authenticationOnly: Dispatch =
            identity.map { Self.accepted($0, accessToken: nil) } ?? Self.unauthorized(row: .f2, endpoints)
        guard let uri else { return authenticationOnly }
        let forwardedRequest = ForwardedRequest(
            method: method, scheme: requestScheme, host: host, target: uri, headers: headers)
        let decision = decide(forwardedRequest, identity: identity)
        // A bearer route judges the forwarded request by its token, as the proxy would (F1 or 401).
        if let authentication, let tokens = authentication.tokens(for: engine.bearerMode(for: decision)),
            let token = Self.bearerToken(in: headers)
        {
            if let known = tokens.cached(token, now: Date()) {
                return forwardAuthWithToken(token, known, forwardedRequest, authentication)
            }
            return .later {
                let checked = await tokens.check(token, now: Date())
                return counted(
                    forwardAuthWithToken(token, checked, forwardedRequest, authentication), label: "forward-auth")
            }
        }
        return forwardAuthAnswer(
            decision, identity: identity, accessToken: session?.accessToken, forwardedMethod: method,
            authenticationOnly: authenticationOnly)
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

    /// The request a proxy in front asks about (forward-auth), as the proxy would have forwarded it.
    private struct ForwardedRequest: Sendable {
        let method: String?
        let scheme: BrowserURL.Scheme
        let host: String
        let target: String
        let headers: HTTPHeaders
    }

    private func decide(_ request: ForwardedRequest, identity: Identity?) -> Decision {
        let headers = request.headers
        // Forwarded: the request is the application's, so Detour's own endpoint paths are judged by the routes too.
        return engine.decide(
            PolicyEngine.Request(
                method: request.method ?? "GET", scheme: request.scheme, host: request.host, target: request.target,
                identity: identity, forwarded: true, header: { headers.first(name: $0) }))
    }

    private func forwardAuthWithToken(
        _ token: String, _ checked: Result<TokenClaims?, OIDCError>, _ request: ForwardedRequest,
        _ authentication: Authentication
    ) -> Dispatch {
        let claims: TokenClaims
        switch checked {
        case .success(let known?): claims = known
        case .success(nil): return refusal(nil, authentication)
        case .failure(let error): return refusal(error, authentication)
        }
        let identity = Self.identity(claims)
        return forwardAuthAnswer(
            decide(request, identity: identity), identity: identity, accessToken: token,
            forwardedMethod: request.method, authenticationOnly: Self.accepted(identity, accessToken: nil))
    }

    /// Rows F1-F3 for a decision about the forwarded request.
    private func forwardAuthAnswer(
        _ decision: Decision, identity: Identity?, accessToken: String?, forwardedMethod method: String?,
        authenticationOnly: Dispatch
    ) -> Dispatch {
        switch decision.outcome {
        case .proxy(_, _, let passAccessToken):
            guard let identity else { return .respond { _ in EndpointResponse(status: 202) } }
            return Self.accepted(identity, accessToken: passAccessToken ? accessToken : nil)
        case .notFound where engine.policies.routes.isEmpty:
            return authenticationOnly
        case .notFound, .badRequest, .methodNotAllowed:
            return answer(decision)
        default:
            if method != nil { return answer(decision) }
            return decision.outcome == .forbidden || decision.outcome == .preflightDenied
                ? .respond { _ in EndpointResponse(status: 403, headers: [("Cache-Control", "no-store")]) }
                : Self.unauthorized(row: .f2, endpoints)
        }
    }

    /// F1: 202 with the `X-Auth-Request-*` identity headers.
    private static func accepted(_ identity: Identity, accessToken: String?) -> Dispatch {
        var headers = [("Cache-Control", "no-store"), ("X-Auth-Request-User", identity.subject)]
        if let email = identity.email { headers.append(("X-Auth-Request-Email", email)) }
        if !identity.groups.isEmpty {
            headers.append(("X-Auth-Request-Groups", identity.groups.joined(separator: ",")))
        }
        if let name = identity.preferredUsername { headers.append(("X-Auth-Request-Preferred-Username", name)) }
        if let accessToken { headers.append(("X-Auth-Request-Access-Token", accessToken)) }
        let response = EndpointResponse(status: 202, headers: headers)
        return .respond { _ in response }
    }

    /// F2: 401, with the sign-in URL for clients that read it.
    private static func unauthorized(row: MatrixRow, _ endpoints: Endpoints) -> Dispatch {
        .respond { request in
            EndpointResponse(
                RedirectMatrix.answer(
                    .forwardAuthUnauthenticated(loginURL: endpoints.startURL(endpoints.defaultTarget)),
                    method: request.method,
                    client: .api))
        }
    }

    /// Where an upstream URL built by the engine points: its origin (a route's `upstream`), read once per
    /// connection and origin, and its target (the normalised path and query), passed on as it is.
    private func upstreamAddress(_ upstream: String, memo connection: ConnectionInfo?) -> UpstreamAddress? {
        // "http://" and "https://" end before byte 8; the first "/" after that starts the target.
        let targetStart = upstream.utf8.dropFirst(8).firstIndex(of: UInt8(ascii: "/")) ?? upstream.endIndex
        let origin = upstream[..<targetStart]
        let target = targetStart == upstream.endIndex ? "/" : upstream[targetStart...]
        if let memo = connection?.lastUpstream, memo.origin == origin {
            return UpstreamAddress(host: memo.host, port: memo.port, target: target)
        }
        guard let url = try? BrowserURL(parsing: String(origin)) else { return nil }
        let host = url.host.description
        let address = UpstreamAddress(
            host: host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host, port: Int(url.effectivePort),
            target: target)
        connection?.lastUpstream = (String(origin), address.host, address.port)
        return address
    }

    private struct UpstreamAddress {
        /// As a socket connects to it: IPv6 addresses without brackets.
        let host: String
        let port: Int
        let target: Substring
    }
}

/// `detour_requests_total{route,status}` and `detour_redirects_total{status}`, each counter made once and
/// then found by a dictionary lookup instead of through the metrics factory on every request.
private final class RequestCounters: Sendable {
    private struct Key: Hashable {
        let route: String
        let status: Int
    }

    private let requestCounters = Mutex<[Key: Counter]>([:])
    private let redirectCounters = Mutex<[Int: Counter]>([:])

    func requests(route: String, status: Int) -> Counter {
        let key = Key(route: route, status: status)
        return requestCounters.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = Counter(
                label: "detour_requests_total", dimensions: [("route", route), ("status", String(status))])
            counters[key] = counter
            return counter
        }
    }

    func count(route: String, status: Int, redirect: Bool) {
        requests(route: route, status: status).increment()
        if redirect, (300..<400).contains(status) { redirects(status: status).increment() }
    }

    func redirects(status: Int) -> Counter {
        redirectCounters.withLock { counters in
            if let counter = counters[status] { return counter }
            let counter = Counter(label: "detour_redirects_total", dimensions: [("status", String(status))])
            counters[status] = counter
            return counter
        }
    }
}

/// What the gateway needs for bearer tokens and session refresh, all of it talking to the provider
/// through libcurl, off the event loops.
///
/// A class: the gateway reads it on every request, and one reference costs one retain where this many
/// stored references would cost one each.
final class Authentication: Sendable {
    /// Validated JWT access tokens (`bearer: jwt`).
    let jwts: BearerTokenCache
    /// Introspected opaque tokens (`bearer: introspect`).
    let introspections: BearerTokenCache
    let refresher: SessionRefresher
    let logger: Logger

    init(jwts: BearerTokenCache, introspections: BearerTokenCache, refresher: SessionRefresher, logger: Logger) {
        self.jwts = jwts
        self.introspections = introspections
        self.refresher = refresher
        self.logger = logger
    }

    /// Where a route's bearer tokens are checked; `nil` for `bearer: off`.
    func tokens(for mode: BearerMode) -> BearerTokenCache? {
        switch mode {
        case .off: nil
        case .jwt: jwts
        case .introspect: introspections
        }
    }
}
