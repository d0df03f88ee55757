import Crypto
import CryptoExtras
import DetourSessions
import Foundation

/// A JWS in compact serialisation, split and decoded but not yet trusted.
struct CompactJWS {
    let header: JSONValue
    let payload: JSONValue
    let signingInput: [UInt8]
    let signature: [UInt8]

    init?(_ token: String) {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let headerBytes = Base64URL.decode(parts[0]),
            let payloadBytes = Base64URL.decode(parts[1]), let signature = Base64URL.decode(parts[2]),
            let header = try? JSONDecoder().decode(JSONValue.self, from: Data(headerBytes)),
            let payload = try? JSONDecoder().decode(JSONValue.self, from: Data(payloadBytes)),
            case .object = header, case .object = payload
        else { return nil }
        self.header = header
        self.payload = payload
        self.signingInput = Array(parts[0].utf8) + [UInt8(ascii: ".")] + Array(parts[1].utf8)
        self.signature = signature
    }
}

/// The signature algorithms Detour accepts: asymmetric only. `none` and every HMAC algorithm are
/// refused outright, so a provider's public key can never be used as an HMAC secret.
public enum SignatureAlgorithm: String, Sendable, Hashable, CaseIterable {
    case rs256 = "RS256"
    case rs384 = "RS384"
    case rs512 = "RS512"
    case ps256 = "PS256"
    case ps384 = "PS384"
    case ps512 = "PS512"
    case es256 = "ES256"
    case es384 = "ES384"
}

/// A provider's public key from its JWK set, usable for exactly one algorithm family.
public struct VerificationKey: Sendable {
    enum Material: Sendable {
        case rsa(_RSA.Signing.PublicKey)
        case p256(P256.Signing.PublicKey)
        case p384(P384.Signing.PublicKey)
    }

    public let id: String
    /// The JWK's `alg`, when it names one: the token's must then be the same.
    public let algorithm: SignatureAlgorithm?
    let material: Material

    /// Reads one JWK; `nil` for keys Detour cannot or will not use (symmetric, encryption-only, RSA under
    /// 2048 bits, unknown curves, no `kid`).
    init?(jwk: JSONValue) {
        guard let id = jwk["kid"]?.string, !id.isEmpty, jwk["use"]?.string ?? "sig" == "sig" else { return nil }
        let algorithm = jwk["alg"]?.string
        if let algorithm, SignatureAlgorithm(rawValue: algorithm) == nil { return nil }
        self.id = id
        self.algorithm = algorithm.flatMap(SignatureAlgorithm.init)
        switch (jwk["kty"]?.string, jwk["crv"]?.string) {
        case ("RSA", _):
            guard let n = jwk["n"]?.string.flatMap(Base64URL.decode),
                let e = jwk["e"]?.string.flatMap(Base64URL.decode),
                let key = try? _RSA.Signing.PublicKey(n: n, e: e)
            else { return nil }
            material = .rsa(key)
        case ("EC", "P-256"):
            guard let x = jwk["x"]?.string.flatMap(Base64URL.decode),
                let y = jwk["y"]?.string.flatMap(Base64URL.decode),
                let key = try? P256.Signing.PublicKey(rawRepresentation: x + y)
            else { return nil }
            material = .p256(key)
        case ("EC", "P-384"):
            guard let x = jwk["x"]?.string.flatMap(Base64URL.decode),
                let y = jwk["y"]?.string.flatMap(Base64URL.decode),
                let key = try? P384.Signing.PublicKey(rawRepresentation: x + y)
            else { return nil }
            material = .p384(key)
        default:
            return nil
        }
    }

    /// Whether this key's type can verify `algorithm` at all.
    func fits(_ algorithm: SignatureAlgorithm) -> Bool {
        switch (material, algorithm) {
        case (.rsa, .rs256), (.rsa, .rs384), (.rsa, .rs512), (.rsa, .ps256), (.rsa, .ps384), (.rsa, .ps512): true
        case (.p256, .es256), (.p384, .es384): true
        default: false
        }
    }

    func verifies(_ signature: [UInt8], of input: [UInt8], with algorithm: SignatureAlgorithm) -> Bool {
        switch (material, algorithm) {
        case (.rsa(let key), .rs256):
            key.isValidSignature(
                .init(rawRepresentation: signature), for: SHA256.hash(data: input), padding: .insecurePKCS1v1_5)
        case (.rsa(let key), .rs384):
            key.isValidSignature(
                .init(rawRepresentation: signature), for: SHA384.hash(data: input), padding: .insecurePKCS1v1_5)
        case (.rsa(let key), .rs512):
            key.isValidSignature(
                .init(rawRepresentation: signature), for: SHA512.hash(data: input), padding: .insecurePKCS1v1_5)
        case (.rsa(let key), .ps256):
            key.isValidSignature(.init(rawRepresentation: signature), for: SHA256.hash(data: input), padding: .PSS)
        case (.rsa(let key), .ps384):
            key.isValidSignature(.init(rawRepresentation: signature), for: SHA384.hash(data: input), padding: .PSS)
        case (.rsa(let key), .ps512):
            key.isValidSignature(.init(rawRepresentation: signature), for: SHA512.hash(data: input), padding: .PSS)
        case (.p256(let key), .es256):
            (try? P256.Signing.ECDSASignature(rawRepresentation: signature)).map {
                key.isValidSignature($0, for: SHA256.hash(data: input))
            } ?? false
        case (.p384(let key), .es384):
            (try? P384.Signing.ECDSASignature(rawRepresentation: signature)).map {
                key.isValidSignature($0, for: SHA384.hash(data: input))
            } ?? false
        default: false
        }
    }
}

/// A provider's signing keys by `kid`, replaced whole when refetched.
public struct KeySet: Sendable {
    public let keys: [String: VerificationKey]

    /// Reads a JWK set document; unusable keys are skipped, a document that is not a JWK set throws.
    public init(json: [UInt8]) throws(OIDCError) {
        guard let document = try? JSONDecoder().decode(JSONValue.self, from: Data(json)),
            case .array(let entries)? = document["keys"]
        else { throw OIDCError(.badProviderResponse, "the JWKS document has no keys array") }
        var keys: [String: VerificationKey] = [:]
        for entry in entries {
            if let key = VerificationKey(jwk: entry), keys[key.id] == nil { keys[key.id] = key }
        }
        self.keys = keys
    }
}
