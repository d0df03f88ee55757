import Foundation

/// The checks every signed JWT Detour accepts goes through, whatever it is for (ID token, access token).
///
/// Guarantees, each with its ``OIDCError/Code``: `alg` is on the allow-list (asymmetric only: never
/// `none`, never HMAC, so a public key is never an HMAC secret); `crit` is refused; `typ` passes the
/// caller's test; the `kid` names a key in the set (never a fallback), and a token without `kid` is
/// accepted only when the set holds exactly one key (OIDC Core 10.1); a key that names an `alg` names
/// this one, and its type fits; the signature verifies.
enum SignedJWT {
    static func verifiedClaims(
        of token: String, keys: KeySet, algorithms: Set<SignatureAlgorithm>, acceptsType: (String?) -> Bool
    ) throws(OIDCError) -> [String: JSONValue] {
        guard let jws = CompactJWS(token) else { throw OIDCError(.malformedToken, "not a compact JWS") }
        guard let name = jws.header["alg"]?.string, let algorithm = SignatureAlgorithm(rawValue: name),
            algorithms.contains(algorithm)
        else { throw OIDCError(.unsupportedAlgorithm, "alg \(jws.header["alg"]?.string ?? "missing") is not accepted") }
        guard jws.header["crit"] == nil else { throw OIDCError(.unsupportedCriticalHeader, "crit is not supported") }
        let type = jws.header["typ"]?.string
        guard acceptsType(type) else { throw OIDCError(.wrongType, "typ \(type ?? "missing") is not accepted here") }
        let key: VerificationKey
        if let keyID = jws.header["kid"]?.string {
            guard let named = keys.keys[keyID] else { throw OIDCError(.unknownKey, "no key with the token's kid") }
            key = named
        } else {
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
        return claims
    }

    /// OIDC Core 3.1.3.7 steps 2-5, for ID tokens and what is validated as they are (logout tokens): `iss` is the
    /// issuer exactly; `aud` contains the client id; `azp`, if present or if there are several audiences, is it.
    static func checkIssuerAndAudience(_ claims: [String: JSONValue], issuer: String, clientID: String)
        throws(OIDCError)
    {
        guard claims["iss"]?.string == issuer else { throw OIDCError(.wrongIssuer, "iss is not \(issuer)") }
        guard let audiences = claims["aud"]?.strings, audiences.contains(clientID) else {
            throw OIDCError(.wrongAudience, "aud does not contain the client id")
        }
        if let party = claims["azp"] {
            guard party.string == clientID else { throw OIDCError(.wrongAuthorizedParty, "azp is not the client id") }
        } else if audiences.count > 1 {
            throw OIDCError(.wrongAuthorizedParty, "several audiences and no azp")
        }
    }

    /// `exp` (required), `iat` and `nbf` against `now`, each with `leeway`.
    static func checkTimes(_ claims: [String: JSONValue], now: Date, leeway: Duration, requireIssuedAt: Bool)
        throws(OIDCError)
    {
        let seconds = now.timeIntervalSince1970
        let slack = Double(leeway.components.seconds)
        guard let expiry = claims["exp"]?.number, expiry + slack > seconds else {
            throw OIDCError(.expired, "exp has passed")
        }
        if let issuedAt = claims["iat"] {
            guard let value = issuedAt.number, value - slack <= seconds else {
                throw OIDCError(.issuedInTheFuture, "iat is in the future")
            }
        } else if requireIssuedAt {
            throw OIDCError(.malformedToken, "the token has no iat")
        }
        if let notBefore = claims["nbf"] {
            guard let value = notBefore.number, value - slack <= seconds else {
                throw OIDCError(.notYetValid, "nbf is in the future")
            }
        }
    }

    /// The claims with their subject (required) and expiry.
    static func tokenClaims(_ claims: [String: JSONValue]) throws(OIDCError) -> TokenClaims {
        guard let subject = claims["sub"]?.string, !subject.isEmpty else {
            throw OIDCError(.missingSubject, "the token has no sub")
        }
        guard let expiry = claims["exp"]?.number else { throw OIDCError(.expired, "the token has no exp") }
        return TokenClaims(subject: subject, expiry: Date(timeIntervalSince1970: expiry), all: claims)
    }
}
