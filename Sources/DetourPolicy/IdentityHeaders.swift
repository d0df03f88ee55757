/// The identity headers of CONTRACT section 2, built here and nowhere else: `X-Forwarded-*` on a proxied request,
/// `X-Auth-Request-*` on a forward-auth answer (row F1), in a fixed order, one field per fact.
public enum IdentityHeaders: Sendable, Hashable {
    /// What the upstream receives.
    case upstream
    /// What a proxy in front receives with a 202.
    case forwardAuth

    private var prefix: String {
        switch self {
        case .upstream: "X-Forwarded-"
        case .forwardAuth: "X-Auth-Request-"
        }
    }

    /// The user (`sub`), email, groups (comma-separated) and preferred username, those the identity has.
    func fields(
        subject: String, email: String?, groups: [String], preferredUsername: String?
    ) -> [(name: String, value: String)] {
        var fields = [(prefix + "User", subject)]
        if let email { fields.append((prefix + "Email", email)) }
        if !groups.isEmpty { fields.append((prefix + "Groups", groups.joined(separator: ","))) }
        if let preferredUsername { fields.append((prefix + "Preferred-Username", preferredUsername)) }
        return fields
    }

    /// The access token, for routes with `pass_access_token: true`: the upstream gets it as a bearer token too.
    public func accessToken(_ token: String) -> [(name: String, value: String)] {
        switch self {
        case .upstream: [("Authorization", "Bearer \(token)"), ("X-Forwarded-Access-Token", token)]
        case .forwardAuth: [("X-Auth-Request-Access-Token", token)]
        }
    }
}
