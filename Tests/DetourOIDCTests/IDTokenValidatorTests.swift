import Crypto
import CryptoExtras
import Foundation
import Testing

@testable import DetourOIDC

@Suite struct IDTokenValidatorTests {
    static let validator = IDTokenValidator(issuer: "https://idp.example", clientID: "detour")

    func validate(_ token: String, nonce: String = "n-1", keys: KeySet = TestSigner.keySet, now: Date = TestSigner.now)
        throws(OIDCError) -> TokenClaims
    {
        try Self.validator.validate(token, keys: keys, nonce: nonce, now: now)
    }

    func rejection(_ token: String, nonce: String = "n-1", now: Date = TestSigner.now) -> OIDCError.Code? {
        do {
            _ = try validate(token, nonce: nonce, now: now)
            return nil
        } catch {
            return error.code
        }
    }

    @Test func acceptsAValidRS256Token() throws {
        let claims = try validate(TestSigner.token())
        #expect(claims.subject == "u-1")
        #expect(try claims.identity().email == "ann@example.com")
    }

    @Test func acceptsAValidES256Token() throws {
        let token = TestSigner.token(header: ["alg": "ES256", "kid": "ec-1"], sign: TestSigner.signES256)
        #expect(try validate(token).subject == "u-1")
    }

    @Test func refusesNone() {
        let token = TestSigner.token(header: ["alg": "none", "kid": "rsa-1"], sign: { _ in Data() })
        #expect(rejection(token) == .unsupportedAlgorithm)
    }

    /// The classic key-confusion attack: HS256 "signed" with the provider's public key as the secret.
    @Test func refusesHMACSignedWithThePublicKey() throws {
        let publicKey = try TestSigner.rsa.publicKey.getKeyPrimitives().modulus
        let token = TestSigner.token(
            header: ["alg": "HS256", "kid": "rsa-1"], sign: { TestSigner.signHS256($0, secret: publicKey) })
        #expect(rejection(token) == .unsupportedAlgorithm)
    }

    @Test func refusesAMissingOrUnknownKeyIDWithoutFallingBack() {
        // The test key set holds two keys: a token must say which.
        #expect(rejection(TestSigner.token(header: ["alg": "RS256"])) == .unknownKey)
        #expect(rejection(TestSigner.token(header: ["alg": "RS256", "kid": "nope"])) == .unknownKey)
    }

    @Test func aMissingKeyIDIsAcceptedOnlyWithASingleKey() throws {
        let single = try KeySet(json: Array("{\"keys\":[\(TestSigner.jwk(rsa: TestSigner.rsa, kid: "only"))]}".utf8))
        #expect(try validate(TestSigner.token(header: ["alg": "RS256"]), keys: single).subject == "u-1")
        #expect(throws: OIDCError(.unknownKey, "")) {
            try validate(TestSigner.token(header: ["alg": "RS256", "kid": "other"]), keys: single)
        }
        let forged = TestSigner.token(
            header: ["alg": "RS256"], sign: { TestSigner.signRS256($0, key: TestSigner.otherRSA) })
        #expect(throws: OIDCError(.badSignature, "")) { try validate(forged, keys: single) }
    }

    @Test func refusesAnAlgorithmTheKeyIsNotFor() {
        // The RSA key's JWK says RS256; a PS256 token under it is refused even though PS256 is allowed.
        let ps256 = TestSigner.token(
            header: ["alg": "PS256", "kid": "rsa-1"],
            sign: { try! TestSigner.rsa.signature(for: SHA256.hash(data: $0), padding: .PSS).rawRepresentation })
        #expect(rejection(ps256) == .keyAlgorithmMismatch)
        // An RS256 token naming the EC key.
        #expect(rejection(TestSigner.token(header: ["alg": "RS256", "kid": "ec-1"])) == .keyAlgorithmMismatch)
    }

    @Test func refusesASignatureByAnotherKey() {
        let forged = TestSigner.token(sign: { TestSigner.signRS256($0, key: TestSigner.otherRSA) })
        #expect(rejection(forged) == .badSignature)
    }

    @Test func refusesChangedClaims() {
        let token = TestSigner.token()
        let parts = token.split(separator: ".").map(String.init)
        let forgedClaims = TestSigner.token(claims: TestSigner.claims(["sub": "admin"])).split(separator: ".")[1]
        #expect(rejection("\(parts[0]).\(forgedClaims).\(parts[2])") == .badSignature)
    }

    @Test func refusesCritAndOtherTokenTypes() {
        #expect(
            rejection(TestSigner.token(header: ["alg": "RS256", "kid": "rsa-1", "crit": ["exp"]]))
                == .unsupportedCriticalHeader)
        #expect(rejection(TestSigner.token(header: ["alg": "RS256", "kid": "rsa-1", "typ": "at+jwt"])) == .wrongType)
    }

    @Test(
        arguments: [
            (["iss": .string("https://idp.example/")], OIDCError.Code.wrongIssuer),
            (["iss": .string("https://evil.example")], .wrongIssuer),
            (["iss": .absent], .wrongIssuer),
            (["aud": .string("other")], .wrongAudience),
            (["aud": .strings(["other", "another"])], .wrongAudience),
            (["aud": .absent], .wrongAudience),
            (["aud": .strings(["detour", "other"])], .wrongAuthorizedParty),
            (["aud": .strings(["detour", "other"]), "azp": .string("other")], .wrongAuthorizedParty),
            (["azp": .string("other")], .wrongAuthorizedParty),
            (["exp": .number(1_800_000_000 - 61)], .expired),
            (["exp": .absent], .expired),
            (["iat": .number(1_800_000_000 + 61)], .issuedInTheFuture),
            (["iat": .absent], .malformedToken),
            (["nbf": .number(1_800_000_000 + 61)], .notYetValid),
            (["nonce": .string("other")], .nonceMismatch),
            (["nonce": .absent], .nonceMismatch),
            (["sub": .absent], .missingSubject),
            (["sub": .string("")], .missingSubject),
        ] as [([String: Claim], OIDCError.Code)])
    func refusesBadClaims(overrides: [String: Claim], code: OIDCError.Code) {
        #expect(rejection(TestSigner.token(claims: TestSigner.claims(overrides.mapValues(\.value)))) == code)
    }

    @Test(
        arguments: [
            ["aud": .strings(["detour", "other"]), "azp": .string("detour")], ["exp": .number(1_800_000_000 - 59)],
            ["iat": .number(1_800_000_000 + 59)],
            ["nbf": .number(1_800_000_000 + 59)], ["aud": .strings(["detour"])],
        ] as [[String: Claim]])
    func acceptsWithinTheRules(overrides: [String: Claim]) {
        #expect(rejection(TestSigner.token(claims: TestSigner.claims(overrides.mapValues(\.value)))) == nil)
    }

    @Test(arguments: ["", "a.b", "a.b.c.d", "!!.??.##", "e30.e30.", "W10.e30.AA"])
    func refusesMalformedTokens(token: String) {
        #expect(rejection(token) == .malformedToken || rejection(token) == .unsupportedAlgorithm)
    }

    @Test func skipsUnusableKeysInTheSet() throws {
        let small = try! _RSA.Signing.PrivateKey(unsafeKeySize: .init(bitCount: 1024))
        let json = """
            {"keys":[{"kty":"oct","kid":"hmac","k":"c2VjcmV0"},{"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"},
            \(TestSigner.jwk(rsa: small, kid: "small")),\(TestSigner.jwk(rsa: TestSigner.rsa, kid: "rsa-1")),
            {"kty":"RSA","kid":"rsa-hs","alg":"HS256","n":"AQAB","e":"AQAB"}]}
            """
        let keys = try KeySet(json: Array(json.utf8))
        #expect(Set(keys.keys.keys) == ["rsa-1"])
        #expect(throws: OIDCError.self) { try KeySet(json: Array("{\"nokeys\":1}".utf8)) }
    }
}

/// A claim value for test tables: `Sendable`, unlike the `Any` the token builder takes.
enum Claim: Sendable {
    case string(String)
    case strings([String])
    case number(Double)
    case absent

    var value: Any? {
        switch self {
        case .string(let value): value
        case .strings(let values): values
        case .number(let value): value
        case .absent: nil
        }
    }
}
