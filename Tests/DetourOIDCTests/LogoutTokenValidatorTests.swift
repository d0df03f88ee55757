import Foundation
import Testing

@testable import DetourOIDC

/// Logout tokens (Back-Channel Logout 1.0, section 2.6): each rule of ``LogoutTokenValidator`` turned off once.
@Suite struct LogoutTokenValidatorTests {
    static let validator = LogoutTokenValidator(issuer: "https://idp.example", clientID: "detour")
    static var event: [String: Any] { [LogoutTokenValidator.event: [String: Any]()] }

    static func token(
        header: [String: Any] = ["alg": "RS256", "kid": "rsa-1", "typ": "logout+jwt"], _ overrides: [String: Any?] = [:]
    ) -> String {
        var claims = TestSigner.claims(["nonce": nil, "email": nil, "jti": "j-1", "sid": "s-1", "events": event])
        for (key, value) in overrides { claims[key] = value }
        return TestSigner.token(header: header, claims: claims)
    }

    func outcome(_ token: String, now: Date = TestSigner.now) -> Result<LogoutRequest, OIDCError> {
        Result { () throws(OIDCError) in try Self.validator.validate(token, keys: TestSigner.keySet, now: now) }
    }

    func rejection(_ token: String, now: Date = TestSigner.now) -> OIDCError.Code? {
        guard case .failure(let error) = outcome(token, now: now) else { return nil }
        return error.code
    }

    @Test(arguments: ["logout+jwt", "application/logout+jwt", "JWT", nil])
    func aValidTokenNamesItsSubjectAndSession(type: String?) throws {
        var header: [String: Any] = ["alg": "RS256", "kid": "rsa-1"]
        header["typ"] = type
        let request = try outcome(Self.token(header: header)).get()
        #expect(request.subject == "u-1")
        #expect(request.providerSession == "s-1")
        #expect(request.tokenID == "j-1")
        // Replays are refused for as long as the token could be accepted: iat + 5 minutes + leeway.
        #expect(request.replayableUntil == Date(timeIntervalSince1970: TestSigner.now.timeIntervalSince1970 - 10 + 360))
    }

    @Test func subOrSidAloneIsEnough() throws {
        #expect(try outcome(Self.token(["sid": nil])).get().providerSession == nil)
        #expect(try outcome(Self.token(["sub": nil])).get().subject == nil)
        #expect(rejection(Self.token(["sub": nil, "sid": nil])) == .missingSubject)
    }

    @Test func anIDTokenIsNeverALogoutToken() {
        #expect(rejection(TestSigner.token()) == .wrongType, "an ID token: no events, a nonce")
        #expect(rejection(Self.token(["nonce": "n-1"])) == .wrongType)
        #expect(rejection(Self.token(header: ["alg": "RS256", "kid": "rsa-1", "typ": "at+jwt"])) == .wrongType)
    }

    @Test func theLogoutEventMustBeThere() {
        let wrong: [Any?] = [
            nil, ["http://schemas.openid.net/event/other": [String: Any]()], [LogoutTokenValidator.event],
            [LogoutTokenValidator.event: "yes"],
        ]
        for events in wrong { #expect(rejection(Self.token(["events": events])) == .wrongType) }
    }

    @Test func claimsAreCheckedLikeAnIDTokens() {
        #expect(rejection(Self.token(["iss": "https://other.example"])) == .wrongIssuer)
        #expect(rejection(Self.token(["aud": "someone-else"])) == .wrongAudience)
        #expect(rejection(Self.token(["aud": ["detour", "other"]])) == .wrongAuthorizedParty)
        #expect(rejection(Self.token(["azp": "other"])) == .wrongAuthorizedParty)
        #expect(rejection(Self.token(["aud": ["detour", "other"], "azp": "detour"])) == nil)
        #expect(rejection(Self.token(["nbf": TestSigner.now.timeIntervalSince1970 + 120])) == .notYetValid)
        #expect(rejection(Self.token(["jti": nil])) == .malformedToken)
        #expect(rejection(Self.token(["jti": ""])) == .malformedToken)
        #expect(rejection(Self.token(["sub": 42])) == .malformedToken, "a sub that is not a string is not absent")
        #expect(rejection(Self.token(["sid": ""])) == .malformedToken)
        #expect(rejection(Self.token(header: ["alg": "none", "kid": "rsa-1"])) == .unsupportedAlgorithm)
        #expect(rejection(Self.token(header: ["alg": "RS256", "kid": "nobody"])) == .unknownKey)
        let forged = TestSigner.token(
            header: ["alg": "RS256", "kid": "rsa-1"], claims: TestSigner.claims(["nonce": nil, "events": Self.event]),
            sign: { TestSigner.signRS256($0, key: TestSigner.otherRSA) })
        #expect(rejection(forged) == .badSignature)
    }

    @Test func oldOrFutureTokensAreRefused() {
        let now = TestSigner.now.timeIntervalSince1970
        #expect(rejection(Self.token(["iat": nil])) == .malformedToken)
        #expect(rejection(Self.token(["iat": now + 120])) == .issuedInTheFuture)
        #expect(rejection(Self.token(["iat": now - 361])) == .expired, "older than 5 minutes and the leeway")
        #expect(rejection(Self.token(["iat": now - 350])) == nil)
        #expect(rejection(Self.token(["exp": now - 61])) == .expired)
        #expect(rejection(Self.token(["exp": nil])) == nil, "exp is optional in tokens from older providers")
    }
}
