import Crypto
import CryptoExtras
import DetourSessions
public import Foundation

/// Detour's private key for RFC 7523 client authentication (`token_endpoint_auth: private_key_jwt`), and the
/// assertions it signs.
///
/// Guarantees: the key is an RSA key of 2048 bits or more (RS256) or a P-256 key (ES256), read from PEM (PKCS #1,
/// SEC 1 or PKCS #8); every assertion has `iss` = `sub` = the client id, `aud` = the endpoint it is sent to, `iat`
/// now, `exp` one minute later, and a `jti` of 128 random bits, so that no two are alike and a captured one soon
/// expires. No `kid` is sent: providers that hold one key for the client use it.
public struct ClientAssertionKey: Sendable {
    private enum Key: Sendable {
        case rsa(_RSA.Signing.PrivateKey)
        case ec(P256.Signing.PrivateKey)
    }

    private let key: Key
    /// How long an assertion is valid.
    public static let lifetime: TimeInterval = 60

    /// - Throws: ``ClientAssertionKeyError`` when `pem` holds no usable private key.
    public init(pem: String) throws(ClientAssertionKeyError) {
        if let ec = try? P256.Signing.PrivateKey(pemRepresentation: pem) {
            key = .ec(ec)
        } else if let rsa = try? _RSA.Signing.PrivateKey(pemRepresentation: pem) {
            guard rsa.keySizeInBits >= 2048 else {
                throw ClientAssertionKeyError("the RSA key is shorter than 2048 bits")
            }
            key = .rsa(rsa)
        } else {
            throw ClientAssertionKeyError("not a PEM RSA or P-256 private key")
        }
    }

    /// `RS256` or `ES256`.
    public var algorithm: String {
        switch key {
        case .rsa: "RS256"
        case .ec: "ES256"
        }
    }

    /// A signed assertion for `audience`, the URL of the endpoint it goes to.
    public func assertion(clientID: String, audience: String, now: Date) -> String {
        let jti = Base64URL.encode(SecureRandom.bytes(16))
        let issuedAt = Int(now.timeIntervalSince1970)
        let header = "{\"alg\":\"\(algorithm)\",\"typ\":\"JWT\"}"
        let claims =
            "{\"iss\":\(Self.json(clientID)),\"sub\":\(Self.json(clientID)),\"aud\":\(Self.json(audience)),"
            + "\"iat\":\(issuedAt),\"exp\":\(issuedAt + Int(Self.lifetime)),\"jti\":\"\(jti)\"}"
        let input = Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(claims.utf8))
        return input + "." + Base64URL.encode(sign(Array(input.utf8)))
    }

    private func sign(_ input: [UInt8]) -> [UInt8] {
        do {
            switch key {
            case .rsa(let rsa):
                return Array(
                    try rsa.signature(for: SHA256.hash(data: input), padding: .insecurePKCS1v1_5).rawRepresentation)
            case .ec(let ec):
                return Array(try ec.signature(for: SHA256.hash(data: input)).rawRepresentation)
            }
        } catch {
            preconditionFailure("signing with a loaded private key cannot fail: \(error)")
        }
    }

    /// A JSON string literal.
    private static func json(_ text: String) -> String {
        String(decoding: (try? JSONEncoder().encode(text)) ?? Data("\"\"".utf8), as: UTF8.self)
    }
}

/// Why a `private_key_file` cannot be used.
public struct ClientAssertionKeyError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
