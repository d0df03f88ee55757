public import Foundation

/// The claims of a token that passed validation: an ID token, a JWT access token, or an introspection answer.
public struct TokenClaims: Sendable, Hashable {
    public let subject: String
    public let expiry: Date
    /// Every claim, for email, groups and policy `claim:` rules.
    public let all: [String: JSONValue]
    /// How ``identity`` reads them (`oidc.claims`).
    public internal(set) var mapping = ClaimMapping.standard

    /// Who the token speaks for, read through ``mapping``.
    public func identity() throws(OIDCError) -> MappedIdentity { try mapping.identity(subject: subject, from: [all]) }
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

    /// - Parameter nonce: the login state's nonce; `nil` for an ID token from a refresh, which may carry none
    ///   (OIDC Core 12.2).
    public func validate(_ token: String, keys: KeySet, nonce: String?, now: Date) throws(OIDCError) -> TokenClaims {
        let claims = try SignedJWT.verifiedClaims(of: token, keys: keys, algorithms: algorithms) { type in
            guard let type else { return true }
            return type.uppercased() == "JWT"
        }
        try checkClaims(claims, nonce: nonce, now: now)
        return try SignedJWT.tokenClaims(claims)
    }

    private func checkClaims(_ claims: [String: JSONValue], nonce: String?, now: Date) throws(OIDCError) {
        try SignedJWT.checkIssuerAndAudience(claims, issuer: issuer, clientID: clientID)
        try SignedJWT.checkTimes(claims, now: now, leeway: leeway, requireIssuedAt: true)
        if let nonce {
            guard claims["nonce"]?.string == nonce else { throw OIDCError(.nonceMismatch, "nonce does not match") }
        }
    }
}
