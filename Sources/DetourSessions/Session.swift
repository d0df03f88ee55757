public import Foundation

/// A signed-in user's session: who they are and the provider's tokens, as sealed into the session cookie.
public struct Session: Sendable, Hashable {
    public var subject: String
    public var email: String?
    public var emailVerified: Bool?
    public var groups: [String]
    public var preferredUsername: String?
    /// Other string or string-list claims, for policies. (The ID token itself is not kept: nothing after
    /// sign-in needs it, and sign-out never puts it in a URL.)
    public var claims: [String: [String]]
    public var accessToken: String?
    public var accessTokenExpiry: Date?
    public var refreshToken: String?
    public var signedInAt: Date
    public var expiry: Date

    public init(
        subject: String, email: String? = nil, emailVerified: Bool? = nil, groups: [String] = [],
        preferredUsername: String? = nil, claims: [String: [String]] = [:], accessToken: String? = nil,
        accessTokenExpiry: Date? = nil, refreshToken: String? = nil, signedInAt: Date,
        expiry: Date
    ) {
        self.subject = subject
        self.email = email
        self.emailVerified = emailVerified
        self.groups = groups
        self.preferredUsername = preferredUsername
        self.claims = claims
        self.accessToken = accessToken
        self.accessTokenExpiry = accessTokenExpiry
        self.refreshToken = refreshToken
        self.signedInAt = signedInAt
        self.expiry = expiry
    }
}

/// What one sign-in attempt needs to finish, sealed into the state cookie when it starts.
///
/// The return target is the already validated URL: it never travels through the provider, and the
/// callback does not check it again.
public struct LoginState: Codable, Sendable, Hashable {
    /// The `state` parameter; the callback's must be equal.
    public var state: String
    public var nonce: String
    /// The PKCE verifier (RFC 7636); only its S256 challenge went to the provider.
    public var codeVerifier: String
    /// Where to go after sign-in: a validated absolute URL.
    public var returnTo: String
    public var startedAt: Date
    /// Sign-in attempts this browser started for ``returnTo`` since ``firstAttemptAt`` (row S2's loop guard).
    public var attempts: Int
    public var firstAttemptAt: Date

    public init(
        state: String, nonce: String, codeVerifier: String, returnTo: String, startedAt: Date, attempts: Int = 1,
        firstAttemptAt: Date? = nil
    ) {
        self.state = state
        self.nonce = nonce
        self.codeVerifier = codeVerifier
        self.returnTo = returnTo
        self.startedAt = startedAt
        self.attempts = attempts
        self.firstAttemptAt = firstAttemptAt ?? startedAt
    }
}

/// Sessions and login states in sealed cookies: the one place that knows their names, purposes and lifetimes.
public struct SessionCookies: Sendable {
    public let codec: SealedCookieCodec
    public let policy: CookiePolicy
    public let lifetime: Duration
    /// How long a sign-in may take from start to callback.
    public static let loginStateLifetime = Duration.seconds(600)

    public init(codec: SealedCookieCodec, policy: CookiePolicy, lifetime: Duration) {
        self.codec = codec
        self.policy = policy
        self.lifetime = lifetime
    }

    /// The request's session, or `nil` when it has none or its cookie is malformed, tampered or expired.
    public func session(in cookies: RequestCookies, now: Date) -> Session? {
        guard let sealed = policy.load(name: policy.sessionName, from: cookies),
            let plaintext = codec.open(sealed, purpose: "session", now: now),
            let session = Session(encoded: plaintext), session.expiry > now
        else { return nil }
        return session
    }

    /// `Set-Cookie` headers storing `session` until its expiry.
    ///
    /// - Throws: ``CookieBudgetExceeded`` when the sealed session is too long for cookies.
    public func store(_ session: Session, existing: RequestCookies, now: Date) throws(CookieBudgetExceeded)
        -> [SetCookie]
    {
        let sealed = codec.seal(session.encoded(), purpose: "session", expiry: session.expiry)
        let maxAge = max(0, Int(session.expiry.timeIntervalSince(now)))
        return try policy.store(sealed, name: policy.sessionName, maxAge: maxAge, sameSite: .lax, existing: existing)
    }

    /// The login state the request carries, if valid and unexpired.
    public func loginState(in cookies: RequestCookies, now: Date) -> LoginState? {
        guard let sealed = policy.load(name: policy.stateName, from: cookies),
            let plaintext = codec.open(sealed, purpose: "login-state", now: now)
        else { return nil }
        return try? JSONDecoder().decode(LoginState.self, from: Data(plaintext))
    }

    /// `Set-Cookie` headers storing a login state; `formPost` makes it `SameSite=None` so that the
    /// provider's cross-site POST to the callback carries it.
    ///
    /// - Throws: ``CookieBudgetExceeded``, which a validated return target (4 KiB at most) never causes.
    public func store(_ state: LoginState, formPost: Bool, existing: RequestCookies) throws(CookieBudgetExceeded)
        -> [SetCookie]
    {
        let expiry = state.startedAt.addingTimeInterval(Double(Self.loginStateLifetime.components.seconds))
        let sealed = codec.seal(Self.encode(state), purpose: "login-state", expiry: expiry)
        return try policy.store(
            sealed, name: policy.stateName, maxAge: Int(Self.loginStateLifetime.components.seconds),
            sameSite: formPost ? .none : .lax, existing: existing)
    }

    private static func encode(_ value: some Encodable) -> [UInt8] {
        do {
            return Array(try JSONEncoder().encode(value))
        } catch {
            preconditionFailure("sessions and login states encode to JSON: \(error)")
        }
    }
}
