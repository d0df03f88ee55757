public import Foundation

/// Validates JWT access tokens presented as `Authorization: Bearer` (RFC 6750, in the shape of RFC 9068).
///
/// Guarantees, each with its ``OIDCError/Code``: every check of ``SignedJWT`` (allow-listed asymmetric
/// `alg`, known `kid`, verified signature), with `typ` absent, `JWT` or `at+jwt`; `iss` equals the
/// configured issuer exactly; `aud` contains at least one of ``audiences``; `exp` has not passed and
/// `nbf` and `iat`, when present, are not in the future, each with ``leeway``; `sub` is present.
///
/// An ID token is never accepted as an access token (CONTRACT section 7): a token carrying ID-token
/// claims (`nonce`, `at_hash`, `c_hash`, or Keycloak's `typ: ID`) is refused, and a token whose header
/// does not say `at+jwt` (RFC 9068) must name an accepted audience other than ``clientID``, since an ID
/// token's audience is the client.
public struct AccessTokenValidator: Sendable {
    public let issuer: String
    /// Accepted audiences (`oidc.bearer_audiences`, by default the client id).
    public let audiences: [String]
    /// Detour's own client id: the audience of the ID tokens it is issued.
    public let clientID: String
    public let leeway: Duration
    public let algorithms: Set<SignatureAlgorithm>

    public init(
        issuer: String, audiences: [String], clientID: String, leeway: Duration = .seconds(60),
        algorithms: Set<SignatureAlgorithm> = Set(SignatureAlgorithm.allCases)
    ) {
        self.issuer = issuer
        self.audiences = audiences
        self.clientID = clientID
        self.leeway = leeway
        self.algorithms = algorithms
    }

    public func validate(_ token: String, keys: KeySet, now: Date) throws(OIDCError) -> TokenClaims {
        var typed = false
        let claims = try SignedJWT.verifiedClaims(of: token, keys: keys, algorithms: algorithms) { type in
            guard let type = type?.lowercased() else { return true }
            typed = type == "at+jwt" || type == "application/at+jwt"
            return typed || type == "jwt"
        }
        guard claims["iss"]?.string == issuer else { throw OIDCError(.wrongIssuer, "iss is not \(issuer)") }
        try Self.refuseIDTokens(claims)
        let accepted = typed ? audiences : audiences.filter { $0 != clientID }
        guard let audience = claims["aud"]?.strings, audience.contains(where: accepted.contains) else {
            throw OIDCError(
                .wrongAudience,
                typed
                    ? "aud contains none of the accepted audiences"
                    : "aud contains none of the accepted audiences other than the client id, and typ is not at+jwt")
        }
        try SignedJWT.checkTimes(claims, now: now, leeway: leeway, requireIssuedAt: false)
        return try SignedJWT.tokenClaims(claims)
    }

    /// Refuses what only an ID token (or another kind of token) carries: `nonce`, `at_hash` or `c_hash`, or a
    /// `typ` claim other than an access token's (Keycloak says `ID`, `Refresh` or `Logout` there).
    static func refuseIDTokens(_ claims: [String: JSONValue]) throws(OIDCError) {
        for name in ["nonce", "at_hash", "c_hash"] where claims[name] != nil {
            throw OIDCError(.wrongType, "the token carries \(name): it is an ID token, not an access token")
        }
        if let type = claims["typ"]?.string?.lowercased(), type != "bearer", type != "at+jwt" {
            throw OIDCError(.wrongType, "the token's typ claim is \(type), not an access token's")
        }
    }
}
