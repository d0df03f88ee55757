public import Foundation

/// Validates JWT access tokens presented as `Authorization: Bearer` (RFC 6750, in the shape of RFC 9068).
///
/// Guarantees, each with its ``OIDCError/Code``: every check of ``SignedJWT`` (allow-listed asymmetric
/// `alg`, known `kid`, verified signature), with `typ` absent, `JWT` or `at+jwt`; `iss` equals the
/// configured issuer exactly; `aud` contains at least one of ``audiences``; `exp` has not passed and
/// `nbf` and `iat`, when present, are not in the future, each with ``leeway``; `sub` is present.
public struct AccessTokenValidator: Sendable {
    public let issuer: String
    /// Accepted audiences (`oidc.bearer_audiences`, by default the client id).
    public let audiences: [String]
    public let leeway: Duration
    public let algorithms: Set<SignatureAlgorithm>

    public init(
        issuer: String, audiences: [String], leeway: Duration = .seconds(60),
        algorithms: Set<SignatureAlgorithm> = Set(SignatureAlgorithm.allCases)
    ) {
        self.issuer = issuer
        self.audiences = audiences
        self.leeway = leeway
        self.algorithms = algorithms
    }

    public func validate(_ token: String, keys: KeySet, now: Date) throws(OIDCError) -> TokenClaims {
        let claims = try SignedJWT.verifiedClaims(of: token, keys: keys, algorithms: algorithms) { type in
            guard let type = type?.lowercased() else { return true }
            return type == "jwt" || type == "at+jwt" || type == "application/at+jwt"
        }
        guard claims["iss"]?.string == issuer else { throw OIDCError(.wrongIssuer, "iss is not \(issuer)") }
        guard let audience = claims["aud"]?.strings, audience.contains(where: audiences.contains) else {
            throw OIDCError(.wrongAudience, "aud contains none of the accepted audiences")
        }
        try SignedJWT.checkTimes(claims, now: now, leeway: leeway, requireIssuedAt: false)
        return try SignedJWT.tokenClaims(claims)
    }
}
