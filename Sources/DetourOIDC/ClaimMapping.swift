/// Where identity comes from in a provider's claims (`oidc.claims`, CONTRACT section 3): a path for the user, the
/// email, the groups and the preferred username.
///
/// Guarantees: a path is read as ``value(at:in:)`` reads it, so `realm_access.roles` (Keycloak),
/// `resource_access.<client>.roles`, `cognito:groups` (Cognito) and `https://example.com/roles` (a namespaced claim
/// with dots of its own) all name what they look like; a string or a list of strings is accepted for every path;
/// the ID token is read first and userinfo only for what the ID token lacks.
public struct ClaimMapping: Sendable, Hashable {
    public var user: String
    public var email: String
    public var groups: String
    public var preferredUsername: String

    public init(
        user: String = "sub", email: String = "email", groups: String = "groups",
        preferredUsername: String = "preferred_username"
    ) {
        self.user = user
        self.email = email
        self.groups = groups
        self.preferredUsername = preferredUsername
    }

    public static let standard = ClaimMapping()

    /// The value at a dotted `path`: the claim named exactly `path` if there is one, else, at the first dot that
    /// names an object, the rest of the path within that object, and so on.
    public static func value(at path: some StringProtocol, in claims: [String: JSONValue]) -> JSONValue? {
        if let exact = claims[String(path)] { return exact }
        var dot = path.firstIndex(of: ".")
        while let index = dot {
            if case .object(let nested)? = claims[String(path[..<index])],
                let found = value(at: path[path.index(after: index)...], in: nested)
            {
                return found
            }
            dot = path[path.index(after: index)...].firstIndex(of: ".")
        }
        return nil
    }

    /// The identity the claims give, reading `sources` in order (the ID token, then userinfo) for each path.
    ///
    /// - Throws: ``OIDCError/Code/missingSubject`` when `user` names a claim other than `sub` that no source has as a
    ///   non-empty string: falling back to `sub` would mix two kinds of name in `X-Forwarded-User`, and one user's
    ///   name could be another's `sub`.
    public func identity(subject: String, from sources: [[String: JSONValue]]) throws(OIDCError) -> MappedIdentity {
        func first(_ path: String) -> (value: JSONValue, source: Int)? {
            for (index, source) in sources.enumerated() {
                if let value = Self.value(at: path, in: source) { return (value, index) }
            }
            return nil
        }
        var name = subject
        if user != "sub" {
            guard let value = first(user)?.value.string, !value.isEmpty else {
                throw OIDCError(.missingSubject, "no \(user) claim, which oidc.claims.user names")
            }
            name = value
        }
        let mail = first(email)
        // `email_verified` speaks of the `email` claim beside it: of no other claim, and of no other source's email.
        let verified = email == "email" ? mail.flatMap { sources[$0.source]["email_verified"]?.bool } : nil
        var claims: [String: [String]] = [:]
        for source in sources.reversed() { claims.merge(Self.policyClaims(source)) { _, earlier in earlier } }
        return MappedIdentity(
            user: name, email: mail?.value.string, emailVerified: verified, groups: first(groups)?.value.strings ?? [],
            preferredUsername: first(preferredUsername)?.value.string, claims: claims)
    }

    /// Claims about the token rather than the user: kept out of sessions.
    static let protocolClaims: Set<String> = [
        "iss", "aud", "exp", "iat", "nbf", "nonce", "auth_time", "at_hash", "c_hash", "azp", "jti", "sid", "sub",
    ]

    /// How deep nested claims are read for policies, and how many are kept: a session holds them (often in a
    /// cookie), so a provider that sends a large tree cannot make it grow without bound.
    static let policyClaimDepth = 4
    static let policyClaimCount = 256
    static let policyClaimVisits = 4096

    /// The string and string-list claims about the user, for policy `claim:` rules: top-level ones by name, nested
    /// ones by their dotted path (`realm_access.roles`), objects within objects down to ``policyClaimDepth``.
    static func policyClaims(_ claims: [String: JSONValue]) -> [String: [String]] {
        var found: [String: [String]] = [:]
        var pending = claims.filter { !protocolClaims.contains($0.key) }.sorted { $0.key < $1.key }.map {
            (path: $0.key, value: $0.value, depth: 1)
        }
        // A queue read by index, and a bound on what is looked at, not only on what is kept: claims that are numbers
        // or booleans by the thousand cost no more than a few.
        var next = 0
        while next < pending.count, next < policyClaimVisits, found.count < policyClaimCount {
            let (path, value, depth) = pending[next]
            next += 1
            if let strings = value.strings {
                if found[path] == nil { found[path] = strings }
            } else if case .object(let nested) = value, depth < policyClaimDepth {
                pending += nested.sorted { $0.key < $1.key }.map { (path + "." + $0.key, $0.value, depth + 1) }
            }
        }
        return found
    }
}

/// Who a set of claims says the user is, through a ``ClaimMapping``.
public struct MappedIdentity: Sendable, Hashable {
    /// `X-Forwarded-User`: the `user` path's value (`sub` by default).
    public let user: String
    public let email: String?
    public let emailVerified: Bool?
    public let groups: [String]
    public let preferredUsername: String?
    /// For policy `claim:` rules, by name or dotted path.
    public let claims: [String: [String]]
}
