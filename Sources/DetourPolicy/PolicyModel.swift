public import DetourRedirect

/// Where a policy item was written, for diagnostics and test output.
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    public let file: String
    public let line: Int
    public let column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    public var description: String { "\(file):\(line):\(column)" }
}

/// `match.host`: which request hosts a route or redirect rule applies to (ports are ignored).
public enum HostPattern: Sendable, Hashable, CustomStringConvertible {
    /// No `host` given.
    case any
    /// A lower-case host name.
    case exactly(String)
    /// `*.example.com`: subdomains at any depth, not example.com itself.
    case subdomains(of: String)

    /// Whether `host` (lower case, without port) is one this pattern names.
    public func matches(_ host: String) -> Bool {
        switch self {
        case .any: true
        case .exactly(let name): host == name
        case .subdomains(let suffix): host.count > suffix.count + 1 && host.hasSuffix("." + suffix)
        }
    }

    public var description: String {
        switch self {
        case .any: "any host"
        case .exactly(let name): name
        case .subdomains(let suffix): "*.\(suffix)"
        }
    }
}

/// A path prefix, matched on the normalised path at segment boundaries: `/api` matches `/api` and
/// `/api/x` but not `/apix`; `/static/` matches `/static/x` but not `/static`.
public struct PathPrefix: Sendable, Hashable, CustomStringConvertible {
    public let value: String

    public init(_ value: String) { self.value = value }

    public func matches(_ path: String) -> Bool {
        guard path.hasPrefix(value) else { return false }
        return value.hasSuffix("/") || path.count == value.count
            || path.utf8[path.utf8.index(path.utf8.startIndex, offsetBy: value.utf8.count)] == UInt8(ascii: "/")
    }

    public var description: String { value }
}

/// One condition of an allow rule.
public enum AllowCondition: Sendable, Hashable {
    /// `authenticated: true`: anyone signed in.
    case authenticated
    /// `email: [...]`: one of these addresses (case-insensitive), and not marked unverified.
    case email([String])
    /// `email_domain: [...]`: `example.com` exactly, `.example.com` it and its subdomains,
    /// `*.example.com` its subdomains only; dot boundaries always.
    case emailDomain([String])
    /// `group: [...]`: a member of one of these groups.
    case group([String])
    /// `claim: {name: [...]}`: each named claim has one of its listed values.
    case claim([String: [String]])
}

/// An item of `allow:`; it grants access when all its conditions hold (any one item suffices).
public struct AllowRule: Sendable, Hashable {
    public let conditions: [AllowCondition]
    public let location: SourceLocation
}

/// What a route does with `Authorization: Bearer`: nothing, or validate it as a JWT or by introspection.
public enum BearerMode: String, Sendable, Hashable, CaseIterable {
    case off, jwt, introspect
}

/// What a route does with CORS preflights from people not signed in (row A4).
public enum PreflightMode: String, Sendable, Hashable, CaseIterable {
    case pass, deny
}

/// `upstream_tls`: how an `https://` upstream is verified and reached. Paths are absolute, resolved against
/// the folder of the file that declares the route.
public struct UpstreamTLS: Sendable, Hashable {
    /// Extra trust anchors (PEM), besides the system's.
    public var caFile: String?
    /// The name sent as SNI and verified in the certificate; `nil`: the upstream URL's host.
    public var serverName: String?
    /// A client certificate chain (PEM), for upstreams that require mutual TLS; with ``keyFile``.
    public var certFile: String?
    /// The client certificate's private key (PEM).
    public var keyFile: String?

    public init(caFile: String? = nil, serverName: String? = nil, certFile: String? = nil, keyFile: String? = nil) {
        self.caFile = caFile
        self.serverName = serverName
        self.certFile = certFile
        self.keyFile = keyFile
    }
}

/// A protected application: which requests it takes and who may reach it.
public struct Route: Sendable, Hashable {
    public let name: String
    public let host: HostPattern
    public let path: PathPrefix
    /// The upstream origin; the normalised request path and query are appended.
    public let upstream: BrowserURL
    public let allow: [AllowRule]
    public let publicPaths: [PathPrefix]
    /// `nil`: every method.
    public let methods: Set<String>?
    public let bearer: BearerMode
    public let preflight: PreflightMode
    public let passAccessToken: Bool
    /// For an `https://` upstream: how it is verified (the system's trust store and the URL's host by default).
    public let upstreamTLS: UpstreamTLS
    public let location: SourceLocation
    /// `upstream`'s origin, serialised once.
    let upstreamOrigin: String

    init(
        name: String, host: HostPattern, path: PathPrefix, upstream: BrowserURL, allow: [AllowRule],
        publicPaths: [PathPrefix], methods: Set<String>?, bearer: BearerMode, preflight: PreflightMode,
        passAccessToken: Bool, upstreamTLS: UpstreamTLS = UpstreamTLS(), location: SourceLocation
    ) {
        self.upstreamTLS = upstreamTLS
        self.name = name
        self.host = host
        self.path = path
        self.upstream = upstream
        self.allow = allow
        self.publicPaths = publicPaths
        self.methods = methods
        self.bearer = bearer
        self.preflight = preflight
        self.passAccessToken = passAccessToken
        self.location = location
        upstreamOrigin = upstream.origin
    }
}

/// Where a redirect rule sends a request.
public enum RedirectTarget: Sendable, Hashable, CustomStringConvertible {
    /// Replaces the matched prefix, on the request's own origin.
    case path(String)
    /// Replaces the matched prefix with this URL (its origin, and its path as the new prefix).
    case url(BrowserURL)

    public var description: String {
        switch self {
        case .path(let path): path
        case .url(let url): url.href
        }
    }
}

/// A redirect rule (row P1).
public struct RedirectRule: Sendable, Hashable {
    public let name: String
    public let host: HostPattern
    public let path: PathPrefix
    /// `nil`: every method.
    public let methods: Set<String>?
    public let target: RedirectTarget
    public let status: RedirectStatus
    public let location: SourceLocation

    /// Whether the rule applies to `method`.
    public func applies(to method: String) -> Bool { methods?.contains(method) ?? true }
}

/// Every route and redirect rule of a deployment, as written.
public struct PolicySet: Sendable, Hashable {
    public var routes: [Route]
    public var redirects: [RedirectRule]

    public init(routes: [Route] = [], redirects: [RedirectRule] = []) {
        self.routes = routes
        self.redirects = redirects
    }

    public mutating func append(_ other: PolicySet) {
        routes += other.routes
        redirects += other.redirects
    }
}
