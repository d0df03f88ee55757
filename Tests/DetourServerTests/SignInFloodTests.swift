import DetourConfig
import DetourCurl
import DetourGateway
import DetourOIDC
import DetourRedirect
import DetourSessions
import Foundation
import Logging
import Testing

@testable import DetourServer

/// Issue 14.4 through Detour's own endpoints: no amount of anonymous sign-in traffic makes a legitimate sign-in
/// fail. Abandoned sign-ins (start, then a callback with the state cookie Detour just set and no code) used to
/// fill the single-use table until every real callback was refused as "already completed"; bogus callbacks (a
/// random state, no cookie) must be refused before the table is touched. The endpoints run with a table of 2,000
/// states and twice that many abandoned sign-ins (a debug build answers a few thousand a second); the table
/// itself takes the issue's 200,000 in `ReplayGuardTests`.
@Suite struct SignInFloodTests {
    /// A provider that answers discovery and an empty key set: enough to start sign-ins.
    struct DiscoveryOnly: ProviderTransport {
        func send(_ request: HTTPRequest) async throws(CurlError) -> HTTPResponse {
            let body =
                switch request.url {
                case "https://idp.example/.well-known/openid-configuration":
                    #"{"issuer":"https://idp.example","authorization_endpoint":"https://idp.example/auth","#
                        + #""token_endpoint":"https://idp.example/token","jwks_uri":"https://idp.example/jwks"}"#
                case "https://idp.example/jwks": #"{"keys":[]}"#
                default: throw CurlError(.connectFailed, "not scripted")
                }
            return HTTPResponse(status: 200, headers: [], body: Array(body.utf8))
        }
    }

    /// Detour's endpoints for `https://auth.example.com`, signing in at the provider `transport` scripts.
    static func endpoints(capacity: Int = 2_000, transport: some ProviderTransport = DiscoveryOnly()) async throws
        -> Endpoints
    {
        let configuration = try Configuration.parse(
            "server: { public_url: \"https://auth.example.com\" }\n", file: "detour.yaml", environment: [:])
        let provider = OpenIDProvider(
            registration: ClientRegistration(
                issuer: "https://idp.example", clientID: "detour", clientSecret: "s",
                authentication: .clientSecretBasic,
                redirectURI: "https://auth.example.com/oauth2/callback", scopes: ["openid"], responseMode: .query),
            transport: transport)
        try await provider.load()
        let codec = try SealedCookieCodec(secrets: ["MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="])
        let sessions = SessionCookies(
            codec: codec, policy: CookiePolicy(cookieName: "_detour", domain: nil, secure: true),
            lifetime: .seconds(3600),
            store: CookieSessionStore(codec: codec, replayGuard: ReplayGuard(capacity: capacity)))
        return try Endpoints(
            configuration: configuration, provider: provider, sessions: sessions, logger: Logger(label: "t"))
    }

    /// The single-use table of the endpoints' cookie store.
    static func replayGuard(_ endpoints: Endpoints) -> ReplayGuard {
        guard let store = endpoints.sessions.store as? CookieSessionStore else {
            preconditionFailure("these endpoints keep sessions in cookies")
        }
        return store.replayGuard
    }

    /// A sign-in started and abandoned at its callback; returns the callback's failure code.
    static func abandonedSignIn(_ endpoints: Endpoints, now: Date) async -> String? {
        let started = await endpoints.start(
            EndpointRequest(method: "GET", target: "/oauth2/start?rd=/", headers: [("Host", "auth.example.com")]),
            now: now)
        let cookie = started.headers.first { $0.name == "Set-Cookie" }?.value.split(separator: ";").first ?? ""
        let location = started.headers.first { $0.name == "Location" }?.value ?? ""
        let state = URLComponents(string: location)?.queryItems?.first { $0.name == "state" }?.value ?? ""
        let callback = await endpoints.callback(
            EndpointRequest(
                method: "GET", target: "/oauth2/callback?state=\(state)",
                headers: [("Host", "auth.example.com"), ("Cookie", String(cookie)), ("Accept", "application/json")]),
            now: now)
        let answer = try? JSONSerialization.jsonObject(with: Data(callback.body)) as? [String: Any]
        return answer?["error"] as? String
    }

    @Test func twiceTheTableInAbandonedSignInsLeavesRoomForTheNextOne() async throws {
        let endpoints = try await Self.endpoints()
        let now = Date()
        var refused = 0
        for index in 0..<(2 * Self.replayGuard(endpoints).capacity) {
            if await Self.abandonedSignIn(endpoints, now: now) != "code-missing" { refused += 1 }
            if index % 500 == 0 { await Task.yield() }  // a long loop that never suspends would starve other tests
        }
        #expect(refused == 0, "each abandoned callback got as far as the missing code")
        #expect(Self.replayGuard(endpoints).count == Self.replayGuard(endpoints).capacity)
        #expect(await Self.abandonedSignIn(endpoints, now: now) == "code-missing", "not state-replayed")
    }

    @Test func bogusCallbacksNeverTouchTheTable() async throws {
        let endpoints = try await Self.endpoints()
        for index in 0..<5_000 {
            let answer = await endpoints.callback(
                EndpointRequest(method: "GET", target: "/oauth2/callback?state=bogus-\(index)&code=x", headers: []),
                now: Date())
            if answer.status != 400 { Issue.record("a bogus callback got \(answer.status)") }
            if index % 500 == 0 { await Task.yield() }
        }
        #expect(Self.replayGuard(endpoints).count == 0)
    }
}
