public import Foundation

/// What bearer tokens were found to be (a JWT validation, an RFC 7662 answer), remembered so that each
/// request with the same token does not verify a signature or ask the provider again.
///
/// Guarantees: a good answer is kept until the earlier of the token's `exp` and ``ttl``; an "inactive"
/// answer for ``inactiveTTL`` (so a revoked token is refused at most ``ttl`` after its revocation);
/// errors are never kept; concurrent lookups of one token make one call; what is kept is the `Verdict` read from
/// the answer once (who the token names, mapped), so a kept one costs nothing more and is read without suspending;
/// tokens are kept only as digests (``SecretKeyedCache``).
public struct BearerTokenCache<Verdict: Sendable>: Sendable {
    public let ttl: Duration
    public let inactiveTTL: Duration
    private let lookUp: @Sendable (String, Date) async throws(OIDCError) -> TokenClaims?
    private let verdict: @Sendable (Result<TokenClaims?, OIDCError>) -> Verdict
    private let answers = SecretKeyedCache<Verdict>()

    /// - Parameters:
    ///   - verdict: what a token's answer means to the caller, read once per answer. It should not hold the token:
    ///     what is kept is kept in the clear.
    ///   - lookUp: validates or asks about the token (``OpenIDProvider/validateAccessToken(_:now:)``
    ///     or ``OpenIDProvider/introspect(_:now:)`` in production); `nil` means not active.
    public init(
        ttl: Duration, inactiveTTL: Duration = .seconds(5),
        verdict: @escaping @Sendable (Result<TokenClaims?, OIDCError>) -> Verdict,
        lookUp: @escaping @Sendable (String, Date) async throws(OIDCError) -> TokenClaims?
    ) {
        self.ttl = ttl
        self.inactiveTTL = inactiveTTL
        self.verdict = verdict
        self.lookUp = lookUp
    }

    /// The kept verdict on the token, if there is one: read on an event loop, without suspending.
    public func cached(_ token: String, now: Date) -> Verdict? {
        answers.cached(token, now: now)
    }

    /// The verdict on the token: kept, or from a new lookup.
    public func check(_ token: String, now: Date) async -> Verdict {
        let (lookUp, verdict, ttl, inactiveTTL) = (self.lookUp, self.verdict, self.ttl, self.inactiveTTL)
        return await answers.value(for: token, now: now) {
            do throws(OIDCError) {
                let claims = try await lookUp(token, now)
                var until = now.addingTimeInterval(Double((claims == nil ? inactiveTTL : ttl).components.seconds))
                if let expiry = claims?.expiry { until = min(until, expiry) }
                return (verdict(.success(claims)), until)
            } catch {
                return (verdict(.failure(error)), now)
            }
        }
    }
}
