import Testing

@testable import DetourRedirect

@Suite struct RedirectMatrixTests {
    static let original = try! BrowserURL(parsing: "https://app.example.com/orders?id=1")
    static let start = try! BrowserURL(
        parsing: "https://auth.example.com/oauth2/start?rd=https%3A%2F%2Fapp.example.com%2F")
    static let provider = try! BrowserURL(parsing: "https://idp.example/authorize?client_id=detour&state=s")

    /// Rows A1-A4 (forward-auth's F2 and F3 are the gateway's, tested in DetourGatewayTests): (method, client, form
    /// keepable, expected row).
    @Test(
        arguments: [
            ("GET", ClientKind.navigation, false, MatrixRow.a1),
            ("HEAD", .navigation, false, .a1),
            ("POST", .navigation, false, .a2),
            ("PUT", .navigation, false, .a2),
            ("PATCH", .navigation, false, .a2),
            ("DELETE", .navigation, false, .a2),
            ("POST", .navigation, true, .a2b),
            ("GET", .api, false, .a3),
            ("POST", .api, true, .a3),
            ("OPTIONS", .preflight, false, .a4),
        ] as [(String, ClientKind, Bool, MatrixRow)])
    func signInRows(method: String, client: ClientKind, keepable: Bool, row: MatrixRow) {
        #expect(RedirectMatrix.signInStep(method: method, client: client, formKeepable: keepable).row == row)
    }

    /// Every redirect row: (situation, row, status).
    @Test(arguments: [
        (Situation.signInAtProvider(authorizationURL: provider), MatrixRow.a1, 302),
        (.signInAfterSeeOther(start: start, formKept: false), .a2, 303),
        (.signInAfterSeeOther(start: start, formKept: true), .a2b, 303),
        (.callbackSucceeded(returnTo: original), .c1, 303),
        (.signedOut(next: original), .l1, 303),
        (.policyRedirect(status: .temporaryRedirect, location: original), .p1, 307),
        (.policyRedirect(status: .permanentRedirect, location: original), .p1, 308),
        (.policyRedirect(status: .movedPermanently, location: original), .p1, 301),
        (.insecureRequest(httpsURL: original), .h1, 308),
    ])
    func redirectRows(situation: Situation, row: MatrixRow, status: Int) throws {
        let answer = RedirectMatrix.answer(situation, method: "GET", client: .navigation)
        #expect(answer.row == row)
        #expect(answer.status == status)
        let location = try #require(answer.location)
        #expect(try BrowserURL(parsing: location).href == location, "Location is absolute and canonical")
        #expect(answer.header("cache-control") == "no-store")
        #expect(answer.body?.contains("href=\"\(HTML.escape(location))\"") == true)
        #expect(RedirectMatrix.answer(situation, method: "HEAD", client: .navigation).body == nil)
    }

    @Test func redirectBodiesEscapeTheLink() throws {
        // The URL reader already percent-encodes " < > in the query; ' and & survive it and need HTML escaping.
        let target = try BrowserURL(parsing: "https://app.example.com/it's?a=\"><script>&b='")
        let body = try #require(
            RedirectMatrix.answer(.callbackSucceeded(returnTo: target), method: "GET", client: .navigation).body)
        #expect(!body.contains("<script>"))
        #expect(body.contains("it&#39;s?a=%22%3E%3Cscript%3E&amp;b=%27"))
    }

    @Test func unauthenticatedAPIRequestGets401WithLoginURL() {
        for (situation, row) in [
            (Situation.unauthenticated(loginURL: Self.start), MatrixRow.a3),
            (.forwardAuthUnauthenticated(loginURL: Self.start), .f2),
        ] {
            let answer = RedirectMatrix.answer(situation, method: "GET", client: .api)
            #expect(answer.row == row)
            #expect(answer.status == 401)
            #expect(answer.location == nil)
            #expect(answer.header("www-authenticate") == "Bearer")
            #expect(answer.header("content-type") == "application/json")
            #expect(
                answer.body == #"{"error":"unauthenticated","login_url":"\#(Self.start.href.replacingAmpersands)"}"#)
        }
    }

    @Test func preflightDeniedIsNeverARedirect() {
        let answer = RedirectMatrix.answer(.preflightDenied, method: "OPTIONS", client: .preflight)
        #expect(answer.row == .a4)
        #expect(answer.status == 403)
        #expect(answer.location == nil)
    }

    @Test(arguments: [ClientKind.navigation, .api])
    func forbiddenIsHTMLForBrowsersAndJSONForAPIs(client: ClientKind) {
        let answer = RedirectMatrix.answer(.forbidden(reason: "group-not-allowed"), method: "GET", client: client)
        #expect(answer.row == .a5)
        #expect(answer.status == 403)
        #expect(answer.location == nil)
        if client == .navigation {
            #expect(answer.header("content-type") == "text/html; charset=utf-8")
        } else {
            #expect(answer.body == #"{"error":"forbidden","reason":"group-not-allowed"}"#)
        }
    }

    @Test func failedCallbackIsAnErrorPageWithASignInLinkNotARedirect() {
        let failure = CallbackFailure(
            status: 400, code: "state-mismatch", message: "The sign-in <expired>.", signInAgain: Self.start)
        let answer = RedirectMatrix.answer(.callbackFailed(failure), method: "GET", client: .navigation)
        #expect(answer.row == .c2)
        #expect(answer.status == 400)
        #expect(answer.location == nil)
        #expect(answer.body?.contains("href=\"\(HTML.escape(Self.start.href))\"") == true)
        #expect(answer.body?.contains("&lt;expired&gt;") == true)
    }

    @Test func signInLoopIsA200DiagnosticPage() {
        let answer = RedirectMatrix.answer(
            .signInLoop(target: Self.original, attempts: 6, window: "2 minutes", signInAgain: Self.start),
            method: "GET",
            client: .navigation)
        #expect(answer.row == .s2)
        #expect(answer.status == 200)
        #expect(answer.location == nil)
        #expect(answer.body?.contains("6 times in 2 minutes") == true)
    }

    @Test func forwardAuthSignedInIs202() {
        let answer = RedirectMatrix.answer(.forwardAuthSignedIn, method: "GET", client: .api)
        #expect(answer.row == .f1)
        #expect(answer.status == 202)
    }

    @Test func everyRowIsCovered() {
        // S1 is ReturnTargetPolicy.returnTarget(for:fallback:), U1 is UpstreamRedirect: both tested beside them.
        let rowsAnswered: Set<MatrixRow> = [.a1, .a2, .a2b, .a3, .a4, .a5, .c1, .c2, .s2, .l1, .p1, .h1, .f1, .f2, .f3]
        #expect(rowsAnswered.union([.s1, .u1]) == Set(MatrixRow.allCases))
    }

    @Test func sameOriginFormSubmission() {
        #expect(RedirectMatrix.isSameOriginSubmission(secFetchSite: "same-origin", origin: nil, target: Self.original))
        #expect(
            !RedirectMatrix.isSameOriginSubmission(
                secFetchSite: "cross-site", origin: Self.original.origin, target: Self.original))
        #expect(!RedirectMatrix.isSameOriginSubmission(secFetchSite: "same-site", origin: nil, target: Self.original))
        #expect(
            RedirectMatrix.isSameOriginSubmission(
                secFetchSite: nil, origin: "https://app.example.com", target: Self.original))
        #expect(
            !RedirectMatrix.isSameOriginSubmission(
                secFetchSite: nil, origin: "https://evil.example", target: Self.original))
        #expect(!RedirectMatrix.isSameOriginSubmission(secFetchSite: nil, origin: nil, target: Self.original))
    }

    @Test(arguments: RedirectStatus.allCases)
    func statusMethodSemantics(status: RedirectStatus) {
        #expect(status.preservesMethod == [307, 308].contains(status.rawValue))
        #expect(status.mayChangeMethod("POST") == [301, 302, 303].contains(status.rawValue))
        #expect(status.mayChangeMethod("DELETE") == (status == .seeOther))
        #expect(!status.mayChangeMethod("GET"))
    }
}

@Suite struct UpstreamRedirectTests {
    static let upstream = try! BrowserURL(parsing: "http://127.0.0.1:3000/app/page")
    static let publicURL = try! BrowserURL(parsing: "https://grafana.example.com/app/page")

    @Test(arguments: [
        ("http://127.0.0.1:3000/login?next=/x#f", "https://grafana.example.com/login?next=/x#f"),
        ("/login", "https://grafana.example.com/login"),
        ("other", "https://grafana.example.com/app/other"),
        ("https://idp.example/authorize", "https://idp.example/authorize"),
        ("http://127.0.0.1:3001/", "http://127.0.0.1:3001/"),
        ("http://u:p@127.0.0.1:3000/", "http://u:p@127.0.0.1:3000/"),
        ("http://[::1", "http://[::1"),
    ])
    func rewritesOnlyTheUpstreamOrigin(location: String, expected: String) {
        #expect(
            UpstreamRedirect.rewriteLocation(location, upstreamRequest: Self.upstream, publicRequest: Self.publicURL)
                == expected)
    }
}

extension String {
    /// `&` as the JSON writer escapes it.
    fileprivate var replacingAmpersands: String {
        split(separator: "&", omittingEmptySubsequences: false).joined(separator: "\\u0026")
    }
}
