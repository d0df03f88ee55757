/// Who a signed-in request belongs to, as policies see it: the ID token's (or access token's) claims.
///
/// Built once per session and read on every request: its values live in one immutable box, so passing
/// an identity around costs one reference count, and what requests need from it (the lower-cased
/// trusted email, its domain, both sets of identity headers) is computed once, here.
public struct Identity: Sendable, Hashable {
    private final class Storage: Sendable {
        let subject: String
        let email: String?
        let emailVerified: Bool?
        let groups: [String]
        let preferredUsername: String?
        let claims: [String: [String]]
        let trustedEmail: String?
        let trustedEmailDomain: Substring?
        let forwardedHeaders: [(name: String, value: String)]
        let forwardAuthHeaders: [(name: String, value: String)]

        init(
            subject: String, email: String?, emailVerified: Bool?, groups: [String], preferredUsername: String?,
            claims: [String: [String]]
        ) {
            self.subject = subject
            self.email = email
            self.emailVerified = emailVerified
            self.groups = groups
            self.preferredUsername = preferredUsername
            self.claims = claims
            let trusted = emailVerified == false ? nil : email?.lowercased()
            trustedEmail = trusted
            trustedEmailDomain = trusted.flatMap { address in
                address.utf8.lastIndex(of: UInt8(ascii: "@")).map { address[address.utf8.index(after: $0)...] }
            }
            forwardedHeaders = IdentityHeaders.upstream.fields(
                subject: subject, email: email, groups: groups, preferredUsername: preferredUsername)
            forwardAuthHeaders = IdentityHeaders.forwardAuth.fields(
                subject: subject, email: email, groups: groups, preferredUsername: preferredUsername)
        }
    }

    private let storage: Storage

    public init(
        subject: String, email: String? = nil, emailVerified: Bool? = nil, groups: [String] = [],
        preferredUsername: String? = nil, claims: [String: [String]] = [:]
    ) {
        storage = Storage(
            subject: subject, email: email, emailVerified: emailVerified, groups: groups,
            preferredUsername: preferredUsername, claims: claims)
    }

    /// The `sub` claim.
    public var subject: String { storage.subject }
    public var email: String? { storage.email }
    /// The `email_verified` claim; `false` disables the email rules for this identity.
    public var emailVerified: Bool? { storage.emailVerified }
    public var groups: [String] { storage.groups }
    public var preferredUsername: String? { storage.preferredUsername }
    /// Other claims, string-valued or lists of strings, for `claim:` rules.
    public var claims: [String: [String]] { storage.claims }
    /// The email address, lower case, unless the provider said it is unverified.
    var trustedEmail: String? { storage.trustedEmail }
    /// The part of ``trustedEmail`` after its last `@`.
    var trustedEmailDomain: Substring? { storage.trustedEmailDomain }
    /// The identity headers in `style` (CONTRACT section 2), made once per identity.
    public func headers(_ style: IdentityHeaders) -> [(name: String, value: String)] {
        switch style {
        case .upstream: storage.forwardedHeaders
        case .forwardAuth: storage.forwardAuthHeaders
        }
    }

    public static func == (lhs: Identity, rhs: Identity) -> Bool {
        lhs.storage === rhs.storage
            || (lhs.subject, lhs.email, lhs.emailVerified, lhs.groups, lhs.preferredUsername, lhs.claims)
                == (rhs.subject, rhs.email, rhs.emailVerified, rhs.groups, rhs.preferredUsername, rhs.claims)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(subject)
        hasher.combine(email)
    }
}
