import DetourGateway
import DetourPolicy
import DetourRedirect
import Testing

/// `server.http_listen` (issue 16, row H1): on the plain listener beside a TLS one, every request is answered 308
/// to the same path on https, whatever its method, its credentials, its forwarded headers or its path: Detour's
/// endpoints included, so nothing is signed in or proxied over plain HTTP.
@Suite struct PlainListenerTests {
    let gateway: Gateway = {
        let policies = try! PolicySet.parse(Fixture.policy, file: "p.yaml", environment: [:])
        let engine = PolicyEngine(
            policies: policies, settings: .init(publicURL: Fixture.publicURL, redirectHTTPToHTTPS: true))
        return Gateway(
            engine: engine, scheme: .https, defaultTarget: try! BrowserURL(parsing: "https://auth.example.com/"),
            upgradesToHTTPS: true)
    }()

    func outcome(_ request: GatewayRequest, _ credentials: Credentials = Credentials()) -> Outcome? {
        Fixture.step(gateway, request, credentials).map(Outcome.init)
    }

    func plain(_ method: String, _ host: String, _ target: String, _ extra: [(String, String)] = []) -> GatewayRequest {
        GatewayRequest(
            method: method, target: target, headers: Fields([("Host", host)] + extra), peer: Fixture.client,
            fromTrustedProxy: false)
    }

    @Test(arguments: ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"])
    func everyMethodIsSentToHTTPS(method: String) {
        let answer = outcome(plain(method, "app.example.com", "/x/y?a=1", Fixture.headers(for: .api)))
        guard case .answered(308, "https://app.example.com/x/y?a=1"?, _, _) = answer else {
            Issue.record("expected 308 to https, got \(String(describing: answer))")
            return
        }
    }

    @Test func endpointsAndSignedInRequestsAreSentToHTTPSToo() {
        for target in ["/oauth2/start?rd=/x", "/oauth2/callback?code=c&state=s", "/oauth2/auth", "/ping"] {
            let answer = outcome(plain("GET", "auth.example.com", target), Fixture.signedIn(Fixture.admin))
            guard case .answered(308, "https://auth.example.com\(target)"?, _, _) = answer else {
                Issue.record("\(target): expected 308 to https, got \(String(describing: answer))")
                continue
            }
        }
    }

    @Test func aForwardedProtoFromATrustedProxyChangesNothing() {
        let request = GatewayRequest(
            method: "GET", target: "/x",
            headers: Fields([("Host", "app.example.com"), ("X-Forwarded-Proto", "https")]),
            peer: Fixture.trustedProxy, fromTrustedProxy: true)
        guard case .answered(308, "https://app.example.com/x"?, _, _) = outcome(request) else {
            Issue.record("a trusted X-Forwarded-Proto: https was believed on the plain listener")
            return
        }
    }

    @Test func anUnknownHostIsSentToThePublicURL() {
        guard case .answered(308, "https://auth.example.com/x"?, _, _) = outcome(plain("GET", "evil.example", "/x"))
        else {
            Issue.record("an unconfigured Host was kept in the Location")
            return
        }
    }

    /// Whatever Host and path a client sends, the plain listener answers 308 or 400: never a route, a sign-in or a
    /// crash (a host no https URL could be written for used to fall through to the routes).
    @Test func everyHostAndPathIsRedirectedOrRefused() {
        let hosts = [
            "app.example.com:", "app.example.com:99999", "[::1]", "[::1]:8080", "1.2.3.4", "app.example.com.",
            "a..b", "xn--", "xn--a.example", "%41.example", "ex ample.com", "", "[::1", "app.example.com:80:80",
            "APP.example.com", "a\u{1}b",
        ]
        for host in hosts {
            for target in ["/x", "/%2e%2e/y", "/a?b=%zz", "*", "//evil.example/x", "/x#f"] {
                switch outcome(plain("GET", host, target)) {
                case .answered(308, _?, _, _)?, .answered(400, nil, _, _)?:
                    continue
                case let other:
                    Issue.record("\(host) \(target): \(String(describing: other))")
                }
            }
        }
    }
}
