public import Foundation

/// What bearer tokens were found to be (a JWT validation, an RFC 7662 answer), remembered so that each
/// request with the same token does not verify a signature or ask the provider again.
///
/// Guarantees: a good answer is kept until the earlier of the token's `exp` and ``ttl``; an "inactive"
/// answer for ``inactiveTTL`` (so a revoked token is refused at most ``ttl`` after its revocation);
/// errors are never kept; concurrent lookups of one token make one call; a kept answer can be read
/// without suspending; tokens are kept only as digests (``SecretKeyedCache``).
public struct BearerTokenCache: Sendable {
    public let ttl: Duration
    public let inactiveTTL: Duration
    private let lookUp: @Sendable (String, Date) async throws(OIDCError) -> TokenClaims?
    private let answers = SecretKeyedCache<Result<TokenClaims?, OIDCError>>()

    /// - Parameter lookUp: validates or asks about the token (``OpenIDProvider/validateAccessToken(_:now:)``
    ///   or ``OpenIDProvider/introspect(_:now:)`` in production); `nil` means not active.
    public init(
        ttl: Duration, inactiveTTL: Duration = .seconds(5),
        lookUp: @escaping @Sendable (String, Date) async throws(OIDCError) -> TokenClaims?
    ) {
        self.ttl = ttl
        self.inactiveTTL = inactiveTTL
        self.lookUp = lookUp
    }

    /// The kept answer for the token, if there is one: read on an event loop, without suspending.
    public func cached(_ token: String, now: Date) -> Result<TokenClaims?, OIDCError>? {
        answers.cached(token, now: now)
    }

    /// The token's claims, or `nil` when it is not active.
    public func claims(for token: String, now: Date) async throws(OIDCError) -> TokenClaims? {
        try await check(token, now: now).get()
    }

    /// ``claims(for:now:)`` as a result, for callers that answer refusals rather than throw them.
    public func check(_ token: String, now: Date) async -> Result<TokenClaims?, OIDCError> {
        let (lookUp, ttl, inactiveTTL) = (self.lookUp, self.ttl, self.inactiveTTL)
        return await answers.value(for: token, now: now) {
            do throws(OIDCError) {
                let claims = try await lookUp(token, now)
                var until = now.addingTimeInterval(Double((claims == nil ? inactiveTTL : ttl).components.seconds))
                if let expiry = claims?.expiry { until = min(until, expiry) }
                return (.success(claims), until)
            } catch {
                return (.failure(error), now)
            }
        }
    }
}
