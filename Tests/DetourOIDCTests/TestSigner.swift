import Crypto
import CryptoExtras
import DetourSessions
import Foundation

@testable import DetourOIDC

/// Keys made in the test, and ID tokens signed with them, to exercise every validation rule.
enum TestSigner {
    static let rsa = try! _RSA.Signing.PrivateKey(keySize: .bits2048)
    static let otherRSA = try! _RSA.Signing.PrivateKey(keySize: .bits2048)
    static let ec = P256.Signing.PrivateKey()

    static func jwk(rsa key: _RSA.Signing.PrivateKey, kid: String, alg: String? = "RS256") -> String {
        let primitives = try! key.publicKey.getKeyPrimitives()
        var fields = [
            "\"kty\":\"RSA\"", "\"kid\":\"\(kid)\"", "\"use\":\"sig\"",
            "\"n\":\"\(Base64URL.encode(primitives.modulus))\"",
            "\"e\":\"\(Base64URL.encode(primitives.publicExponent))\"",
        ]
        if let alg { fields.append("\"alg\":\"\(alg)\"") }
        return "{" + fields.joined(separator: ",") + "}"
    }

    static func jwk(ec key: P256.Signing.PrivateKey, kid: String) -> String {
        let raw = key.publicKey.rawRepresentation
        return """
            {"kty":"EC","crv":"P-256","kid":"\(kid)","x":"\(Base64URL.encode(raw.prefix(32)))","y":"\(Base64URL.encode(raw.suffix(32)))"}
            """
    }

    static let keySet = try! KeySet(
        json: Array("{\"keys\":[\(jwk(rsa: rsa, kid: "rsa-1")),\(jwk(ec: ec, kid: "ec-1"))]}".utf8))

    static let now = Date(timeIntervalSince1970: 1_800_000_000)

    static func claims(_ overrides: [String: Any?] = [:]) -> [String: Any] {
        var claims: [String: Any] = [
            "iss": "https://idp.example", "sub": "u-1", "aud": "detour", "exp": now.timeIntervalSince1970 + 300,
            "iat": now.timeIntervalSince1970 - 10, "nonce": "n-1", "email": "ann@example.com",
        ]
        for (key, value) in overrides { claims[key] = value }
        return claims
    }

    static func token(
        header: [String: Any] = ["alg": "RS256", "kid": "rsa-1", "typ": "JWT"], claims: [String: Any] = claims(),
        sign: ((Data) -> Data)? = nil
    ) -> String {
        let head = Base64URL.encode(try! JSONSerialization.data(withJSONObject: header))
        let body = Base64URL.encode(try! JSONSerialization.data(withJSONObject: claims))
        let input = Data("\(head).\(body)".utf8)
        let signature = sign?(input) ?? signRS256(input)
        return "\(head).\(body).\(Base64URL.encode(signature))"
    }

    static func signRS256(_ input: Data, key: _RSA.Signing.PrivateKey = rsa) -> Data {
        try! key.signature(for: SHA256.hash(data: input), padding: .insecurePKCS1v1_5).rawRepresentation
    }

    static func signES256(_ input: Data) -> Data {
        try! ec.signature(for: SHA256.hash(data: input)).rawRepresentation
    }

    static func signHS256(_ input: Data, secret: Data) -> Data {
        Data(HMAC<SHA256>.authenticationCode(for: input, using: SymmetricKey(data: secret)))
    }
}
