import DetourCurl
import DetourSessions
import Foundation
import Synchronization
import Testing

@testable import DetourOIDC

/// A transport that answers from a script and records what it was asked: for the provider logic around
/// the calls. The calls themselves are exercised for real in DetourCurlTests and Tests/e2e.
final class ScriptedTransport: ProviderTransport {
    private let script: @Sendable (HTTPRequest) -> HTTPResponse?
    let requests = Mutex<[HTTPRequest]>([])

    init(_ script: @escaping @Sendable (HTTPRequest) -> HTTPResponse?) { self.script = script }

    func send(_ request: HTTPRequest) async throws(CurlError) -> HTTPResponse {
        requests.withLock { $0.append(request) }
        try? await Task.sleep(for: .milliseconds(20))
        guard let response = script(request) else { throw CurlError(.connectFailed, "scripted failure") }
        return response
    }

    var count: Int { requests.withLock { $0.count } }
}

func json(_ status: Int = 200, _ text: String) -> HTTPResponse {
    HTTPResponse(status: status, headers: [("Content-Type", "application/json")], body: Array(text.utf8))
}

@Suite struct ProviderTests {
    static let jwks = "{\"keys\":[\(TestSigner.jwk(rsa: TestSigner.rsa, kid: "rsa-1"))]}"
    static let discovery = """
        {"issuer":"https://idp.example","authorization_endpoint":"https://idp.example/auth",
        "token_endpoint":"https://idp.example/token","jwks_uri":"https://idp.example/jwks",
        "userinfo_endpoint":"https://idp.example/userinfo","end_session_endpoint":"https://idp.example/logout",
        "authorization_response_iss_parameter_supported":true}
        """

    @Test func pkceMatchesRFC7636AppendixB() {
        #expect(
            AuthorizationRequest.challenge(for: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
                == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
    }

    @Test func discoveryMustNameTheConfiguredIssuer() throws {
        #expect(throws: OIDCError(.discoveryIssuerMismatch, "")) {
            try ProviderMetadata(json: Array(Self.discovery.utf8), expectedIssuer: "https://idp.example/")
        }
        #expect(
            try ProviderMetadata(json: Array(Self.discovery.utf8), expectedIssuer: "https://idp.example").jwksURI
                == "https://idp.example/jwks")
    }

    @Test func keyFetchesAreCoalescedAndRefetchesRateLimited() async throws {
        let transport = ScriptedTransport { _ in json(200, Self.jwks) }
        let cache = KeyCache(
            transport: transport, jwksURI: "https://idp.example/jwks", minimumRefetchInterval: .seconds(60))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<10 { group.addTask { _ = try await cache.keys(containing: "rsa-1") } }
            try await group.waitForAll()
        }
        #expect(transport.count == 1, "ten concurrent requests, one fetch")
        for _ in 0..<5 { _ = try await cache.keys(containing: "forged-\(UUID())") }
        #expect(transport.count == 1, "unknown kids do not refetch within the interval")
    }

    @Test func anUnknownKeyIDRefetchesOnceTheIntervalHasPassed() async throws {
        let transport = ScriptedTransport { _ in json(200, Self.jwks) }
        let cache = KeyCache(transport: transport, jwksURI: "https://idp.example/jwks", minimumRefetchInterval: .zero)
        _ = try await cache.keys(containing: "rsa-1")
        _ = try await cache.keys(containing: "rotated")
        #expect(transport.count == 2)
        _ = try await cache.keys(containing: "rsa-1")
        #expect(transport.count == 2, "a known kid needs no fetch")
    }

    /// Issue 14.12: a provider that rotates its keys just before signing (OpenID RP certification) made sign-in fail
    /// for 30 s, since the refetch for the new `kid` was rate-limited like a stranger's bearer token.
    @Test func anIDTokenFromTheTokenEndpointRefetchesAtOnceAndOnlyOnce() async throws {
        let rotated = Atomic<Bool>(false)
        let transport = ScriptedTransport { _ in
            let kid = rotated.load(ordering: .relaxed) ? "rotated" : "rsa-1"
            return json(200, "{\"keys\":[\(TestSigner.jwk(rsa: TestSigner.rsa, kid: kid))]}")
        }
        let cache = KeyCache(
            transport: transport, jwksURI: "https://idp.example/jwks", minimumRefetchInterval: .seconds(60))
        _ = try await cache.keys(containing: "rsa-1")
        rotated.store(true, ordering: .relaxed)
        #expect(try await cache.keys(containing: "rotated").keys["rotated"] == nil)
        #expect(transport.count == 1, "a stranger's unknown kid waits for the interval")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<10 {
                group.addTask {
                    let keys = try await cache.keys(containing: "rotated", fromProvider: true)
                    #expect(keys.keys["rotated"] != nil)
                }
            }
            try await group.waitForAll()
        }
        #expect(transport.count == 2, "the provider's own token refetches at once, ten of them once")
    }

    static func provider(
        authentication: ClientRegistration.Authentication = .clientSecretBasic, userinfoSubject: String = "u-1",
        tokenStatus: Int = 200
    ) -> (OpenIDProvider, ScriptedTransport) {
        let idToken = TestSigner.token(
            header: ["alg": "RS256", "kid": "rsa-1"],
            claims: TestSigner.claims([
                "aud": "detour", "exp": Date().timeIntervalSince1970 + 300, "iat": Date().timeIntervalSince1970,
            ]))
        let transport = ScriptedTransport { request in
            switch request.url {
            case "https://idp.example/.well-known/openid-configuration": json(200, Self.discovery)
            case "https://idp.example/jwks": json(200, Self.jwks)
            case "https://idp.example/token":
                tokenStatus == 200
                    ? json(
                        200,
                        "{\"id_token\":\"\(idToken)\",\"access_token\":\"at\",\"expires_in\":300,\"token_type\":\"Bearer\"}"
                    )
                    : json(tokenStatus, "{\"error\":\"invalid_grant\"}")
            case "https://idp.example/userinfo": json(200, "{\"sub\":\"\(userinfoSubject)\",\"groups\":[\"g\"]}")
            default: nil
            }
        }
        let registration = ClientRegistration(
            issuer: "https://idp.example", clientID: "detour", clientSecret: "s3cr:t&", authentication: authentication,
            redirectURI: "https://auth.example.com/oauth2/callback", scopes: ["openid"], responseMode: .query)
        return (OpenIDProvider(registration: registration, transport: transport), transport)
    }

    static let state = LoginState(
        state: "s", nonce: "n-1", codeVerifier: "verifier", returnTo: "https://a.example/", startedAt: Date())

    @Test func redeemsWithBasicAuthenticationAndTheVerifier() async throws {
        let (provider, transport) = Self.provider()
        try await provider.load()
        let signedIn = try await provider.redeem(
            code: "c", issuer: "https://idp.example", loginState: Self.state, now: Date())
        #expect(signedIn.claims.subject == "u-1")
        #expect(signedIn.userinfo["groups"]?.strings == ["g"])
        let token = try #require(transport.requests.withLock { $0.first { $0.url.hasSuffix("/token") } })
        let body = String(decoding: token.body ?? [], as: UTF8.self)
        #expect(body.contains("code_verifier=verifier") && body.contains("grant_type=authorization_code"))
        #expect(!body.contains("client_secret"))
        // RFC 6749 2.3.1: the id and secret are form-encoded before Basic encoding.
        #expect(
            token.headers.contains {
                $0 == ("Authorization", "Basic " + Data("detour:s3cr%3At%26".utf8).base64EncodedString())
            })
    }

    @Test func redeemsWithClientSecretPost() async throws {
        let (provider, transport) = Self.provider(authentication: .clientSecretPost)
        try await provider.load()
        _ = try await provider.redeem(code: "c", issuer: "https://idp.example", loginState: Self.state, now: Date())
        let token = try #require(transport.requests.withLock { $0.first { $0.url.hasSuffix("/token") } })
        #expect(
            String(decoding: token.body ?? [], as: UTF8.self).contains("client_id=detour&client_secret=s3cr%3At%26"))
        #expect(!token.headers.contains { $0.name == "Authorization" })
    }

    /// RFC 9207: the provider advertises `iss` in authorization responses, so it must be there and right.
    @Test(arguments: [nil, "https://evil.example"])
    func aMissingOrWrongAuthorizationResponseIssuerIsRefused(issuer: String?) async throws {
        let (provider, transport) = Self.provider()
        try await provider.load()
        await #expect(throws: OIDCError(.authorizationResponseIssuerMismatch, "")) {
            try await provider.redeem(code: "c", issuer: issuer, loginState: Self.state, now: Date())
        }
        #expect(
            !transport.requests.withLock { $0.contains { $0.url.hasSuffix("/token") } }, "the code was not redeemed")
    }

    @Test func userinfoForAnotherSubjectIsRefused() async throws {
        let (provider, _) = Self.provider(userinfoSubject: "someone-else")
        try await provider.load()
        await #expect(throws: OIDCError(.subjectMismatch, "")) {
            try await provider.redeem(code: "c", issuer: "https://idp.example", loginState: Self.state, now: Date())
        }
    }

    @Test func aRefusedCodeIsAnError() async throws {
        let (provider, _) = Self.provider(tokenStatus: 400)
        try await provider.load()
        await #expect(throws: OIDCError(.tokenRequestRefused, "")) {
            try await provider.redeem(code: "c", issuer: "https://idp.example", loginState: Self.state, now: Date())
        }
    }

    @Test func beforeDiscoveryEverythingIsUnavailableNotACrash() async throws {
        let (provider, _) = Self.provider()
        #expect(provider.readiness != nil)
        #expect(throws: OIDCError(.providerUnavailable, "")) {
            try provider.authorizationRequest(returnTo: "https://a/", now: Date())
        }
    }

    @Test func theAuthorizationURLCarriesTheChallengeNotTheVerifier() async throws {
        let (provider, _) = Self.provider()
        try await provider.load()
        let request = try provider.authorizationRequest(returnTo: "https://a.example/secret-path", now: Date())
        #expect(request.url.hasPrefix("https://idp.example/auth?response_type=code&client_id=detour&"))
        #expect(
            request.url.contains(
                "code_challenge=\(AuthorizationRequest.challenge(for: request.loginState.codeVerifier))"))
        #expect(!request.url.contains(request.loginState.codeVerifier))
        #expect(!request.url.contains("secret-path"))
        // Three secrets from one draw of random bytes: 256 bits each, none a copy of another.
        let secrets = [request.loginState.state, request.loginState.nonce, request.loginState.codeVerifier]
        #expect(Set(secrets).count == 3)
        let drawn = secrets.compactMap { Base64URL.decode($0) }
        #expect(drawn.count == 3 && drawn.allSatisfy { $0.count == 32 && $0.contains { $0 != 0 } })
        // Slices of the draw that overlapped would share a run of bytes.
        let runs = drawn.map { secret in Set((0...24).map { Array(secret[$0..<$0 + 8]) }) }
        #expect(runs.count == 3 && runs[0].isDisjoint(with: runs[1]) && runs[1].isDisjoint(with: runs[2]))
        #expect(runs.count == 3 && runs[0].isDisjoint(with: runs[2]))
    }

    @Test func formEncodingRoundTrips() {
        let pairs = [("a b", "c&d=e"), ("ü", "+%"), ("empty", "")]
        #expect(FormEncoding.decode(FormEncoding.encode(pairs)).map { [$0.0, $0.1] } == pairs.map { [$0.0, $0.1] })
        #expect(FormEncoding.decode("x=%zz&y=%4").map(\.1) == ["%zz", "%4"])
        #expect(FormEncoding.encode(pairs) == "a+b=c%26d%3De&%C3%BC=%2B%25&empty=")
        #expect(FormEncoding.encode([]).isEmpty)
    }
}

/// The refresh-token grant (RFC 6749 6).
@Suite struct RefreshTests {
    @Test func refreshSendsTheGrantAndReturnsTheRotatedTokens() async throws {
        let transport = ScriptedTransport { request in
            switch request.url {
            case "https://idp.example/.well-known/openid-configuration": json(200, ProviderTests.discovery)
            case "https://idp.example/jwks": json(200, ProviderTests.jwks)
            case "https://idp.example/token":
                json(200, "{\"access_token\":\"at-2\",\"refresh_token\":\"rt-2\",\"expires_in\":60}")
            default: nil
            }
        }
        let registration = ClientRegistration(
            issuer: "https://idp.example", clientID: "detour", clientSecret: "s", authentication: .clientSecretPost,
            redirectURI: "https://a.example/cb", scopes: ["openid"], responseMode: .query)
        let provider = OpenIDProvider(registration: registration, transport: transport)
        try await provider.load()
        let now = Date()
        let refreshed = try await provider.refresh("rt-1", subject: "u-1", now: now)
        #expect(refreshed.accessToken == "at-2" && refreshed.refreshToken == "rt-2")
        #expect(refreshed.accessTokenExpiry == now.addingTimeInterval(60))
        let body = String(decoding: transport.requests.withLock { $0.last?.body ?? [] }, as: UTF8.self)
        #expect(body.contains("grant_type=refresh_token") && body.contains("refresh_token=rt-1"))
        #expect(body.contains("client_secret=s"))
    }

    @Test func aRefusedRefreshIsATypedError() async throws {
        let (provider, _) = ProviderTests.provider(tokenStatus: 400)
        try await provider.load()
        await #expect(throws: OIDCError(.tokenRequestRefused, "")) {
            try await provider.refresh("rt-1", subject: "u-1", now: Date())
        }
    }

    @Test func aRefreshedIDTokenForAnotherSubjectIsRefused() async throws {
        let (provider, _) = ProviderTests.provider()
        try await provider.load()
        await #expect(throws: OIDCError(.subjectMismatch, "")) {
            try await provider.refresh("rt-1", subject: "someone-else", now: Date())
        }
    }
}
