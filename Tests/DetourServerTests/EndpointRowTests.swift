import DetourGateway
import DetourPolicy
import DetourSessions
import Foundation
import Testing

@testable import DetourServer

/// The matrix rows Detour's endpoints answer (CONTRACT section 6: C2, S1, S2, L1), through ``Endpoints/handle(_:_:now:)``
/// as the dispatcher calls it, without a socket. C1, which needs a signed ID token, is `CallbackRowTests`; the rows the
/// gateway decides are in DetourGatewayTests.
@Suite struct EndpointRowTests {
    static let browser = [("Host", "auth.example.com"), ("Accept", "text/html"), ("Sec-Fetch-Mode", "navigate")]

    func start(_ endpoints: Endpoints, rd: String, cookie: String? = nil, now: Date) async -> Answer {
        let headers = Self.browser + (cookie.map { [("Cookie", $0)] } ?? [])
        return await endpoints.handle(
            .start, EndpointRequest(method: "GET", target: "/oauth2/start?rd=\(rd)", headers: headers), now: now)
    }

    static func cookie(_ answer: Answer) -> String? {
        answer.headers.first { $0.name == "Set-Cookie" }.map { String($0.value.split(separator: ";")[0]) }
    }

    /// The `Cookie` header a browser sends after `answer`, given the one it sent before: a cookie jar.
    static func jar(_ answer: Answer, after previous: String?) -> String {
        var cookies: [(String, String)] = (previous ?? "").split(separator: ";").compactMap {
            let pair = $0.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1).map(String.init)
            return pair.count == 2 ? (pair[0], pair[1]) : nil
        }
        for header in answer.headers where header.name == "Set-Cookie" {
            let pair = header.value.split(separator: ";")[0].split(separator: "=", maxSplits: 1).map(String.init)
            cookies.removeAll { $0.0 == pair[0] }
            if pair.count == 2, !header.value.contains("Max-Age=0") { cookies.append((pair[0], pair[1])) }
        }
        return cookies.map { "\($0.0)=\($0.1)" }.joined(separator: "; ")
    }

    /// oauth2-proxy's `/oauth2/sign_in` for nginx's `error_page 401`: A1 for a browser, A2 when a trusted proxy says
    /// the original request was a POST (its `error_page` made it a GET), A3 for an API client; and
    /// `X-Auth-Request-Redirect` as the target when `rd` is absent, refused like any `rd` (S1).
    @Test func signInIsStartForBrowsersAndA401ForAPIs() async throws {
        let endpoints = try await SignInFloodTests.endpoints()
        let now = Date()
        func signIn(_ headers: [(String, String)], trusted: Bool = false, target: String = "/oauth2/sign_in") async
            -> Answer
        {
            await endpoints.handle(
                .signIn,
                EndpointRequest(
                    method: "GET", target: target, headers: [("Host", "auth.example.com")] + headers,
                    fromTrustedProxy: trusted), now: now)
        }
        let redirect = [("X-Auth-Request-Redirect", "/reports?q=1")]
        let browser = await signIn(Self.browser.dropFirst() + redirect)
        #expect(browser.status == 302)
        #expect(browser.header("Location")?.hasPrefix("https://idp.example/auth?") == true)
        let wasPost = [("X-Original-Method", "POST")]
        let posted = await signIn(Self.browser.dropFirst() + redirect + wasPost, trusted: true)
        #expect(posted.status == 303)
        #expect(
            posted.header("Location")
                == "https://auth.example.com/oauth2/start?rd=https%3A%2F%2Fauth.example.com%2Freports%3Fq%3D1")
        #expect(await signIn(Self.browser.dropFirst() + wasPost).status == 302, "believed from trusted proxies only")
        let api = await signIn([("Accept", "application/json")] + redirect)
        #expect(api.status == 401 && api.header("Location") == nil)
        #expect(String(decoding: api.body, as: UTF8.self).contains("rd=https%3A%2F%2Fauth.example.com%2Freports"))
        let evil = await signIn([("Accept", "application/json"), ("X-Auth-Request-Redirect", "https://evil.example/")])
        #expect(!String(decoding: evil.body, as: UTF8.self).contains("evil.example"), "validated as any rd")
        let withRD = await signIn(
            [("Accept", "application/json")] + redirect, target: "/oauth2/sign_in?rd=%2Fother")
        #expect(String(decoding: withRD.body, as: UTF8.self).contains("rd=https%3A%2F%2Fauth.example.com%2Fother"))
    }

    @Test func s1ARejectedReturnTargetBecomesTheDefaultAndC2IsAPageNotARedirect() async throws {
        let endpoints = try await SignInFloodTests.endpoints()
        let now = Date()
        let started = await start(endpoints, rd: "https%3A%2F%2Fevil.example%2F", now: now)
        #expect(started.status == 302)
        #expect(started.header("Location")?.hasPrefix("https://idp.example/auth?") == true)
        let callback = await endpoints.handle(
            .callback,
            EndpointRequest(
                method: "GET", target: "/oauth2/callback?state=forged&code=x",
                headers: [
                    ("Host", "auth.example.com"), ("Cookie", Self.cookie(started) ?? ""),
                    ("Accept", "application/json"),
                ]),
            now: now)
        #expect(callback.status == 400)
        #expect(callback.header("Location") == nil)
        let body = String(decoding: callback.body, as: UTF8.self)
        #expect(body.contains("\"error\":\"state-mismatch\""))
        #expect(body.contains("rd=https%3A%2F%2Fauth.example.com%2F"), "signing in again goes to the default")
        #expect(!body.contains("evil.example"))
    }

    @Test func s2TheSixthStartWithinTwoMinutesIsADiagnosticPage() async throws {
        let endpoints = try await SignInFloodTests.endpoints()
        let now = Date()
        var cookie: String?
        for attempt in 1...5 {
            let answer = await start(endpoints, rd: "%2Fapp", cookie: cookie, now: now + Double(attempt))
            #expect(answer.status == 302, "attempt \(attempt)")
            cookie = Self.jar(answer, after: cookie)
        }
        #expect(cookie?.contains("__Host-_detour_browser=") == true, "the browser was given an id")
        let sixth = await start(endpoints, rd: "%2Fapp", cookie: cookie, now: now + 6)
        #expect(sixth.status == 200)
        #expect(sixth.header("Location") == nil)
        #expect(String(decoding: sixth.body, as: UTF8.self).contains("Sign-in loop stopped"))
        let later = await start(endpoints, rd: "%2Fapp", cookie: cookie, now: now + 300)
        #expect(later.status == 302, "two minutes later it is no loop")
    }

    @Test(arguments: ["GET", "POST"])
    func l1SignOutIsASeeOtherToAValidatedTarget(method: String) async throws {
        let endpoints = try await SignInFloodTests.endpoints()
        for (rd, expected) in [
            ("%2Fbye", "https://auth.example.com/bye"), ("https%3A%2F%2Fevil.example%2F", "https://auth.example.com/"),
        ] {
            let name = endpoints.sessions.policy.sessionName
            let answer = await endpoints.handle(
                .signOut,
                EndpointRequest(
                    method: method, target: "/oauth2/sign_out?rd=\(rd)",
                    headers: Self.browser + [("Cookie", "\(name)=x")]),
                now: Date())
            #expect(answer.status == 303)
            #expect(answer.header("Location") == expected)
            #expect(answer.headers.contains { $0.name == "Set-Cookie" && $0.value.hasPrefix("\(name)=;") }, "cleared")
        }
    }

    @Test func methodsAnEndpointDoesNotTakeAre405WithAllow() async throws {
        let endpoints = try await SignInFloodTests.endpoints()
        let answer = await endpoints.handle(
            .start, EndpointRequest(method: "DELETE", target: "/oauth2/start", headers: Self.browser), now: Date())
        #expect(answer.status == 405)
        #expect(answer.header("Allow") == "GET, HEAD")
        let unknown = await endpoints.handle(.unknown, EndpointRequest(method: "GET", target: "/oauth2/x", headers: []))
        #expect(unknown.status == 404)
    }
}
