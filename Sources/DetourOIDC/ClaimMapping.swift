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
    public func identity(subject: String, from sources: [[String: JSONValue]]) -> MappedIdentity {
        func first(_ path: String) -> JSONValue? { sources.lazy.compactMap { Self.value(at: path, in: $0) }.first }
        var claims: [String: [String]] = [:]
        for source in sources.reversed() { claims.merge(Self.policyClaims(source)) { _, earlier in earlier } }
        return MappedIdentity(
            user: user == "sub" ? subject : first(user)?.strings?.first ?? subject,
            email: first(email)?.string, emailVerified: first("email_verified")?.bool,
            groups: first(groups)?.strings ?? [], preferredUsername: first(preferredUsername)?.string, claims: claims)
    }

    /// Claims about the token rather than the user: kept out of sessions.
    static let protocolClaims: Set<String> = [
        "iss", "aud", "exp", "iat", "nbf", "nonce", "auth_time", "at_hash", "c_hash", "azp", "jti", "sid", "sub",
    ]

    /// How deep nested claims are read for policies, and how many are kept: a session holds them (often in a
    /// cookie), so a provider that sends a large tree cannot make it grow without bound.
    static let policyClaimDepth = 4
    static let policyClaimCount = 256

    /// The string and string-list claims about the user, for policy `claim:` rules: top-level ones by name, nested
    /// ones by their dotted path (`realm_access.roles`), objects within objects down to ``policyClaimDepth``.
    static func policyClaims(_ claims: [String: JSONValue]) -> [String: [String]] {
        var found: [String: [String]] = [:]
        var pending = claims.filter { !protocolClaims.contains($0.key) }.sorted { $0.key < $1.key }.map {
            (path: $0.key, value: $0.value, depth: 1)
        }
        while !pending.isEmpty, found.count < policyClaimCount {
            let (path, value, depth) = pending.removeFirst()
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
    /// `X-Forwarded-User`: the `user` path's value, else `sub`.
    public let user: String
    public let email: String?
    public let emailVerified: Bool?
    public let groups: [String]
    public let preferredUsername: String?
    /// For policy `claim:` rules, by name or dotted path.
    public let claims: [String: [String]]
}
