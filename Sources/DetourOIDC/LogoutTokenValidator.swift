public import Foundation

/// What a valid logout token asks: end the sessions of ``subject``, or the one provider session ``providerSession``
/// names (of that subject, when both are given).
public struct LogoutRequest: Sendable, Hashable {
    public let subject: String?
    public let providerSession: String?
    /// The token's `jti`, to refuse a second use of it.
    public let tokenID: String
    /// Until when a second use must be refused: after it, the token is too old to be accepted at all.
    public let replayableUntil: Date
}

/// Validates logout tokens per OpenID Connect Back-Channel Logout 1.0, section 2.6.
///
/// Guarantees, each with its ``OIDCError/Code``: every check of ``SignedJWT`` (allow-listed asymmetric `alg`,
/// known `kid`, verified signature), with `typ` absent, `JWT` or `logout+jwt`; `iss` equals the configured issuer
/// exactly; `aud` contains the client id, and `azp`, if present or if there are several audiences, is the client id
/// (as for ID tokens); `nbf`, when present, is not in the future; `iat` is present, not in the future and not older than ``maximumAge``
/// (with ``leeway``), and `exp`, when present, has not passed; the `events` claim is an object whose
/// `http://schemas.openid.net/event/backchannel-logout` member is an object; `sub` or `sid` (or both) is a non-empty
/// string; there is no `nonce` (so an ID token is never a logout token); `jti` is a non-empty string. Tokens are
/// never accepted encrypted.
public struct LogoutTokenValidator: Sendable {
    public static let event = "http://schemas.openid.net/event/backchannel-logout"

    public let issuer: String
    public let clientID: String
    public let leeway: Duration
    /// How old a token's `iat` may be: providers send logout tokens at once, so an old one is a replay.
    public let maximumAge: Duration
    public let algorithms: Set<SignatureAlgorithm>

    public init(
        issuer: String, clientID: String, leeway: Duration = .seconds(60), maximumAge: Duration = .seconds(300),
        algorithms: Set<SignatureAlgorithm> = Set(SignatureAlgorithm.allCases)
    ) {
        self.issuer = issuer
        self.clientID = clientID
        self.leeway = leeway
        self.maximumAge = maximumAge
        self.algorithms = algorithms
    }

    public func validate(_ token: String, keys: KeySet, now: Date) throws(OIDCError) -> LogoutRequest {
        let claims = try SignedJWT.verifiedClaims(of: token, keys: keys, algorithms: algorithms) { type in
            guard let type = type?.lowercased() else { return true }
            return type == "jwt" || type == "logout+jwt" || type == "application/logout+jwt"
        }
        try SignedJWT.checkIssuerAndAudience(claims, issuer: issuer, clientID: clientID)
        let slack = Double(leeway.components.seconds)
        guard let issuedAt = claims["iat"]?.number else { throw OIDCError(.malformedToken, "the token has no iat") }
        guard issuedAt - slack <= now.timeIntervalSince1970 else {
            throw OIDCError(.issuedInTheFuture, "iat is in the future")
        }
        let replayableUntil = Date(timeIntervalSince1970: issuedAt + Double(maximumAge.components.seconds) + slack)
        guard replayableUntil > now else { throw OIDCError(.expired, "iat is more than \(maximumAge) ago") }
        if let expiry = claims["exp"] {
            guard let value = expiry.number, value + slack > now.timeIntervalSince1970 else {
                throw OIDCError(.expired, "exp has passed")
            }
        }
        if let notBefore = claims["nbf"] {
            guard let value = notBefore.number, value - slack <= now.timeIntervalSince1970 else {
                throw OIDCError(.notYetValid, "nbf is in the future")
            }
        }
        guard case .object(let events) = claims["events"], case .object = events[Self.event] else {
            throw OIDCError(.wrongType, "the events claim has no back-channel logout event: not a logout token")
        }
        guard claims["nonce"] == nil else {
            throw OIDCError(.wrongType, "the token carries a nonce: it is an ID token, not a logout token")
        }
        let subject = try Self.identifier("sub", in: claims)
        let providerSession = try Self.identifier("sid", in: claims)
        guard subject != nil || providerSession != nil else {
            throw OIDCError(.missingSubject, "the token names neither sub nor sid")
        }
        guard let tokenID = claims["jti"]?.string, !tokenID.isEmpty else {
            throw OIDCError(.malformedToken, "the token has no jti")
        }
        return LogoutRequest(
            subject: subject, providerSession: providerSession, tokenID: tokenID, replayableUntil: replayableUntil)
    }

    /// The claim `name`, absent or a non-empty string (anything else is malformed, never read as absent).
    private static func identifier(_ name: String, in claims: [String: JSONValue]) throws(OIDCError) -> String? {
        guard let value = claims[name] else { return nil }
        guard let text = value.string, !text.isEmpty else {
            throw OIDCError(.malformedToken, "\(name) is not a non-empty string")
        }
        return text
    }
}
