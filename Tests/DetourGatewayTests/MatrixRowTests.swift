import DetourGateway
import DetourPolicy
import DetourRedirect
import Testing

/// Every row of CONTRACT section 6 the gateway decides, in both modes: Detour as the proxy, and Detour asked by a
/// trusted proxy in front with the method forwarded (F3, Traefik and Caddy) and without it (F2, nginx
/// `auth_request`). The endpoint rows (C1, C2, S1, S2, L1) are the endpoints' own (`EndpointRowTests` and
/// `CallbackRowTests` in DetourServerTests); U1 rewrites the upstream's answer (`ProxyHeadersTests`), from the public URL checked here.
@Suite struct MatrixRowTests {
    let gateway = Fixture.gateway()

    /// The answer in each mode: as the proxy, asked with the method (F3), asked with the URI only (F2).
    func modes(
        _ method: String, _ target: String, _ client: ClientKind, _ credentials: Credentials = Credentials(),
        extra: [(String, String)] = [], gateway: Gateway? = nil, scheme: String = "https"
    ) -> (proxy: Outcome?, forwarded: Outcome?, nginx: Outcome?) {
        let gateway = gateway ?? self.gateway
        let headers = Fixture.headers(for: client) + extra
        let host = "app.example.com"
        return (
            Fixture.step(gateway, Fixture.proxied(method, host, target, headers, scheme: scheme), credentials)
                .map(Outcome.init),
            Fixture.step(gateway, Fixture.forwardAuth(method, host, target, headers, scheme: scheme), credentials)
                .map(Outcome.init),
            Fixture.step(
                gateway, Fixture.forwardAuth(method, host, target, headers, scheme: scheme, withMethod: false),
                credentials
            ).map(Outcome.init)
        )
    }

    static let startURL = "https://auth.example.com/oauth2/start?rd=https%3A%2F%2Fapp.example.com%2Fx"

    @Test(arguments: ["GET", "HEAD"])
    func a1SignInAtTheProviderForABrowserNavigation(method: String) {
        let (proxy, forwarded, nginx) = modes(method, "/x", .navigation)
        #expect(proxy == .signIn("https://app.example.com/x"))
        #expect(forwarded == proxy)
        #expect(nginx?.status == 401)
    }

    @Test(arguments: ["POST", "PUT", "PATCH", "DELETE"])
    func a2SeeOtherToStartForAFormOrOtherMethod(method: String) {
        let (proxy, forwarded, nginx) = modes(method, "/x", .navigation)
        guard case .answered(303, Self.startURL?, _, let body) = proxy else {
            Issue.record("expected 303 to the start URL, got \(String(describing: proxy))")
            return
        }
        #expect(body.contains("href=\"https://auth.example.com/oauth2/start?rd=https%3A%2F%2Fapp.example.com%2Fx\""))
        #expect(forwarded == proxy)
        #expect(nginx?.status == 401)
    }

    @Test func a2bKeepsASameOriginFormWhenConfigured() {
        let form = [
            ("Content-Type", "application/x-www-form-urlencoded"), ("Content-Length", "12"),
            ("Sec-Fetch-Site", "same-origin"),
        ]
        let (proxy, forwarded, _) = modes(
            "POST", "/x", .navigation, extra: form, gateway: Fixture.gateway(preservePost: true))
        #expect(proxy == .keepForm("https://app.example.com/x"))
        // Forward-auth never sees the body, so nothing can be kept there: row A2.
        guard case .answered(303, let location?, _, _) = forwarded else {
            Issue.record("expected row A2 in forward-auth, got \(String(describing: forwarded))")
            return
        }
        #expect(location == "https://auth.example.com/oauth2/start?rd=https%3A%2F%2Fapp.example.com%2Fx")
    }

    @Test(arguments: ["GET", "POST", "DELETE"])
    func a3UnauthorizedForAnAPIRequest(method: String) {
        let (proxy, forwarded, nginx) = modes(method, "/x", .api)
        guard case .answered(401, nil, "application/json", let body) = proxy else {
            Issue.record("expected a 401 JSON answer, got \(String(describing: proxy))")
            return
        }
        #expect(body.contains("\"login_url\":\"\(Self.startURL)\""))
        #expect(forwarded == proxy)
        #expect(nginx?.status == 401)
    }

    @Test func a4PreflightsFollowTheRouteNeverARedirect() {
        let denied = modes("OPTIONS", "/reports/x", .preflight)
        #expect(denied.proxy?.status == 403)
        #expect(denied.forwarded == denied.proxy)
        let passed = modes("OPTIONS", "/api/x", .preflight)
        #expect(passed.proxy == .passed(user: nil, email: nil, groups: nil, accessToken: nil))
        #expect(passed.forwarded == passed.proxy)
        // nginx's `auth_request` asks with GET and no method forwarded: a preflight cannot be told from a request
        // without credentials (docs/forward-auth.md: let nginx pass OPTIONS itself where preflights must pass).
        #expect(denied.nginx?.status == 401)
        #expect(passed.nginx?.status == 401)
    }

    @Test(arguments: [ClientKind.navigation, .api])
    func a5ForbiddenPageOrJSONBySameRule(client: ClientKind) {
        let (proxy, forwarded, nginx) = modes("GET", "/admin/x", client, Fixture.signedIn(Fixture.user))
        let type = client == .navigation ? "text/html; charset=utf-8" : "application/json"
        guard case .answered(403, nil, type?, let body) = proxy else {
            Issue.record("expected a 403 \(type) answer, got \(String(describing: proxy))")
            return
        }
        #expect(body.contains(client == .navigation ? "Access denied" : "\"error\":\"forbidden\""))
        #expect(forwarded == proxy)
        #expect(nginx?.status == 403)
    }

    @Test func p1RedirectRuleWithItsStatusAndAnAbsoluteLocation() {
        let (proxy, forwarded, _) = modes("POST", "/old/a?q=1", .navigation, Fixture.signedIn(Fixture.user))
        guard case .answered(308, "https://app.example.com/new/a?q=1"?, _, _) = proxy else {
            Issue.record("expected 308 to the new path, got \(String(describing: proxy))")
            return
        }
        #expect(forwarded == proxy)
    }

    @Test(arguments: ["GET", "POST", "DELETE"])
    func h1PermanentRedirectToHTTPSForEveryMethod(method: String) {
        let (proxy, forwarded, _) = modes(
            method, "/x?a=1", .navigation, gateway: Fixture.gateway(httpsRedirect: true), scheme: "http")
        guard case .answered(308, "https://app.example.com/x?a=1"?, _, _) = proxy else {
            Issue.record("expected 308 to https, got \(String(describing: proxy))")
            return
        }
        #expect(forwarded == proxy)
    }

    @Test func f1SignedInIsForwardedOrAcceptedWithTheSameIdentity() {
        let (proxy, forwarded, nginx) = modes("GET", "/x", .navigation, Fixture.signedIn(Fixture.user))
        #expect(proxy == .passed(user: "u-1", email: "ann@example.com", groups: "staff", accessToken: nil))
        #expect(forwarded == proxy)
        #expect(nginx == proxy)
        let withToken = modes("GET", "/api/x", .api, Fixture.signedIn(Fixture.user))
        #expect(withToken.proxy == .passed(user: "u-1", email: "ann@example.com", groups: "staff", accessToken: "at-1"))
        #expect(withToken.forwarded == withToken.proxy)
    }

    @Test func f2UnauthorizedWhenOnlyTheURIIsForwarded() {
        let (_, _, nginx) = modes("GET", "/x", .navigation)
        guard case .answered(401, nil, "application/json", let body) = nginx else {
            Issue.record("expected 401, got \(String(describing: nginx))")
            return
        }
        #expect(body.contains("https://auth.example.com/oauth2/start?rd=https%3A%2F%2Fauth.example.com%2F"))
    }

    @Test func f2WithoutAnyForwardedURIIsAuthenticationOnly() {
        let bare = GatewayRequest(
            method: "GET", target: "/oauth2/auth", headers: Fields([("Host", "auth.internal")]), peer: Fixture.client,
            fromTrustedProxy: false)
        #expect(Fixture.step(gateway, bare).map(Outcome.init)?.status == 401)
        #expect(
            Fixture.step(gateway, bare, Fixture.signedIn(Fixture.admin)).map(Outcome.init)
                == .passed(user: "u-2", email: "bob@example.com", groups: "admins", accessToken: nil))
    }

    /// oauth2-proxy's `/oauth2/auth?allowed_groups=&allowed_emails=&allowed_email_domains=`: signed in but outside
    /// them is 403 (never 401, which nginx would turn into another sign-in), in both forward-auth forms.
    @Test func f1IsNarrowedByOAuth2ProxysQueryParameters() {
        func asked(_ query: String, _ identity: Identity?, uri: Bool = true) -> Outcome? {
            var fields = [("Host", "auth.internal"), ("X-Forwarded-Host", "app.example.com")]
            if uri { fields.append(("X-Forwarded-Uri", "/x")) }
            let request = GatewayRequest(
                method: "GET", target: "/oauth2/auth?" + query, headers: Fields(fields), peer: Fixture.trustedProxy,
                fromTrustedProxy: true)
            return Fixture.step(gateway, request, Fixture.signedIn(identity)).map(Outcome.init)
        }
        let ann = Identity(subject: "u-1", email: "Ann@Sub.Example.com", groups: ["staff", "ops"])
        for uri in [true, false] {
            #expect(asked("allowed_groups=admins,ops", ann, uri: uri)?.status == nil, "passed: ops is one")
            #expect(asked("allowed_groups=admins", ann, uri: uri)?.status == 403)
            #expect(asked("allowed_groups=admins", nil, uri: uri)?.status == 401, "not signed in is still 401")
        }
        #expect(asked("allowed_groups=admins&allowed_groups=ops", ann)?.status == nil, "a repeated parameter adds")
        #expect(asked("allowed_emails=ann%40sub.example.com", ann)?.status == nil, "emails ignore case")
        #expect(asked("allowed_emails=bob@example.com,+ann@sub.example.com", ann)?.status == nil, "items are trimmed")
        #expect(asked("allowed_emails=bob@example.com", ann)?.status == 403)
        #expect(asked("allowed_email_domains=example.com", ann)?.status == 403, "exact without a dot")
        #expect(asked("allowed_email_domains=.example.com", ann)?.status == nil)
        #expect(asked("allowed_email_domains=*.example.com", ann)?.status == nil)
        #expect(asked("allowed_email_domains=*.ample.com", ann)?.status == 403, "a whole label, not a suffix")
        #expect(asked("allowed_groups=ops&allowed_emails=bob@example.com", ann)?.status == 403, "every parameter")
        #expect(asked("allowed_groups=&allowed_emails=", ann)?.status == nil, "empty is no narrowing")
        let unverified = Identity(subject: "u-3", email: "eve@example.com", emailVerified: false, groups: [])
        #expect(asked("allowed_email_domains=example.com", unverified)?.status == 403, "an unverified email")
    }

    @Test func noRouteAndMethodNotAllowedAreTheSameInBothModes() {
        let noRoute = modes("GET", "/x", .navigation, gateway: Fixture.gateway(policy: "routes: []\n"))
        #expect(noRoute.proxy?.status == 404)
        let elsewhere = (
            Fixture.step(gateway, Fixture.proxied("GET", "other.example.com", "/", [])).map(Outcome.init),
            Fixture.step(gateway, Fixture.forwardAuth("GET", "other.example.com", "/", [])).map(Outcome.init)
        )
        #expect(elsewhere.0?.status == 404)
        #expect(elsewhere.1 == elsewhere.0)
        let (proxy, forwarded, _) = modes("POST", "/reports/x", .api, Fixture.signedIn(Fixture.user))
        #expect(proxy?.status == 405)
        #expect(forwarded == proxy)
    }

    @Test func upstreamRequestCarriesThePublicURLForRowU1() {
        let request = Fixture.proxied("GET", "app.example.com", "/x/../y?q", Fixture.headers(for: .navigation))
        guard case .proxy(let upstream)? = Fixture.step(gateway, request, Fixture.signedIn(Fixture.user)) else {
            Issue.record("expected the request to be forwarded")
            return
        }
        #expect(upstream.url == "http://10.0.0.1:8080/y?q")
        #expect(
            (upstream.publicScheme, upstream.publicHost, upstream.publicTarget) == (
                .https, "app.example.com", "/x/../y?q"
            ))
        #expect(upstream.addedHeaders.first { $0.name == "X-Forwarded-For" }?.value == Fixture.client)
    }
}
