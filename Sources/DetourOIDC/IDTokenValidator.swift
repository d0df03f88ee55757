public import Foundation

/// The claims of an ID token that passed validation.
public struct IDTokenClaims: Sendable, Hashable {
    public let subject: String
    public let expiry: Date
    /// Every claim, for email, groups and policy `claim:` rules.
    public let all: [String: JSONValue]

    public var email: String? { all["email"]?.string }
    public var emailVerified: Bool? { all["email_verified"]?.bool }
    public var preferredUsername: String? { all["preferred_username"]?.string }
    public var groups: [String] { all["groups"]?.strings ?? [] }
}

/// Validates ID tokens per OpenID Connect Core 1.0 section 3.1.3.7, with stricter defaults than
/// general JWT libraries.
///
/// Guarantees, each with its ``OIDCError/Code``: the header's `alg` is an asymmetric algorithm on the
/// allow-list (never `none`, never HMAC, so a public key is never an HMAC secret); the `kid` the token
/// names exists (never a fallback to another key), and a token without `kid` is accepted only when the
/// key set holds exactly one key (OIDC Core 10.1); a key that names an `alg` names this one,
/// and the key's type fits it; the signature verifies; `crit` is refused and `typ`, if present, is
/// `JWT`; `iss` equals the configured issuer exactly; `aud` contains the client id; `azp`, if present
/// or if there are several audiences, is the client id; `exp`, `iat` and `nbf` hold against `now`
/// with ``leeway``; `nonce` equals the one sealed into the login state; `sub` is present.
public struct IDTokenValidator: Sendable {
    public let issuer: String
    public let clientID: String
    public let leeway: Duration
    public let algorithms: Set<SignatureAlgorithm>

    public init(
        issuer: String, clientID: String, leeway: Duration = .seconds(60),
        algorithms: Set<SignatureAlgorithm> = Set(SignatureAlgorithm.allCases)
    ) {
        self.issuer = issuer
        self.clientID = clientID
        self.leeway = leeway
        self.algorithms = algorithms
    }

    /// The `kid` a token names, to look its key up (and refetch the key set when it is unknown).
    public static func keyID(of token: String) -> String? {
        CompactJWS(token)?.header["kid"]?.string
    }

    public func validate(_ token: String, keys: KeySet, nonce: String, now: Date) throws(OIDCError) -> IDTokenClaims {
        guard let jws = CompactJWS(token) else { throw OIDCError(.malformedToken, "not a compact JWS") }
        guard let name = jws.header["alg"]?.string, let algorithm = SignatureAlgorithm(rawValue: name),
            algorithms.contains(algorithm)
        else { throw OIDCError(.unsupportedAlgorithm, "alg \(jws.header["alg"]?.string ?? "missing") is not accepted") }
        guard jws.header["crit"] == nil else { throw OIDCError(.unsupportedCriticalHeader, "crit is not supported") }
        if let type = jws.header["typ"]?.string, type.uppercased() != "JWT" {
            throw OIDCError(.wrongType, "typ \(type) is not an ID token")
        }
        let key: VerificationKey
        if let keyID = jws.header["kid"]?.string {
            guard let named = keys.keys[keyID] else { throw OIDCError(.unknownKey, "no key with the token's kid") }
            key = named
        } else {
            // OIDC Core 10.1: a kid is required only when the key set holds several keys.
            guard keys.keys.count == 1, let only = keys.keys.values.first else {
                throw OIDCError(.unknownKey, "the token names no kid and the provider has several keys")
            }
            key = only
        }
        guard key.algorithm.map({ $0 == algorithm }) ?? true, key.fits(algorithm) else {
            throw OIDCError(.keyAlgorithmMismatch, "key \(key.id) is not a key for \(algorithm.rawValue)")
        }
        guard key.verifies(jws.signature, of: jws.signingInput, with: algorithm) else {
            throw OIDCError(.badSignature, "the signature does not verify with key \(key.id)")
        }
        guard case .object(let claims) = jws.payload else {
            throw OIDCError(.malformedToken, "claims are not an object")
        }
        try checkClaims(claims, nonce: nonce, now: now)
        guard let subject = claims["sub"]?.string, !subject.isEmpty else {
            throw OIDCError(.missingSubject, "the token has no sub")
        }
        guard let expiry = claims["exp"]?.number else { throw OIDCError(.expired, "the token has no exp") }
        return IDTokenClaims(subject: subject, expiry: Date(timeIntervalSince1970: expiry), all: claims)
    }

    private func checkClaims(_ claims: [String: JSONValue], nonce: String, now: Date) throws(OIDCError) {
        guard claims["iss"]?.string == issuer else { throw OIDCError(.wrongIssuer, "iss is not \(issuer)") }
        guard let audiences = claims["aud"]?.strings, audiences.contains(clientID) else {
            throw OIDCError(.wrongAudience, "aud does not contain the client id")
        }
        if let party = claims["azp"] {
            guard party.string == clientID else { throw OIDCError(.wrongAuthorizedParty, "azp is not the client id") }
        } else if audiences.count > 1 {
            throw OIDCError(.wrongAuthorizedParty, "several audiences and no azp")
        }
        let seconds = now.timeIntervalSince1970
        let slack = Double(leeway.components.seconds)
        guard let expiry = claims["exp"]?.number, expiry + slack > seconds else {
            throw OIDCError(.expired, "exp has passed")
        }
        guard let issuedAt = claims["iat"]?.number else { throw OIDCError(.malformedToken, "the token has no iat") }
        guard issuedAt - slack <= seconds else { throw OIDCError(.issuedInTheFuture, "iat is in the future") }
        if let notBefore = claims["nbf"] {
            guard let value = notBefore.number, value - slack <= seconds else {
                throw OIDCError(.notYetValid, "nbf is in the future")
            }
        }
        guard claims["nonce"]?.string == nonce else { throw OIDCError(.nonceMismatch, "nonce does not match") }
    }
}
