/// What the access log says of how a request was decided (CONTRACT section 8): where it went, which answer it got,
/// and who was signed in.
///
/// Guarantees: ``decision`` is a row of the redirect matrix (`A1`, `C1`...), `proxied`, or the stable code of a
/// refusal (`no-route`, `bad-path-...`); nothing in a note comes from the request unchecked but the user, which
/// comes from a validated session or token.
public struct AccessNote: Sendable, Hashable {
    /// The route that decided, or what answered instead (`detour` for Detour's endpoints, a refusal's code).
    public var route: String?
    public var decision: String
    /// Who was signed in (`X-Forwarded-User`'s value), if anyone.
    public var user: String?

    public init(route: String? = nil, decision: String, user: String? = nil) {
        self.route = route
        self.decision = decision
        self.user = user
    }

    /// What a forwarded request is noted as.
    public static let proxied = "proxied"
}
