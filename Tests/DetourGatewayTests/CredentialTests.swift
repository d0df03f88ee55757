import DetourGateway
import DetourPolicy
import DetourRedirect
import Testing

/// Bearer tokens and session refresh: the gateway asks for a check, then decides again with what the provider said,
/// the same way in both modes.
@Suite struct CredentialTests {
    let gateway = Fixture.gateway()
    let bearer = Fixture.headers(for: .api) + [("Authorization", "Bearer  tok-1 ")]

    func both(_ target: String, _ headers: [(String, String)], _ credentials: Credentials) -> (Outcome?, Outcome?) {
        (
            Fixture.step(gateway, Fixture.proxied("GET", "app.example.com", target, headers), credentials)
                .map(Outcome.init),
            Fixture.step(gateway, Fixture.forwardAuth("GET", "app.example.com", target, headers), credentials)
                .map(Outcome.init)
        )
    }

    @Test func aBearerRouteAsksForTheTokenToBeCheckedWhateverTheCookiesSay() {
        let (proxy, forwarded) = both("/api/x", bearer, Fixture.signedIn(Fixture.user))
        #expect(proxy == .check(.bearerToken("tok-1", .jwt)))
        #expect(forwarded == proxy)
    }

    @Test func anAcceptedTokenDecidesWhoThisIs() {
        let accepted = Credentials(
            session: Fixture.signedIn(Fixture.user).session, bearer: .accepted(Fixture.admin, token: "tok-1"))
        let (proxy, forwarded) = both("/api/x", bearer, accepted)
        #expect(proxy == .passed(user: "u-2", email: "bob@example.com", groups: "admins", accessToken: "tok-1"))
        #expect(forwarded == proxy)
    }

    @Test func aRefusedTokenIsInvalidTokenNeverARedirect() {
        let (proxy, forwarded) = both("/api/x", bearer, Credentials(bearer: .refused(reason: "expired")))
        guard case .answered(401, nil, "application/json", let body) = proxy else {
            Issue.record("expected 401 JSON, got \(String(describing: proxy))")
            return
        }
        #expect(body == #"{"error":"invalid_token","reason":"expired"}"#)
        #expect(forwarded == proxy)
        let (down, downForwarded) = both("/api/x", bearer, Credentials(bearer: .providerUnavailable))
        #expect(down?.status == 503)
        #expect(downForwarded == down)
    }

    @Test func aTokenOffABearerRouteIsNotChecked() {
        let (proxy, forwarded) = both("/x", bearer, Fixture.signedIn(nil))
        #expect(proxy?.status == 401)
        #expect(forwarded == proxy)
    }

    @Test func aSessionAboutToExpireIsRefreshedFirstUnlessATokenDecides() {
        let expiring = Credentials(
            session: SessionCredentials(identity: Fixture.user, accessToken: "old", needsRefresh: true))
        let (proxy, forwarded) = both("/x", Fixture.headers(for: .navigation), expiring)
        #expect(proxy == .check(.sessionRefresh))
        #expect(forwarded == proxy)
        #expect(both("/api/x", bearer, expiring).0 == .check(.bearerToken("tok-1", .jwt)))
    }

    @Test func aHeaderValueThatCannotBeSentIsA502InBothModes() {
        let broken = Identity(subject: "u-3", email: "eve@example.com\r\nX-Admin: yes")
        let (proxy, forwarded) = both("/x", Fixture.headers(for: .navigation), Fixture.signedIn(broken))
        #expect(proxy?.status == 502)
        #expect(forwarded == proxy)
    }
}

/// Resolution: endpoints matched once on the normalised path, forwarded requests believed from trusted proxies only.
@Suite struct ResolutionTests {
    let gateway = Fixture.gateway()

    func resolve(_ target: String, _ headers: [(String, String)] = [], trusted: Bool = false) -> Resolution {
        gateway.resolve(
            GatewayRequest(
                method: "GET", target: target, headers: Fields([("Host", "app.example.com")] + headers),
                peer: Fixture.client, fromTrustedProxy: trusted))
    }

    @Test(arguments: ["/oauth2/start", "//oauth2/start", "/oauth2/./start", "/x/../oauth2/start", "/oauth2//start"])
    func everySpellingOfAnEndpointIsThatEndpoint(target: String) {
        guard case .endpoint(.start) = resolve(target + "?rd=/") else {
            Issue.record("\(target) is not the start endpoint")
            return
        }
    }

    @Test func aForwardedEndpointPathIsTheApplicationsOwn() {
        let step = Fixture.step(
            gateway, Fixture.forwardAuth("GET", "app.example.com", "/oauth2/start", Fixture.headers(for: .navigation)))
        #expect(step.map(Outcome.init) == .signIn("https://app.example.com/oauth2/start"))
    }

    @Test(arguments: ["/a;b", "/%2e%2e/admin", "/a%2Fb", "*", "http://app.example.com/"])
    func anAmbiguousTargetIsRefusedBeforeAnyDecision(target: String) {
        guard case .refuse(let refusal) = resolve(target) else {
            Issue.record("\(target) was not refused")
            return
        }
        #expect(refusal.status == 400)
        guard case .refuse(let forwarded) = resolve("/oauth2/auth", [("X-Forwarded-Uri", target)], trusted: true),
            target.hasPrefix("/")
        else { return }
        #expect(forwarded == refusal)
    }

    @Test func forwardedURLsAreBelievedFromTrustedProxiesOnly() {
        guard case .refuse(let refusal) = resolve("/oauth2/auth", [("X-Forwarded-Uri", "/admin/")]) else {
            Issue.record("an untrusted forwarded URL was believed")
            return
        }
        #expect(refusal == .untrustedForwardedURL)
    }

    @Test(arguments: [
        [("X-Forwarded-Uri", "/a"), ("X-Original-URL", "/b")],
        [("X-Forwarded-Method", "GET"), ("X-Original-Method", "POST"), ("X-Forwarded-Uri", "/a")],
        [("X-Forwarded-Host", "app.example.com"), ("X-Original-URL", "https://other.example.com/a")],
    ])
    func disagreeingForwardedValuesAreRefused(headers: [(String, String)]) {
        guard case .refuse(let refusal) = resolve("/oauth2/auth", headers, trusted: true) else {
            Issue.record("two forwarded requests were not refused")
            return
        }
        #expect(refusal == .conflictingForwardedRequest)
    }

    @Test func anAbsoluteOriginalURLNamesTheHostAndIsNormalisedAsWritten() {
        guard
            case .decide(let request, .forwardAuth(forwardedMethod: false)) = resolve(
                "/oauth2/auth", [("X-Original-URL", "https://App.Example.com/a//c/../b?x")], trusted: true)
        else {
            Issue.record("not decided")
            return
        }
        #expect((request.host, request.path.path, request.path.query) == ("App.Example.com", "/a/b", "x"))
    }
}

/// RFC 6750 2.1: the token of an `Authorization: Bearer` header, in any case of the scheme, without the spaces
/// around it.
@Suite struct BearerHeaderTests {
    @Test(
        arguments: [
            ("Bearer abc.def", "abc.def"), ("bearer abc", "abc"), ("BEARER  abc ", "abc"), ("Basic abc", nil),
            ("Bearer ", nil), ("Bearerabc", nil), ("Bearer \t", nil),
        ] as [(String, String?)])
    func readsTheToken(header: String, token: String?) {
        let request = Fixture.proxied("GET", "app.example.com", "/", [("Authorization", header)])
        guard case .decide(let canonical, _) = Fixture.gateway().resolve(request) else {
            Issue.record("not decided")
            return
        }
        #expect(canonical.bearerToken == token)
    }

    @Test func invalidTokenAnswersAreRFC6750() {
        let answer = RequestRefusal.invalidToken("expired").answer(method: "GET", client: .api)
        #expect(answer.status == 401)
        #expect(answer.header("WWW-Authenticate") == "Bearer error=\"invalid_token\"")
        #expect(answer.header("Location") == nil)
    }
}
