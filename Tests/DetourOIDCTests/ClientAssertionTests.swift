import Crypto
import CryptoExtras
import Foundation
import Testing

@testable import DetourOIDC

/// `token_endpoint_auth: private_key_jwt` (RFC 7523 2.2): assertions that verify with the public key, carry the
/// claims the provider checks, and are never alike.
@Suite struct ClientAssertionTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)

    func verified(_ assertion: String, keys: KeySet) throws -> [String: JSONValue] {
        try SignedJWT.verifiedClaims(of: assertion, keys: keys, algorithms: Set(SignatureAlgorithm.allCases)) {
            $0 == "JWT"
        }
    }

    @Test func rsaAndECKeysSignAssertionsTheProviderCanVerify() throws {
        let cases: [(String, String, KeySet)] = [
            (
                TestSigner.rsa.pemRepresentation, "RS256",
                try KeySet(json: Array("{\"keys\":[\(TestSigner.jwk(rsa: TestSigner.rsa, kid: "k"))]}".utf8))
            ),
            (
                TestSigner.ec.pemRepresentation, "ES256",
                try KeySet(json: Array("{\"keys\":[\(TestSigner.jwk(ec: TestSigner.ec, kid: "k"))]}".utf8))
            ),
        ]
        for (pem, algorithm, keys) in cases {
            let key = try ClientAssertionKey(pem: pem)
            #expect(key.algorithm == algorithm)
            let endpoint = "https://idp.example/oauth2/token"
            let first = try verified(key.assertion(clientID: "detour", audience: endpoint, now: Self.now), keys: keys)
            #expect(first["iss"]?.string == "detour" && first["sub"]?.string == "detour")
            #expect(first["aud"]?.string == endpoint)
            #expect(first["iat"]?.number == 1_800_000_000 && first["exp"]?.number == 1_800_000_060)
            let second = try verified(key.assertion(clientID: "detour", audience: endpoint, now: Self.now), keys: keys)
            #expect(first["jti"] != nil && first["jti"] != second["jti"], "every assertion is new")
        }
    }

    @Test func whatIsNotAPrivateKeyIsRefused() {
        let certificateLike =
            "-----BEGIN PUBLIC KEY-----\n\(TestSigner.ec.publicKey.derRepresentation.base64EncodedString())\n-----END PUBLIC KEY-----\n"
        for pem in ["", "not a key", certificateLike] {
            #expect(throws: ClientAssertionKeyError.self) { try ClientAssertionKey(pem: pem) }
        }
    }
}
