import DetourGateway
import DetourPolicy
import DetourRedirect

/// A header block for tests: names compared ASCII case-insensitively, as servers do.
struct Fields: RequestHeaders {
    let list: [(name: String, value: String)]

    init(_ list: [(String, String)]) { self.list = list.map { (name: $0.0, value: $0.1) } }

    func first(_ name: String) -> String? { list.first { $0.name.lowercased() == name }?.value }
    func all(_ name: String) -> [String] { list.filter { $0.name.lowercased() == name }.map(\.value) }
}

/// One gateway over a policy with a route for every situation of the matrix, and requests to it in both modes.
enum Fixture {
    static let policy = """
        routes:
          - name: app
            match: { host: "app.example.com" }
            upstream: "http://10.0.0.1:8080"
            allow: [{ authenticated: true }]
            public: ["/public/"]
          - name: admin
            match: { host: "app.example.com", path: "/admin/" }
            upstream: "http://10.0.0.1:8080"
            allow: [{ group: ["admins"] }]
          - name: api
            match: { host: "app.example.com", path: "/api/" }
            upstream: "http://10.0.0.2:9000"
            allow: [{ authenticated: true }]
            bearer: "jwt"
            preflight: "pass"
            pass_access_token: true
          - name: reports
            match: { host: "app.example.com", path: "/reports/" }
            upstream: "http://10.0.0.1:8080"
            allow: [{ authenticated: true }]
            methods: ["GET", "HEAD"]
            preflight: "deny"
        redirects:
          - name: moved
            match: { host: "app.example.com", path: "/old/" }
            to: "/new/"
            status: 308
        """

    static let publicURL = try! BrowserURL(parsing: "https://auth.example.com")
    static let trustedProxy = "10.9.9.9"
    static let client = "203.0.113.7"

    static func gateway(httpsRedirect: Bool = false, preservePost: Bool = false, policy: String = policy) -> Gateway {
        let policies = try! PolicySet.parse(policy, file: "p.yaml", environment: [:])
        let engine = PolicyEngine(
            policies: policies,
            settings: .init(publicURL: publicURL, redirectHTTPToHTTPS: httpsRedirect, preservePost: preservePost))
        return Gateway(
            engine: engine, scheme: .https, defaultTarget: try! BrowserURL(parsing: "https://auth.example.com/"))
    }

    static let user = Identity(subject: "u-1", email: "ann@example.com", groups: ["staff"], preferredUsername: "ann")
    static let admin = Identity(subject: "u-2", email: "bob@example.com", groups: ["admins"])

    static func signedIn(_ identity: Identity?, accessToken: String? = "at-1") -> Credentials {
        Credentials(
            session: identity.map { SessionCredentials(identity: $0, accessToken: accessToken, needsRefresh: false) })
    }

    /// The headers a kind of client sends (CONTRACT section 6).
    static func headers(for client: ClientKind) -> [(String, String)] {
        switch client {
        case .navigation: [("Accept", "text/html,application/xhtml+xml"), ("Sec-Fetch-Mode", "navigate")]
        case .api: [("Accept", "application/json"), ("Sec-Fetch-Mode", "cors")]
        case .preflight: [("Origin", "https://web.example.com"), ("Access-Control-Request-Method", "PUT")]
        }
    }

    /// A request sent to Detour as the proxy: `scheme://host/target`.
    static func proxied(
        _ method: String, _ host: String, _ target: String, _ headers: [(String, String)], scheme: String = "https"
    ) -> GatewayRequest {
        var fields = [("Host", host)] + headers
        // Plain http reaches Detour behind a TLS-terminating proxy that says so: the scheme is believed from it.
        if scheme == "http" { fields.append(("X-Forwarded-Proto", "http")) }
        return GatewayRequest(
            method: method, target: target, headers: Fields(fields), peer: scheme == "http" ? trustedProxy : client,
            fromTrustedProxy: scheme == "http")
    }

    /// The same request as a trusted proxy in front asks about it at `/oauth2/auth`: Traefik and Caddy forward the
    /// method too (F3), nginx `auth_request` only the URI (F2).
    static func forwardAuth(
        _ method: String, _ host: String, _ target: String, _ headers: [(String, String)], scheme: String = "https",
        withMethod: Bool = true
    ) -> GatewayRequest {
        var fields = [("Host", "auth.internal")] + headers
        fields += [("X-Forwarded-Proto", scheme), ("X-Forwarded-Host", host), ("X-Forwarded-Uri", target)]
        if withMethod { fields.append(("X-Forwarded-Method", method)) }
        fields.append(("X-Forwarded-For", client))
        return GatewayRequest(
            method: "GET", target: "/oauth2/auth", headers: Fields(fields), peer: trustedProxy, fromTrustedProxy: true)
    }

    /// The step for a request, resolved and decided in one go; a refusal as the answer the server renders for it;
    /// `nil` for Detour's own endpoints.
    static func step(_ gateway: Gateway, _ request: GatewayRequest, _ credentials: Credentials = Credentials()) -> Step?
    {
        switch gateway.resolve(request) {
        case .decide(let canonical, let mode): return gateway.decide(canonical, mode, credentials: credentials).step
        case .refuse(let refusal):
            let headers = request.headers
            return .answer(
                refusal.answer(method: "GET", client: .classify(method: "GET", header: { headers.first($0) })))
        case .endpoint: return nil
        }
    }
}

/// A step reduced to what a client sees of it, so that the two modes' answers can be compared.
enum Outcome: Equatable, CustomStringConvertible {
    /// Forwarded (proxy mode) or 202 (forward-auth), with the identity the upstream or the proxy in front learns.
    case passed(user: String?, email: String?, groups: String?, accessToken: String?)
    case answered(status: Int, location: String?, contentType: String?, body: String)
    case signIn(String)
    case keepForm(String)
    case check(CredentialCheck)

    init(_ step: Step) {
        switch step {
        case .proxy(let upstream):
            func field(_ name: String) -> String? { upstream.addedHeaders.first { $0.name == name }?.value }
            self = .passed(
                user: field("X-Forwarded-User"), email: field("X-Forwarded-Email"), groups: field("X-Forwarded-Groups"),
                accessToken: field("X-Forwarded-Access-Token"))
        case .answer(let answer) where answer.status == 202:
            self = .passed(
                user: answer.header("X-Auth-Request-User"), email: answer.header("X-Auth-Request-Email"),
                groups: answer.header("X-Auth-Request-Groups"),
                accessToken: answer.header("X-Auth-Request-Access-Token"))
        case .answer(let answer):
            self = .answered(
                status: answer.status, location: answer.header("Location"), contentType: answer.header("Content-Type"),
                body: String(decoding: answer.body, as: UTF8.self))
        case .signIn(let returnTo): self = .signIn(returnTo.href)
        case .keepForm(let returnTo): self = .keepForm(returnTo.href)
        case .check(let check): self = .check(check)
        }
    }

    var status: Int? {
        switch self {
        case .passed: nil
        case .answered(let status, _, _, _): status
        case .signIn: 302
        case .keepForm: 303
        case .check: nil
        }
    }

    var description: String {
        switch self {
        case .passed(let user, _, _, let token): "passed(\(user ?? "-"), token \(token ?? "-"))"
        case .answered(let status, let location, _, _): "\(status) \(location ?? "")"
        case .signIn(let target): "sign in to \(target)"
        case .keepForm(let target): "keep the form, then sign in to \(target)"
        case .check(let check): "check \(check)"
        }
    }
}
