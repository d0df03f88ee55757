public import Foundation

/// RFC 7662 answers, remembered so that each request with the same token does not ask the provider again.
///
/// Guarantees: an active answer is kept until the earlier of the token's `exp` and ``ttl``; an inactive
/// one for ``inactiveTTL`` (so a revoked token is refused at most ``ttl`` after its revocation); errors
/// are never kept; concurrent lookups of one token make one call; tokens are kept only as digests
/// (``SecretKeyedCache``).
public struct IntrospectionCache: Sendable {
    public let ttl: Duration
    public let inactiveTTL: Duration
    private let lookUp: @Sendable (String, Date) async throws(OIDCError) -> TokenClaims?
    private let answers = SecretKeyedCache<Result<TokenClaims?, OIDCError>>()

    /// - Parameter lookUp: asks the provider (``OpenIDProvider/introspect(_:now:)`` in production).
    public init(
        ttl: Duration, inactiveTTL: Duration = .seconds(5),
        lookUp: @escaping @Sendable (String, Date) async throws(OIDCError) -> TokenClaims?
    ) {
        self.ttl = ttl
        self.inactiveTTL = inactiveTTL
        self.lookUp = lookUp
    }

    /// The token's claims, or `nil` when it is not active.
    public func claims(for token: String, now: Date) async throws(OIDCError) -> TokenClaims? {
        let (lookUp, ttl, inactiveTTL) = (self.lookUp, self.ttl, self.inactiveTTL)
        let answer = await answers.value(for: token, now: now) {
            do throws(OIDCError) {
                let claims = try await lookUp(token, now)
                var until = now.addingTimeInterval(Double((claims == nil ? inactiveTTL : ttl).components.seconds))
                if let expiry = claims?.expiry { until = min(until, expiry) }
                return (.success(claims), until)
            } catch {
                return (.failure(error), now)
            }
        }
        return try answer.get()
    }
}
