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
    let jwts: BearerTokenCache<BearerCheck>
    /// Introspected opaque tokens (`bearer: introspect`).
    let introspections: BearerTokenCache<BearerCheck>
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
        jwts = BearerTokenCache(ttl: .seconds(60), verdict: Self.verdict, lookUp: validate)
        introspections = BearerTokenCache(ttl: introspectionTTL, verdict: Self.verdict, lookUp: introspect)
        self.refresher = refresher
        self.logger = logger
    }

    /// Where a route's bearer tokens are checked; `nil` for `bearer: off`.
    func tokens(for mode: BearerMode) -> BearerTokenCache<BearerCheck>? {
        switch mode {
        case .off: nil
        case .jwt: jwts
        case .introspect: introspections
        }
    }

    /// What the provider said about a bearer token, as the gateway reads it: who it names, mapped once per answer.
    @Sendable static func verdict(_ token: String, _ checked: Result<TokenClaims?, OIDCError>) -> BearerCheck {
        switch checked {
        case .success(let claims?):
            // A token without the claim `oidc.claims.user` names is refused, as a sign-in without it is.
            (try? identity(claims)).map { .accepted($0, token: token) } ?? .refused(reason: "missing-subject")
        case .success(nil): .refused(reason: "inactive")
        case .failure(let error) where error.code == .providerUnavailable || error.code == .providerTimedOut:
            .providerUnavailable
        case .failure(let error): .refused(reason: error.code.rawValue)
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
