import Testing

@testable import DetourRedirect

@Suite struct ReturnTargetPolicyTests {
    static func policy(_ entries: [String], base: String = "https://auth.example.com/") throws -> ReturnTargetPolicy {
        ReturnTargetPolicy(
            base: try BrowserURL(parsing: base), allowedHosts: try entries.map { try AllowedHost(parsing: $0) })
    }

    /// CONTRACT section 4, entry by entry: (entry, target, expected reason or nil when allowed).
    @Test(
        arguments: [
            ("app.example.com", "https://app.example.com/x", nil),
            ("app.example.com", "https://APP.EXAMPLE.COM:443/x", nil),
            ("app.example.com", "https://app.example.com:8443/x", "port"),
            ("app.example.com", "https://app.example.com./x", "host"),
            ("app.example.com", "https://www.app.example.com/x", "host"),
            ("app.example.com:8443", "https://app.example.com:8443/", nil),
            ("app.example.com:8443", "https://app.example.com/", "port"),
            ("app.example.com:443", "https://app.example.com/", nil),
            ("app.example.com:*", "https://app.example.com:1234/", nil),
            ("*.corp.example", "https://a.corp.example/", nil),
            ("*.corp.example", "https://a.b.c.corp.example/", nil),
            ("*.corp.example", "https://corp.example/", "host"),
            ("*.corp.example", "https://evilcorp.example/", "host"),
            ("*.corp.example", "https://a..corp.example/", "host"),
            ("*.corp.example", "https://a.corp.example:8443/", "port"),
            (".corp.example", "https://corp.example/", nil),
            (".corp.example", "https://x.corp.example/", nil),
            (".corp.example", "https://evilcorp.example/", "host"),
            ("*.CORP.example", "https://A.corp.EXAMPLE/", nil),
            ("münchen.de", "https://xn--mnchen-3ya.de/", nil),
            ("xn--mnchen-3ya.de", "https://MÜNCHEN.de/", nil),
            ("127.0.0.1:8080", "http://0x7f.1:8080/", nil),
            ("[::1]:8080", "http://[0:0::1]:8080/", nil),
            ("localhost:8080", "http://localhost:8080/", nil),
            ("localhost:8080", "https://localhost:8080/", nil),
            ("app.example.com", "http://app.example.com/", "scheme"),
            ("app.example.com", "https://user@app.example.com/", "userinfo"),
            ("app.example.com", "javascript:alert(1)", "scheme"),
            ("app.example.com", "https://app.example.com/oauth2/callback", "loop"),
            ("app.example.com", "/oauth2", "loop"),
            (
                "app.example.com", "https://app.example.com/oauth2/resubmit?form=" + String(repeating: "a0", count: 32),
                nil
            ),
            ("app.example.com", "/oauth2/resubmit", "loop"),
            ("app.example.com", "/oauth2/resubmit?form=" + String(repeating: "A0", count: 32), "loop"),
            ("app.example.com", "/oauth2/resubmit?form=" + String(repeating: "a0", count: 33), "loop"),
            ("app.example.com", "/oauth2/resubmit?x=1", "loop"),
            ("app.example.com", "/oauth2/resubmit/", "loop"),
            ("app.example.com", "/oauth2x", nil),
            ("app.example.com", "https://auth.example.com/anything", nil),
            ("app.example.com", "https://auth.example.com:444/", "port"),
            ("app.example.com", "http://evil.example/", "host"),
            ("app.example.com", "http://auth.example.com/", "scheme"),
            ("app.example.com", "/search?next=https://evil.example/", nil),
            ("app.example.com", "", "empty"),
            ("app.example.com", "  ", "empty"),
            ("app.example.com", "/" + String(repeating: "a", count: 4096), "too-long"),
            ("app.example.com", "/\t/evil.example", "control-character"),
            ("app.example.com", "/\u{7F}", "control-character"),
            ("app.example.com", "https://[::1/", "unparseable"),
            ("app.example.com", "https://app.example.com:99999/", "unparseable"),
            ("app.example.com", "https://аpp.example.com/", "idn"),
        ] as [(String, String, String?)])
    func entryDecidesTarget(entry: String, target: String, reason: String?) throws {
        let verdict = try Self.policy([entry]).evaluate(target)
        switch verdict {
        case .allowed(let url): #expect(reason == nil, "allowed as \(url)")
        case .rejected(let rejection): #expect(rejection.code == reason)
        }
    }

    @Test func everyReasonCodeIsStableAndDistinct() {
        let codes = RejectionReason.all.map(\.code)
        #expect(Set(codes).count == codes.count)
        #expect(
            codes == [
                "empty", "too-long", "control-character", "unparseable", "scheme", "idn", "userinfo", "host", "port",
                "loop",
            ])
    }

    @Test func httpIsAllowedOnlyToLoopbackHosts() throws {
        let policy = try Self.policy(["app.example.com:8080", "localhost:*", "127.0.0.1:*", "[::1]:*"])
        #expect(policy.evaluate("http://app.example.com:8080/").location == nil)
        for target in ["http://localhost:9000/", "http://127.0.0.1:9000/", "http://[::1]:9000/"] {
            #expect(policy.evaluate(target).location != nil, "\(target)")
        }
    }

    @Test func anHTTPPublicURLKeepsItsOwnOrigin() throws {
        let policy = try Self.policy([], base: "http://detour.internal:4180/")
        #expect(policy.evaluate("/dashboard").location?.href == "http://detour.internal:4180/dashboard")
        #expect(policy.evaluate("http://detour.internal:4181/").location == nil)
    }

    @Test(arguments: [
        "*", "*.", ".", "*.com", ".com", "*.co.uk", ".github.io", "*.localhost.", "a.*.example", "*.1.2.3.4",
        "", "app.example.com:0", "app.example.com:65536", "app.example.com:+1", "https://app.example.com",
        "app example.com",
        "[::1", "*.a..b", "app.example.com:8080:1",
    ])
    func entriesThatMatchEverythingOrNothingAreRefused(entry: String) {
        #expect(throws: AllowedHostError.self) { try AllowedHost(parsing: entry) }
    }

    @Test func rejectedTargetFallsBackToTheDefault() throws {
        let policy = try Self.policy(["app.example.com"])
        let fallback = try BrowserURL(parsing: "/", against: policy.base)
        let s1 = policy.returnTarget(for: "//evil.example/", fallback: fallback)
        #expect(s1.target.href == "https://auth.example.com/")
        #expect(s1.rejection == .host)
        let kept = policy.returnTarget(for: "https://app.example.com/x", fallback: fallback)
        #expect(kept.target.href == "https://app.example.com/x")
        #expect(kept.rejection == nil)
        #expect(policy.returnTarget(for: nil, fallback: fallback).target == fallback)
    }
}
