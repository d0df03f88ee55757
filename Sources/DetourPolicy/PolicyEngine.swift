public import DetourRedirect

/// Decides every request against the compiled policies: the single evaluation path behind the proxy,
/// forward-auth and `detour policy test`.
///
/// Order: the path is normalised once (400 if ambiguous); Detour's own endpoints are recognised (``Endpoint``);
/// plain http is redirected when configured (H1); redirect rules (P1), then routes, by specificity; no route is
/// 404, a method the route does not take 405; preflights follow the route's `preflight` (A4); `public`
/// paths pass; anyone else must sign in (A1-A3) or be granted by an allow rule (else 403, A5).
public struct PolicyEngine: Sendable {
    /// What the engine needs from `detour.yaml`.
    public struct Settings: Sendable {
        public var publicURL: BrowserURL
        public var prefix: String
        public var redirectHTTPToHTTPS: Bool
        public var preservePost: Bool
        /// The largest form body A2b keeps, in bytes.
        public var preservedFormLimit: Int
        /// Whether `/ping`, `/ready` and `/metrics` are Detour's on this listener (not with `server.admin_listen`).
        public var servesHealth = true
        /// A2b's limit unless `server.max_request_body` is lower: 1 MiB.
        public static let largestKeptForm = 1024 * 1024
        /// `return_to.allowed_hosts`: besides the hosts routes name, the hosts whose origin Detour builds its own
        /// absolute URLs on (``PolicyEngine/origin(scheme:host:)``).
        public var returnTargets: ReturnTargetPolicy?

        public init(
            publicURL: BrowserURL, prefix: String = "/oauth2", redirectHTTPToHTTPS: Bool = false,
            preservePost: Bool = false, servesHealth: Bool = true, preservedFormLimit: Int = largestKeptForm,
            returnTargets: ReturnTargetPolicy? = nil
        ) {
            self.servesHealth = servesHealth
            self.returnTargets = returnTargets
            self.publicURL = publicURL
            self.prefix = prefix
            self.redirectHTTPToHTTPS = redirectHTTPToHTTPS
            self.preservePost = preservePost
            self.preservedFormLimit = preservedFormLimit
        }
    }

    /// One request as the engine sees it.
    public struct Request {
        public var method: String
        /// How the client reached Detour (the connection, or `X-Forwarded-Proto` from a trusted proxy).
        public var scheme: BrowserURL.Scheme
        /// The `Host` header, port included.
        public var host: String
        /// The request target as sent: `/path?query`.
        public var target: String
        /// `nil` when not signed in.
        public var identity: Identity?
        /// Whether a path naming one of Detour's endpoints is decided as that endpoint (``Endpoint``). The gateway
        /// matches endpoints before it asks, and a request a proxy in front asks about (forward-auth) is the
        /// application's own: both pass `false`, and such a path is judged by the routes like any other.
        public var recognizesEndpoints: Bool
        /// Whether the request carries a bearer token nobody has checked yet: a `bearer:` route then decides
        /// ``Decision/Outcome/checkBearerToken(_:)``, and the caller decides again with the token's identity.
        public var presentsBearerToken: Bool
        /// A header's value by lower-case name.
        public var header: (String) -> String?

        public init(
            method: String, scheme: BrowserURL.Scheme, host: String, target: String, identity: Identity?,
            recognizesEndpoints: Bool = true, presentsBearerToken: Bool = false,
            header: @escaping (String) -> String?
        ) {
            self.recognizesEndpoints = recognizesEndpoints
            self.presentsBearerToken = presentsBearerToken
            self.method = method
            self.scheme = scheme
            self.host = host
            self.target = target
            self.identity = identity
            self.header = header
        }
    }

    public let settings: Settings
    public let policies: PolicySet
    private let routes: RuleIndex<Compiled<Route>>
    /// The same routes matched on the path as spelt: a case-sensitive upstream serves `/PUBLIC/x` under `/`, not
    /// under `/public/`, so a folded spelling never gets less protection than its written one (CONTRACT 5.1).
    private let routesAsWritten: RuleIndex<Compiled<Route>>
    private let redirects: RuleIndex<Compiled<RedirectRule>>
    /// Whether any route has `bearer: jwt` or `introspect`: when none does, no request's token needs reading.
    public let takesBearerTokens: Bool

    public init(policies: PolicySet, settings: Settings) {
        self.settings = settings
        self.policies = policies
        let compiled = policies.routes.map(Compiled.init)
        routes = RuleIndex(compiled, host: \.rule.host, path: \.rule.path, foldingSpellings: true)
        routesAsWritten = RuleIndex(compiled, host: \.rule.host, path: \.rule.path)
        redirects = RuleIndex(policies.redirects.map(Compiled.init), host: \.rule.host, path: \.rule.path)
        takesBearerTokens = policies.routes.contains { $0.bearer != .off }
    }

    public func decide(_ request: Request) -> Decision {
        let path: RequestPath
        do {
            path = try RequestPath(normalizing: request.target)
        } catch {
            return Decision(outcome: .badRequest, reason: error.rawValue, rule: nil)
        }
        // Detour's endpoints come before the host check and the https redirect: the server answers them on any host,
        // and health checks come over plain http.
        if request.recognizesEndpoints,
            let endpoint = Endpoint.named(by: path.path, prefix: settings.prefix, health: settings.servesHealth)
        {
            return Decision(outcome: .endpoint(endpoint), reason: "detour-endpoint", rule: nil)
        }
        return decide(request, path: path)
    }

    /// ``decide(_:)`` for a request whose target was normalised already (the gateway normalises once).
    public func decide(_ request: Request, path: RequestPath) -> Decision {
        guard let hostName = Self.hostName(request.host) else {
            return Decision(outcome: .badRequest, reason: "bad-host", rule: nil)
        }

        if request.scheme == .http, settings.redirectHTTPToHTTPS,
            let https = try? BrowserURL(
                parsing:
                    "https://\(namesOrAllows(.https, hostName, request.host) ? hostName + httpsPort : publicHost)\(path)"
            )
        {
            return Decision(
                outcome: .redirect(.permanentRedirect, location: https), reason: Decision.httpsRedirectReason, rule: nil
            )
        }
        if let rule = redirects.first(host: hostName, path: path.path, where: { $0.rule.applies(to: request.method) })?
            .rule
        {
            guard let url = requestURL(request, path),
                let location = redirectLocation(rule, path: path, requestURL: url)
            else { return Decision(outcome: .badRequest, reason: "bad-host", rule: rule.name) }
            return Decision(
                outcome: .redirect(rule.status, location: location), reason: "policy-redirect", rule: rule.name)
        }
        let key = RuleIndex<Compiled<Route>>.routingKey(path.path)
        guard let route = routes.first(host: hostName, path: path.path, key: key) else {
            return Decision(outcome: .notFound, reason: "no-route", rule: nil)
        }
        let decision = decide(request, route: route, path: path)
        // A spelling that folds onto another route than it names as written gets the stricter of the two answers:
        // proxied only when both would proxy it.
        guard case .proxy = decision.outcome, key != path.path,
            let written = routesAsWritten.first(host: hostName, path: path.path), written !== route
        else { return decision }
        let asWritten = decide(request, route: written, path: path)
        if case .proxy = asWritten.outcome { return decision }
        return asWritten
    }

    /// The URL the client asked for, as a browser would write it (the return target after sign-in, the base of a
    /// redirect rule's `Location`), on ``origin(scheme:host:)``.
    private func requestURL(_ request: Request, _ path: RequestPath) -> BrowserURL? {
        try? BrowserURL(parsing: path.appended(to: origin(scheme: request.scheme, host: request.host)))
    }

    /// The origin Detour builds its own absolute URLs for a request on (redirect rules, the return target, an
    /// upstream's `Location` moved to the public origin): the request's own scheme and `Host` when a route or
    /// redirect rule names that host or `return_to.allowed_hosts` allows it, else the public URL's origin. A
    /// `Host` nobody configured never chooses where Detour's redirects point (CONTRACT section 7).
    public func origin(scheme: BrowserURL.Scheme, host: String) -> String {
        guard let name = Self.hostName(host), namesOrAllows(scheme, name, host),
            let url = try? BrowserURL(parsing: "\(scheme.rawValue)://\(host)/")
        else { return settings.publicURL.origin }
        return url.origin
    }

    private func namesOrAllows(_ scheme: BrowserURL.Scheme, _ name: Substring, _ host: String) -> Bool {
        if routes.names(host: name) || redirects.names(host: name) { return true }
        guard let targets = settings.returnTargets else { return false }
        if case .allowed = targets.evaluate("\(scheme.rawValue)://\(host)/") { return true }
        return false
    }

    /// `:PORT` when Detour serves https on a port of its own (an https public URL with a port), else nothing: a
    /// configured host is sent to https on that port.
    private var httpsPort: String {
        guard settings.publicURL.scheme == .https, let port = settings.publicURL.port else { return "" }
        return ":\(port)"
    }

    /// The public URL's host (and port), where an unconfigured `Host` is sent instead.
    private var publicHost: String {
        settings.publicURL.host.description + (settings.publicURL.port.map { ":\($0)" } ?? "")
    }

    private func decide(_ request: Request, route: Compiled<Route>, path: RequestPath) -> Decision {
        let client = ClientKind.classify(method: request.method, header: request.header)
        // The token decides who asks, whatever the cookies say; no sign-in answer is built for a request that may
        // not need one. A preflight passed upstream is checked too: its `Authorization` header goes with it.
        let tokenCheck =
            request.presentsBearerToken && route.rule.bearer != .off
            ? Decision(
                outcome: .checkBearerToken(route.rule.bearer), reason: "bearer-token-check", rule: route.rule.name)
            : nil
        if client == .preflight {
            guard route.rule.preflight == .pass else {
                return Decision(outcome: .preflightDenied, reason: "preflight-denied", rule: route.rule.name)
            }
            return tokenCheck ?? proxy(route, path, request, identity: nil, reason: "proxy-preflight")
        }
        if let methods = route.rule.methods, !methods.contains(request.method) {
            return Decision(
                outcome: .methodNotAllowed(allowed: methods.sorted()), reason: "method-not-allowed",
                rule: route.rule.name)
        }
        if let tokenCheck { return tokenCheck }
        if route.rule.publicPaths.contains(where: { $0.matches(path.path) }) {
            return proxy(route, path, request, identity: request.identity, reason: "proxy-public-path")
        }
        guard let identity = request.identity else {
            guard let url = requestURL(request, path) else {
                return Decision(outcome: .badRequest, reason: "bad-host", rule: route.rule.name)
            }
            let keepable =
                settings.preservePost && request.method == "POST" && isKeepableForm(request)
                && RedirectMatrix.isSameOriginSubmission(
                    secFetchSite: request.header("sec-fetch-site"), origin: request.header("origin"), target: url)
            let step = RedirectMatrix.signInStep(
                method: request.method, client: client, formKeepable: keepable)
            return Decision(
                outcome: .signIn(step, returnTo: url, start: startURL(returnTo: url)), reason: "sign-in-required",
                rule: route.rule.name)
        }
        guard route.rule.allow.contains(where: { $0.grants(identity) }) else {
            return Decision(outcome: .forbidden, reason: "forbidden", rule: route.rule.name)
        }
        return proxy(route, path, request, identity: identity, reason: "proxy-allowed")
    }

    private func proxy(
        _ route: Compiled<Route>, _ path: RequestPath, _ request: Request, identity: Identity?, reason: String
    )
        -> Decision
    {
        var headers: [HeaderField] = []
        headers.reserveCapacity(6)
        for (name, value) in identity?.headers(.upstream) ?? [] { headers.append(HeaderField(name, value)) }
        headers.append(HeaderField("X-Forwarded-Proto", request.scheme.rawValue))
        headers.append(HeaderField("X-Forwarded-Host", request.host))
        return Decision(
            outcome: .proxy(
                upstream: path.appended(to: route.rule.upstreamOrigin), headers: headers,
                passAccessToken: route.rule.passAccessToken && identity != nil),
            reason: reason, rule: route.rule.name)
    }

    /// A2b applies to urlencoded and multipart forms, not content-encoded, whose declared length is within the limit
    /// (and not empty: an empty form is nothing to keep).
    private func isKeepableForm(_ request: Request) -> Bool {
        guard let type = request.header("content-type")?.lowercased(),
            type.hasPrefix("application/x-www-form-urlencoded") || type.hasPrefix("multipart/form-data"),
            request.header("content-encoding") == nil,
            let length = request.header("content-length").flatMap(Int.init)
        else { return false }
        return (1...settings.preservedFormLimit).contains(length)
    }

    /// `/oauth2/start?rd=<url>` on the public URL.
    public func startURL(returnTo: BrowserURL) -> BrowserURL {
        .signInStart(origin: settings.publicURL, prefix: settings.prefix, returnTo: returnTo)
    }

    private func redirectLocation(_ rule: RedirectRule, path: RequestPath, requestURL: BrowserURL) -> BrowserURL? {
        var rest = String(path.path.dropFirst(rule.path.value.count))
        let replacement: String =
            switch rule.target {
            case .path(let prefix): requestURL.origin + prefix
            case .url(let url): url.origin + url.path
            }
        if replacement.hasSuffix("/"), rest.hasPrefix("/") { rest.removeFirst() }
        let query = path.query.map { "?\($0)" } ?? ""
        return try? BrowserURL(parsing: replacement + rest + query)
    }

    /// `Host` without its port, lower case, and without one trailing dot (`app.example.com.` names the same
    /// site to browsers and nginx, so it must meet the same routes); `nil` when it is not a host a browser
    /// could have sent, or not in the one spelling browsers send (CONTRACT section 5.1: hosts compare after
    /// ASCII lower-casing only). `app%2Eexample.com`, `0x7f.1` or a full-width name would be read as another
    /// host by a URL parser than by the upstream or nginx, which pick a server by the name as written.
    public static func hostName(_ header: String) -> Substring? {
        var header = header
        if let length = header.withUTF8(plainDomainLength) { return Substring(header.utf8.prefix(length)) }
        var name = header.utf8[...]
        if let colon = name.lastIndex(of: UInt8(ascii: ":")),
            name[name.index(after: colon)...].allSatisfy({ $0 &- UInt8(ascii: "0") < 10 })
        {
            name = name[..<colon]
        }
        guard let parsed = parsedHostName(header) else { return nil }
        let host = parsed.utf8.last == UInt8(ascii: ".") ? parsed.dropLast() : parsed
        // IPv6 literals are written many ways (`[2001:0db8::1]`) and never name a route's host (those are names).
        if name.first == UInt8(ascii: "[") { return host }
        let written = name.last == UInt8(ascii: ".") ? name.dropLast() : name
        let canonical = written.elementsEqual(host.utf8) { ($0 &- UInt8(ascii: "A") < 26 ? $0 | 0x20 : $0) == $1 }
        return canonical ? host : nil
    }

    /// The WHATWG host parser's reading of a `Host` header, which the fast path must agree with.
    static func parsedHostName(_ header: String) -> Substring? {
        guard let url = try? BrowserURL(parsing: "http://\(header)/"), url.path == "/", !url.hasCredentials,
            url.query == nil, url.fragment == nil
        else { return nil }
        return Substring(url.host.description)
    }

    /// The length of the name in a `Host` header that is a plain domain, alone or before a `:` and digits: the usual
    /// header, read without a URL parser.
    private static func plainDomainLength(_ header: UnsafeBufferPointer<UInt8>) -> Int? {
        var end = header.count
        if let colon = header.lastIndex(of: UInt8(ascii: ":")),
            header[(colon + 1)...].allSatisfy({ $0 &- UInt8(ascii: "0") < 10 })
        {
            end = colon
        }
        return isPlainDomain(UnsafeBufferPointer(rebasing: header[..<end])) ? end : nil
    }

    /// Lower-case letter-digit-hyphen labels, none empty, the last starting with a letter and none with
    /// `xn--`: names the WHATWG host parser returns unchanged, so no full parse is needed.
    private static func isPlainDomain(_ name: UnsafeBufferPointer<UInt8>) -> Bool {
        var start = 0
        while start < name.count {
            var end = start
            while end < name.count, name[end] != UInt8(ascii: ".") {
                let byte = name[end]
                guard byte &- UInt8(ascii: "a") < 26 || byte &- UInt8(ascii: "0") < 10 || byte == UInt8(ascii: "-")
                else { return false }
                end += 1
            }
            guard end > start else { return false }
            if end - start >= 4, name[start] == UInt8(ascii: "x"), name[start + 1] == UInt8(ascii: "n"),
                name[start + 2] == UInt8(ascii: "-"), name[start + 3] == UInt8(ascii: "-")
            {
                return false
            }
            if end == name.count { return name[start] &- UInt8(ascii: "a") < 26 }
            start = end + 1
        }
        // Empty, or ending with a dot.
        return false
    }
}

/// A rule held by reference in the index, so that finding it copies one pointer, not every field.
final class Compiled<Rule: Sendable>: Sendable {
    let rule: Rule

    init(_ rule: Rule) { self.rule = rule }
}

extension AllowRule {
    /// Whether every condition holds for `identity`.
    func grants(_ identity: Identity) -> Bool {
        conditions.allSatisfy { $0.holds(for: identity) }
    }
}

extension AllowCondition {
    func holds(for identity: Identity) -> Bool {
        switch self {
        case .authenticated:
            return true
        case .email(let addresses):
            return identity.trustedEmail.map(addresses.contains) ?? false
        case .emailDomain(let domains):
            guard let domain = identity.trustedEmailDomain else { return false }
            return domains.contains { entry in
                if entry.hasPrefix("*.") {
                    return domain.hasSuffix(entry.dropFirst()) && domain.count > entry.count - 1
                }
                if entry.hasPrefix(".") { return domain == entry.dropFirst() || domain.hasSuffix(entry) }
                return domain == entry
            }
        case .group(let groups):
            return identity.groups.contains(where: groups.contains)
        case .claim(let required):
            return required.allSatisfy { name, values in
                identity.claims[name]?.contains(where: values.contains) ?? false
            }
        }
    }
}
