import DetourCurl
import Foundation
import Synchronization
import Testing

@testable import DetourOIDC

/// Bearer JWT access tokens: each rule of ``AccessTokenValidator`` turned off once.
@Suite struct AccessTokenValidatorTests {
    static let validator = AccessTokenValidator(
        issuer: "https://idp.example", audiences: ["orders-api", "other"], clientID: "detour")

    static func token(
        header: [String: Any] = ["alg": "RS256", "kid": "rsa-1", "typ": "at+jwt"], _ overrides: [String: Any?] = [:]
    ) -> String {
        var claims = TestSigner.claims(["aud": "orders-api", "nonce": nil])
        for (key, value) in overrides { claims[key] = value }
        return TestSigner.token(header: header, claims: claims.compactMapValues { $0 })
    }

    func rejection(_ token: String) -> OIDCError.Code? {
        do {
            _ = try Self.validator.validate(token, keys: TestSigner.keySet, now: TestSigner.now)
            return nil
        } catch {
            return error.code
        }
    }

    @Test(arguments: ["at+jwt", "application/at+jwt", "JWT"])
    func acceptsAccessTokenTypes(type: String) throws {
        let claims = try Self.validator.validate(
            Self.token(header: ["alg": "RS256", "kid": "rsa-1", "typ": type]), keys: TestSigner.keySet,
            now: TestSigner.now)
        #expect(claims.subject == "u-1")
        #expect(try claims.identity().email == "ann@example.com")
    }

    @Test func acceptsAnyConfiguredAudienceInAList() {
        #expect(rejection(Self.token(["aud": ["billing", "other"]])) == nil)
    }

    @Test func refusesEachBrokenRule() {
        #expect(rejection(Self.token(["iss": "https://idp.example/"])) == .wrongIssuer)
        #expect(rejection(Self.token(["aud": "billing"])) == .wrongAudience)
        #expect(rejection(Self.token(["aud": nil])) == .wrongAudience)
        #expect(rejection(Self.token(["exp": TestSigner.now.timeIntervalSince1970 - 61])) == .expired)
        #expect(rejection(Self.token(["nbf": TestSigner.now.timeIntervalSince1970 + 120])) == .notYetValid)
        #expect(rejection(Self.token(["iat": TestSigner.now.timeIntervalSince1970 + 120])) == .issuedInTheFuture)
        #expect(rejection(Self.token(["sub": nil])) == .missingSubject)
        #expect(rejection(Self.token(header: ["alg": "RS256", "kid": "rsa-1", "typ": "logout+jwt"])) == .wrongType)
        #expect(rejection(Self.token(header: ["alg": "none", "kid": "rsa-1"])) == .unsupportedAlgorithm)
        #expect(rejection(Self.token(header: ["alg": "RS256", "kid": "forged"])) == .unknownKey)
        var parts = Self.token().split(separator: ".").map(String.init)
        parts[1] = Self.token(["sub": "admin"]).split(separator: ".").map(String.init)[1]
        #expect(rejection(parts.joined(separator: ".")) == .badSignature)
        #expect(rejection("opaque-token") == .malformedToken)
    }

    @Test func anIDTokenForTheClientIsNotAnAccessTokenForTheAPI() {
        // Its audience is the client id, which is not among the API's audiences.
        #expect(rejection(TestSigner.token()) == .wrongType)
        #expect(rejection(TestSigner.token(claims: TestSigner.claims(["nonce": nil]))) == .wrongAudience)
    }

    /// Issue 14.6: with `oidc.bearer_audiences` left out the accepted audience is the client id, and the ID token
    /// Detour's own sign-in is issued (audience: the client) passed as a bearer access token.
    @Test func anIDTokenNeverPassesEvenWhenTheClientIsAnAcceptedAudience() {
        let byDefault = AccessTokenValidator(issuer: "https://idp.example", audiences: ["detour"], clientID: "detour")
        func rejection(_ token: String) -> OIDCError.Code? {
            do {
                _ = try byDefault.validate(token, keys: TestSigner.keySet, now: TestSigner.now)
                return nil
            } catch {
                return error.code
            }
        }
        let idToken = TestSigner.token()
        #expect(rejection(idToken) == .wrongType, "nonce: an ID token")
        let withoutNonce = TestSigner.claims(["nonce": nil])
        #expect(rejection(TestSigner.token(claims: withoutNonce)) == .wrongAudience, "typ JWT and aud the client")
        for claim in ["at_hash", "c_hash"] {
            #expect(rejection(TestSigner.token(claims: TestSigner.claims(["nonce": nil, claim: "x"]))) == .wrongType)
        }
        let keycloakID = TestSigner.claims(["nonce": nil, "typ": "ID"])
        #expect(
            rejection(TestSigner.token(header: ["alg": "RS256", "kid": "rsa-1", "typ": "at+jwt"], claims: keycloakID))
                == .wrongType)
        // An RFC 9068 access token for the client itself is what the header says it is.
        #expect(
            rejection(
                TestSigner.token(header: ["alg": "RS256", "kid": "rsa-1", "typ": "at+jwt"], claims: withoutNonce))
                == nil)
    }
}

/// RFC 7662 introspection and its cache.
@Suite struct IntrospectionTests {
    static func provider(answer: @escaping @Sendable () -> HTTPResponse?) -> (OpenIDProvider, ScriptedTransport) {
        let transport = ScriptedTransport { request in
            switch request.url {
            case "https://idp.example/.well-known/openid-configuration": json(200, ProviderTests.discovery)
            case "https://idp.example/jwks": json(200, ProviderTests.jwks)
            case "https://idp.example/introspect": answer()
            default: nil
            }
        }
        let registration = ClientRegistration(
            issuer: "https://idp.example", clientID: "detour", clientSecret: "s", authentication: .clientSecretBasic,
            redirectURI: "https://auth.example.com/oauth2/callback", scopes: ["openid"], responseMode: .query,
            bearerAudiences: ["orders-api"], introspectionURL: "https://idp.example/introspect")
        return (OpenIDProvider(registration: registration, transport: transport), transport)
    }

    static let now = Date()
    static let later = now.timeIntervalSince1970 + 300

    func outcome(_ answer: HTTPResponse?) async throws -> Result<TokenClaims?, OIDCError> {
        let (provider, _) = Self.provider { answer }
        try await provider.load()
        do throws(OIDCError) {
            return .success(try await provider.introspect("t", now: Self.now))
        } catch {
            return .failure(error)
        }
    }

    @Test func anActiveAnswerGivesTheSubjectAndSendsClientAuthentication() async throws {
        let (provider, transport) = Self.provider {
            json(200, "{\"active\":true,\"username\":\"alice\",\"exp\":\(Self.later),\"aud\":[\"orders-api\"]}")
        }
        try await provider.load()
        let claims = try await provider.introspect("opaque", now: Self.now)
        #expect(claims?.subject == "alice")
        let call = try #require(transport.requests.withLock { $0.last })
        #expect(call.headers.contains { $0.0 == "Authorization" && $0.1.hasPrefix("Basic ") })
        #expect(String(decoding: call.body ?? [], as: UTF8.self).contains("token=opaque"))
    }

    @Test func inactiveOrExpiredAnswersAreNotSignedIn() async throws {
        #expect(try await outcome(json(200, "{\"active\":false}")).get() == nil)
        let past = Self.now.timeIntervalSince1970 - 1
        #expect(try await outcome(json(200, "{\"active\":true,\"sub\":\"a\",\"exp\":\(past)}")).get() == nil)
    }

    @Test func eachRefusalHasItsCode() async throws {
        func code(_ answer: HTTPResponse?) async throws -> OIDCError.Code? {
            if case .failure(let error) = try await outcome(answer) { return error.code }
            return nil
        }
        #expect(
            try await code(json(200, "{\"active\":true,\"sub\":\"a\",\"iss\":\"https://evil.example\"}"))
                == .wrongIssuer)
        #expect(try await code(json(200, "{\"active\":true,\"sub\":\"a\",\"aud\":\"billing\"}")) == .wrongAudience)
        #expect(try await code(json(200, "{\"active\":true}")) == .missingSubject)
        // Issue 14.6: what is not an access token is refused before it is cached.
        for kind in ["refresh_token", "id_token", "N_A"] {
            #expect(
                try await code(json(200, "{\"active\":true,\"sub\":\"a\",\"token_type\":\"\(kind)\"}")) == .wrongType)
        }
        #expect(try await code(json(200, "{\"active\":true,\"sub\":\"a\",\"typ\":\"ID\"}")) == .wrongType)
        #expect(try await code(json(200, "{\"active\":true,\"sub\":\"a\",\"nonce\":\"n\"}")) == .wrongType)
        #expect(
            try await code(json(200, "{\"active\":true,\"sub\":\"a\",\"token_type\":\"Bearer\",\"exp\":\(Self.later)}"))
                == nil)
        #expect(
            try await outcome(json(200, "{\"active\":true,\"sub\":\"a\"}")).get() == nil,
            "an active answer without exp would be believed for as long as it is cached: not signed in")
        #expect(try await code(json(401, "{\"error\":\"invalid_client\"}")) == .tokenRequestRefused)
        #expect(
            try await code(HTTPResponse(status: 200, headers: [], body: Array("<html>".utf8))) == .badProviderResponse)
        #expect(try await code(nil) == .providerUnavailable)
    }

    @Test func theCacheCoalescesAndKeepsAnswersForTheirTime() async throws {
        let calls = Atomic<Int>(0)
        let readings = Atomic<Int>(0)
        let cache = BearerTokenCache(
            ttl: .seconds(60), inactiveTTL: .seconds(5),
            verdict: {
                readings.add(1, ordering: .relaxed)
                return $0
            },
            lookUp: { token, _ throws(OIDCError) in
                calls.add(1, ordering: .relaxed)
                try? await Task.sleep(for: .milliseconds(50))
                return token == "good"
                    ? TokenClaims(subject: "alice", expiry: Self.now.addingTimeInterval(30), all: [:]) : nil
            })
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<10 { group.addTask { _ = try? await cache.check("good", now: Self.now).get() } }
        }
        #expect(calls.load(ordering: .relaxed) == 1, "ten concurrent lookups, one call")
        #expect(try await cache.check("good", now: Self.now.addingTimeInterval(29)).get()?.subject == "alice")
        #expect(calls.load(ordering: .relaxed) == 1)
        _ = try await cache.check("good", now: Self.now.addingTimeInterval(31)).get()
        #expect(calls.load(ordering: .relaxed) == 2, "kept no longer than the token's exp")
        #expect(try await cache.check("bad", now: Self.now).get() == nil)
        #expect(try await cache.check("bad", now: Self.now.addingTimeInterval(4)).get() == nil)
        #expect(calls.load(ordering: .relaxed) == 3)
        _ = try await cache.check("bad", now: Self.now.addingTimeInterval(6)).get()
        #expect(calls.load(ordering: .relaxed) == 4, "inactive answers are kept briefly")
        #expect(readings.load(ordering: .relaxed) == 4, "an answer is read once, not on each use")
    }

    @Test func errorsAreNeverKept() async {
        let calls = Atomic<Int>(0)
        let cache = BearerTokenCache(
            ttl: .seconds(60), verdict: { $0 },
            lookUp: { _, _ throws(OIDCError) in
                calls.add(1, ordering: .relaxed)
                throw OIDCError(.providerTimedOut, "slow")
            })
        for _ in 0..<3 {
            await #expect(throws: OIDCError(.providerTimedOut, "")) { try await cache.check("t", now: Self.now).get() }
        }
        #expect(calls.load(ordering: .relaxed) == 3)
    }

    @Test func aTimeoutIsNotAnOutage() async throws {
        let transport = TimingOutTransport()
        let registration = ClientRegistration(
            issuer: "https://idp.example", clientID: "detour", clientSecret: "s", authentication: .clientSecretPost,
            redirectURI: "https://a.example/cb", scopes: ["openid"], responseMode: .query)
        let provider = OpenIDProvider(registration: registration, transport: transport)
        await #expect(throws: OIDCError(.providerTimedOut, "")) { try await provider.load() }
    }
}

/// A transport whose every call times out.
final class TimingOutTransport: ProviderTransport {
    func send(_ request: HTTPRequest) async throws(CurlError) -> HTTPResponse {
        throw CurlError(.timedOut, "scripted timeout")
    }
}
