import DetourGateway
import DetourPolicy
import DetourRedirect
import Testing

/// CONTRACT section 6: "the same request gets the same answer whether Detour proxies it or is asked about it".
/// A generated corpus of requests (methods, host spellings, odd path spellings, client kinds, identities, bearer
/// tokens) is decided in proxy mode and in forward-auth mode with the method forwarded (F3); the two must agree on
/// every one: forwarded exactly when accepted with the same identity, otherwise the same status, `Location`,
/// content type and body. Paths of Detour's own endpoints are left out: as the proxy Detour serves them, while a
/// forwarded request for them is the application's own.
@Suite struct ModeAgreementTests {
    static let methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]
    static let hosts = ["app.example.com", "APP.Example.COM.", "app.example.com:8443", "other.example.com", "0x7f.1"]
    static let targets = [
        "/", "/x", "/x?a=1&b=%20", "/public/a", "/PUBLIC/a", "/public", "/admin/", "/admin", "/ADMIN/x", "/Admin./x",
        "//admin/x", "/admin/./x", "/a/../admin/x", "/admin%20/x", "/%61dmin/x", "/api/v1", "/API/v1", "/reports/q",
        "/old/page?q=1", "/old", "/admin;x/", "/%2e%2e/admin", "/x%2Fy", "/x\\y", "/caf%C3%A9", "/x#frag",
    ]
    static let clients: [ClientKind] = [.navigation, .api, .preflight]
    static let identities: [Identity?] = [nil, Fixture.user, Fixture.admin]

    /// A deterministic sample of the cross product, and every bearer-token variant of the API requests.
    static var corpus: [(method: String, host: String, target: String, headers: [(String, String)], who: Identity?)] {
        var corpus: [(String, String, String, [(String, String)], Identity?)] = []
        var index = 0
        for method in methods {
            for host in hosts {
                for target in targets {
                    for client in clients {
                        index += 1
                        let who = identities[index % identities.count]
                        var headers = Fixture.headers(for: client)
                        if index % 7 == 0 { headers.append(("Authorization", "Bearer t-\(index)")) }
                        if index % 11 == 0 {
                            headers += [
                                ("Content-Type", "multipart/form-data; boundary=x"), ("Content-Length", "40"),
                                ("Sec-Fetch-Site", "same-origin"),
                            ]
                        }
                        corpus.append((method, host, target, headers, who))
                    }
                }
            }
        }
        return corpus
    }

    @Test func proxyAndForwardAuthAgreeOnEveryRequestOfTheCorpus() async {
        let gateways = [Fixture.gateway(), Fixture.gateway(httpsRedirect: true, preservePost: true)]
        var agreed = 0
        var total = 0
        for (number, gateway) in gateways.enumerated() {
            for (method, host, target, headers, who) in Self.corpus {
                let credentials = Fixture.signedIn(who)
                let proxy = Fixture.step(gateway, Fixture.proxied(method, host, target, headers), credentials)
                let forwarded = Fixture.step(gateway, Fixture.forwardAuth(method, host, target, headers), credentials)
                let (a, b) = (proxy.map(Outcome.init), forwarded.map(Outcome.init))
                total += 1
                if a == b {
                    agreed += 1
                } else {
                    Issue.record(
                        "gateway \(number): \(method) \(host)\(target) as \(who?.subject ?? "-"): \(a.map(\.description) ?? "refused") as the proxy, \(b.map(\.description) ?? "refused") asked"
                    )
                }
                if total % 200 == 0 { await Task.yield() }
            }
        }
        #expect(total >= 600)
        #expect(agreed == total)
        print("mode agreement: \(agreed) of \(total) requests")
    }
}
