/// Who a signed-in request belongs to, as policies see it: the ID token's (or access token's) claims.
public struct Identity: Sendable, Hashable {
    /// The `sub` claim.
    public var subject: String
    public var email: String?
    /// The `email_verified` claim; `false` disables the email rules for this identity.
    public var emailVerified: Bool?
    public var groups: [String]
    public var preferredUsername: String?
    /// Other claims, string-valued or lists of strings, for `claim:` rules.
    public var claims: [String: [String]]

    public init(
        subject: String, email: String? = nil, emailVerified: Bool? = nil, groups: [String] = [],
        preferredUsername: String? = nil, claims: [String: [String]] = [:]
    ) {
        self.subject = subject
        self.email = email
        self.emailVerified = emailVerified
        self.groups = groups
        self.preferredUsername = preferredUsername
        self.claims = claims
    }

    /// The email address when the provider has not said it is unverified.
    var trustedEmail: String? { emailVerified == false ? nil : email?.lowercased() }

    /// The identity headers the upstream receives (CONTRACT section 2), in a fixed order.
    public var forwardedHeaders: [(name: String, value: String)] {
        var headers = [("X-Forwarded-User", subject)]
        if let email { headers.append(("X-Forwarded-Email", email)) }
        if !groups.isEmpty { headers.append(("X-Forwarded-Groups", groups.joined(separator: ","))) }
        if let preferredUsername { headers.append(("X-Forwarded-Preferred-Username", preferredUsername)) }
        return headers
    }
}
