public import DetourRedirect

/// Decides every request against the compiled policies: the single evaluation path behind the proxy,
/// forward-auth and `detour policy test`.
///
/// Order: the path is normalised once (400 if ambiguous); plain http is redirected when configured (H1);
/// Detour's own endpoints are recognised; redirect rules (P1), then routes, by specificity; no route is
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

        public init(
            publicURL: BrowserURL, prefix: String = "/oauth2", redirectHTTPToHTTPS: Bool = false,
            preservePost: Bool = false, preservedFormLimit: Int = 64 * 1024
        ) {
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
        /// A header's value by lower-case name.
        public var header: (String) -> String?

        public init(
            method: String, scheme: BrowserURL.Scheme, host: String, target: String, identity: Identity?,
            header: @escaping (String) -> String?
        ) {
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
    private let routes: RuleIndex<Route>
    private let redirects: RuleIndex<RedirectRule>
    private let endpointPrefix: String

    public init(policies: PolicySet, settings: Settings) {
        self.settings = settings
        self.policies = policies
        routes = RuleIndex(policies.routes, host: \.host, path: \.path)
        redirects = RuleIndex(policies.redirects, host: \.host, path: \.path)
        endpointPrefix = settings.prefix + "/"
    }

    public func decide(_ request: Request) -> Decision {
        let path: RequestPath
        do {
            path = try RequestPath(normalizing: request.target)
        } catch {
            return Decision(outcome: .badRequest, reason: error.rawValue, rule: nil)
        }
        guard let hostName = Self.hostName(request.host) else {
            return Decision(outcome: .badRequest, reason: "bad-host", rule: nil)
        }

        if request.scheme == .http, settings.redirectHTTPToHTTPS,
            let https = try? BrowserURL(parsing: "https://\(hostName)\(path)")
        {
            return Decision(
                outcome: .redirect(.permanentRedirect, location: https), reason: "https-redirect", rule: nil)
        }
        if path.path == settings.prefix || path.path.hasPrefix(endpointPrefix)
            || ["/ping", "/ready", "/metrics"].contains(path.path)
        {
            return Decision(outcome: .endpoint, reason: "detour-endpoint", rule: nil)
        }
        if let rule = redirects.first(host: hostName, path: path.path, where: { $0.applies(to: request.method) }) {
            guard let url = requestURL(request, path),
                let location = redirectLocation(rule, path: path, requestURL: url)
            else { return Decision(outcome: .badRequest, reason: "bad-host", rule: rule.name) }
            return Decision(
                outcome: .redirect(rule.status, location: location), reason: "policy-redirect", rule: rule.name)
        }
        guard let route = routes.first(host: hostName, path: path.path) else {
            return Decision(outcome: .notFound, reason: "no-route", rule: nil)
        }
        return decide(request, route: route, path: path)
    }

    /// The URL the client asked for, as a browser would write it (the return target after sign-in).
    private func requestURL(_ request: Request, _ path: RequestPath) -> BrowserURL? {
        try? BrowserURL(parsing: "\(request.scheme.rawValue)://\(request.host)\(path)")
    }

    private func decide(_ request: Request, route: Route, path: RequestPath) -> Decision {
        let client = ClientKind.classify(method: request.method, header: request.header)
        if client == .preflight {
            return route.preflight == .pass
                ? proxy(route, path, request, identity: nil, reason: "proxy-preflight")
                : Decision(outcome: .preflightDenied, reason: "preflight-denied", rule: route.name)
        }
        if let methods = route.methods, !methods.contains(request.method) {
            return Decision(
                outcome: .methodNotAllowed(allowed: methods.sorted()), reason: "method-not-allowed", rule: route.name)
        }
        if route.publicPaths.contains(where: { $0.matches(path.path) }) {
            return proxy(route, path, request, identity: request.identity, reason: "proxy-public-path")
        }
        guard let identity = request.identity else {
            guard let url = requestURL(request, path) else {
                return Decision(outcome: .badRequest, reason: "bad-host", rule: route.name)
            }
            let keepable =
                settings.preservePost && request.method == "POST" && isKeepableForm(request)
                && RedirectMatrix.isSameOriginSubmission(
                    secFetchSite: request.header("sec-fetch-site"), origin: request.header("origin"), target: url)
            let step = RedirectMatrix.signInStep(
                method: request.method, client: client, mode: .proxy, formKeepable: keepable)
            return Decision(
                outcome: .signIn(step, returnTo: url, start: startURL(returnTo: url)), reason: "sign-in-required",
                rule: route.name)
        }
        guard route.allow.contains(where: { $0.grants(identity) }) else {
            return Decision(outcome: .forbidden, reason: "forbidden", rule: route.name)
        }
        return proxy(route, path, request, identity: identity, reason: "proxy-allowed")
    }

    private func proxy(_ route: Route, _ path: RequestPath, _ request: Request, identity: Identity?, reason: String)
        -> Decision
    {
        var headers = identity?.forwardedHeaders.map { HeaderField($0.name, $0.value) } ?? []
        headers.append(HeaderField("X-Forwarded-Proto", request.scheme.rawValue))
        headers.append(HeaderField("X-Forwarded-Host", request.host))
        return Decision(
            outcome: .proxy(
                upstream: route.upstream.origin + path.description, headers: headers,
                passAccessToken: route.passAccessToken && identity != nil),
            reason: reason, rule: route.name)
    }

    /// A2b applies to urlencoded and multipart forms whose declared length is within the limit.
    private func isKeepableForm(_ request: Request) -> Bool {
        guard let type = request.header("content-type")?.lowercased(),
            type.hasPrefix("application/x-www-form-urlencoded") || type.hasPrefix("multipart/form-data"),
            let length = request.header("content-length").flatMap(Int.init)
        else { return false }
        return length <= settings.preservedFormLimit
    }

    /// `/oauth2/start?rd=<url>` on the public URL.
    public func startURL(returnTo: BrowserURL) -> BrowserURL {
        let location =
            settings.publicURL.origin + settings.prefix + "/start?rd=" + Self.percentEncodeComponent(returnTo.href)
        guard let url = try? BrowserURL(parsing: location) else {
            preconditionFailure("the start URL is built from a valid origin and an encoded component")
        }
        return url
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

    /// `Host` without its port, lower case; `nil` when it is not a host a browser could have sent.
    static func hostName(_ header: String) -> String? {
        var name = Substring(header)
        if let colon = name.lastIndex(of: ":"), name[name.index(after: colon)...].allSatisfy(\.isASCIIDigit) {
            name = name[..<colon]
        }
        if isPlainDomain(name) { return String(name) }
        guard let url = try? BrowserURL(parsing: "http://\(header)/"), url.path == "/", !url.hasCredentials,
            url.query == nil, url.fragment == nil
        else { return nil }
        return url.host.description
    }

    /// Lower-case letter-digit-hyphen labels, none empty, the last starting with a letter and none with
    /// `xn--`: names the WHATWG host parser returns unchanged, so no full parse is needed.
    private static func isPlainDomain(_ name: Substring) -> Bool {
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        guard let last = labels.last, last.first?.isLowercaseASCIILetter == true else { return false }
        return labels.allSatisfy { label in
            !label.isEmpty && !label.hasPrefix("xn--")
                && label.allSatisfy { $0.isLowercaseASCIILetter || $0.isASCIIDigit || $0 == "-" }
        }
    }

    /// Percent-encodes everything but RFC 3986 unreserved characters.
    static func percentEncodeComponent(_ text: String) -> String {
        var output = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                output.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                output +=
                    "%" + String(byte >> 4, radix: 16, uppercase: true) + String(byte & 0xF, radix: 16, uppercase: true)
            }
        }
        return output
    }
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
            guard let email = identity.trustedEmail, let at = email.lastIndex(of: "@") else { return false }
            let domain = email[email.index(after: at)...]
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

extension Character {
    fileprivate var isASCIIDigit: Bool { ("0"..."9").contains(self) }
    fileprivate var isLowercaseASCIILetter: Bool { ("a"..."z").contains(self) }
}
