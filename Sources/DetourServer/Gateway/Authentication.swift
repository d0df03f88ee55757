import DetourOIDC
import DetourPolicy
import Logging

/// What the dispatcher needs for bearer tokens and session refresh, all of it talking to the provider through
/// libcurl, off the event loops.
///
/// A class: the dispatcher reads it on every request, and one reference costs one retain where this many stored
/// references would cost one each.
final class Authentication: Sendable {
    /// Validated JWT access tokens (`bearer: jwt`).
    let jwts: BearerTokenCache
    /// Introspected opaque tokens (`bearer: introspect`).
    let introspections: BearerTokenCache
    let refresher: SessionRefresher
    let logger: Logger

    init(jwts: BearerTokenCache, introspections: BearerTokenCache, refresher: SessionRefresher, logger: Logger) {
        self.jwts = jwts
        self.introspections = introspections
        self.refresher = refresher
        self.logger = logger
    }

    /// Where a route's bearer tokens are checked; `nil` for `bearer: off`.
    func tokens(for mode: BearerMode) -> BearerTokenCache? {
        switch mode {
        case .off: nil
        case .jwt: jwts
        case .introspect: introspections
        }
    }
}
