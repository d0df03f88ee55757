import DetourGateway
import DetourOIDC
import DetourPolicy
import Foundation
import Logging

/// What the dispatcher needs for bearer tokens and session refresh, all of it talking to the provider through
/// libcurl, off the event loops.
///
/// A class: the dispatcher reads it on every request, and one reference costs one retain where this many stored
/// references would cost one each.
final class Authentication: Sendable {
    /// Validated JWT access tokens (`bearer: jwt`).
    let jwts: BearerTokenCache<TokenVerdict>
    /// Introspected opaque tokens (`bearer: introspect`).
    let introspections: BearerTokenCache<TokenVerdict>
    let refresher: SessionRefresher
    let logger: Logger

    /// - Parameters:
    ///   - validate: a JWT access token's claims (``OpenIDProvider/validateAccessToken(_:now:)``).
    ///   - introspect: an opaque token's RFC 7662 answer (``OpenIDProvider/introspect(_:now:)``); `nil` when
    ///     inactive.
    init(
        validate: @escaping @Sendable (String, Date) async throws(OIDCError) -> TokenClaims?,
        introspect: @escaping @Sendable (String, Date) async throws(OIDCError) -> TokenClaims?,
        introspectionTTL: Duration, refresher: SessionRefresher, logger: Logger
    ) {
        jwts = BearerTokenCache(ttl: .seconds(60), verdict: TokenVerdict.init, lookUp: validate)
        introspections = BearerTokenCache(ttl: introspectionTTL, verdict: TokenVerdict.init, lookUp: introspect)
        self.refresher = refresher
        self.logger = logger
    }

    /// Where a route's bearer tokens are checked; `nil` for `bearer: off`.
    func tokens(for mode: BearerMode) -> BearerTokenCache<TokenVerdict>? {
        switch mode {
        case .off: nil
        case .jwt: jwts
        case .introspect: introspections
        }
    }
}

/// What the provider said about a bearer token, as the gateway reads it: who the token names, mapped once per answer
/// and kept with it. It never holds the token itself, so the cache keeps tokens only as digests.
enum TokenVerdict: Sendable {
    case accepted(Identity)
    /// Not valid, not active, or naming no user; `reason` is a code safe to show.
    case refused(reason: String)
    case providerUnavailable

    init(_ checked: Result<TokenClaims?, OIDCError>) {
        switch checked {
        case .success(let claims?):
            // A token without the claim `oidc.claims.user` names is refused, as a sign-in without it is.
            self = (try? Self.identity(claims)).map(Self.accepted) ?? .refused(reason: "missing-subject")
        case .success(nil): self = .refused(reason: "inactive")
        case .failure(let error) where error.code == .providerUnavailable || error.code == .providerTimedOut:
            self = .providerUnavailable
        case .failure(let error): self = .refused(reason: error.code.rawValue)
        }
    }

    /// The check for the gateway, for a request that presented `token`.
    func check(presenting token: String) -> BearerCheck {
        switch self {
        case .accepted(let identity): .accepted(identity, token: token)
        case .refused(let reason): .refused(reason: reason)
        case .providerUnavailable: .providerUnavailable
        }
    }

    /// Who a validated bearer token speaks for, read as a session's claims are.
    static func identity(_ claims: TokenClaims) throws(OIDCError) -> Identity {
        let mapped = try claims.identity()
        return Identity(
            subject: mapped.user, email: mapped.email, emailVerified: mapped.emailVerified, groups: mapped.groups,
            // RFC 7662 answers name the user `username`.
            preferredUsername: mapped.preferredUsername ?? claims.all["username"]?.string, claims: mapped.claims)
    }
}
