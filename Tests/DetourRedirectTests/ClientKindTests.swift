import Testing

@testable import DetourRedirect

@Suite struct ClientKindTests {
    @Test(
        arguments: [
            ("GET", ["sec-fetch-mode": "navigate", "accept": "application/json"], ClientKind.navigation),
            ("GET", ["sec-fetch-mode": "navigate", "authorization": "Basic eA=="], .navigation),
            ("GET", ["sec-fetch-mode": "cors", "accept": "text/html"], .api),
            ("GET", ["sec-fetch-mode": "same-origin"], .api),
            ("GET", ["sec-fetch-mode": "no-cors"], .api),
            ("GET", ["sec-fetch-site": "same-origin", "accept": "text/html"], .api),
            ("GET", ["accept": "text/html,application/xhtml+xml,*/*;q=0.8"], .navigation),
            ("GET", ["accept": "TEXT/HTML"], .navigation),
            ("GET", ["accept": "text/html;q=0"], .api),
            ("GET", ["accept": "*/*"], .api),
            ("GET", ["accept": "application/json"], .api),
            ("GET", [:], .api),
            ("GET", ["accept": "text/html", "x-requested-with": "XMLHttpRequest"], .api),
            ("GET", ["accept": "text/html", "authorization": "Bearer x"], .api),
            ("OPTIONS", ["origin": "https://a.example", "access-control-request-method": "POST"], .preflight),
            ("OPTIONS", ["origin": "https://a.example"], .api),
            (
                "POST",
                ["origin": "https://a.example", "access-control-request-method": "POST", "accept": "text/html"],
                .navigation
            ),
        ] as [(String, [String: String], ClientKind)])
    func classifies(method: String, headers: [String: String], expected: ClientKind) {
        #expect(ClientKind.classify(method: method, header: { headers[$0] }) == expected)
    }
}
