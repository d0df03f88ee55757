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
    /// The provider's session id (the ID token's `sid`), which back-channel logout names.
    public var providerSession: String?
    /// The tag of the form kept before this sign-in (row A2b): the one form this session may send again.
    public var keptForm: String?
    /// Who the user is for upstreams (`X-Forwarded-User`), when `oidc.claims.user` names another claim than `sub`.
    public var user: String?

    public init(
        subject: String, email: String? = nil, emailVerified: Bool? = nil, groups: [String] = [],
        preferredUsername: String? = nil, claims: [String: [String]] = [:], accessToken: String? = nil,
        accessTokenExpiry: Date? = nil, refreshToken: String? = nil, signedInAt: Date,
        expiry: Date, providerSession: String? = nil, keptForm: String? = nil, user: String? = nil
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
        self.providerSession = providerSession
        self.keptForm = keptForm
        self.user = user
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

    public init(state: String, nonce: String, codeVerifier: String, returnTo: String, startedAt: Date) {
        self.state = state
        self.nonce = nonce
        self.codeVerifier = codeVerifier
        self.returnTo = returnTo
        self.startedAt = startedAt
    }
}

/// Sessions and login states in cookies: the one place that knows their names, purposes and lifetimes. A session
/// lives where ``store`` keeps it; its cookie holds what the store answers (the sealed session, or a sealed handle).
public struct SessionCookies: Sendable {
    public let codec: SealedCookieCodec
    public let policy: CookiePolicy
    public let lifetime: Duration
    public let store: any SessionStore
    /// How long a sign-in may take from start to callback.
    public static let loginStateLifetime = Duration.seconds(600)

    public init(codec: SealedCookieCodec, policy: CookiePolicy, lifetime: Duration, store: any SessionStore) {
        self.codec = codec
        self.policy = policy
        self.lifetime = lifetime
        self.store = store
    }

    /// The session cookie's value, joined from its chunks; `nil` without one.
    public func sessionValue(in cookies: RequestCookies) -> String? {
        policy.load(name: policy.sessionName, from: cookies)
    }

    /// The request's session, or `nil` when it has none or its cookie is malformed, tampered, expired or ended.
    public func session(in cookies: RequestCookies, now: Date) async throws(SessionStoreError) -> Session? {
        guard let value = sessionValue(in: cookies) else { return nil }
        return try await store.session(value, now: now)
    }

    /// Keeps a new session, and answers the `Set-Cookie` headers that name it until its expiry.
    public func store(_ session: Session, existing: RequestCookies, now: Date) async throws(SessionStoreError)
        -> [SetCookie]
    {
        try cookies(for: await store.save(session, replacing: nil, now: now), session, existing: existing, now: now)
    }

    /// Replaces the request's session with `session` (a refresh): no cookie changes when the store keeps sessions
    /// server-side, as the handle stays.
    public func replace(_ session: Session, existing: RequestCookies, now: Date) async throws(SessionStoreError)
        -> [SetCookie]
    {
        let current = sessionValue(in: existing)
        let value = try await store.save(session, replacing: current, now: now)
        return value == current ? [] : try cookies(for: value, session, existing: existing, now: now)
    }

    /// Ends the request's session in the store (on every replica, for a server-side one), and answers the
    /// `Set-Cookie` headers that delete its cookie.
    public func end(in cookies: RequestCookies, now: Date) async throws(SessionStoreError) -> [SetCookie] {
        if let value = sessionValue(in: cookies) { try await store.end(value, now: now) }
        return policy.delete(name: policy.sessionName, existing: cookies)
    }

    private func cookies(for value: String, _ session: Session, existing: RequestCookies, now: Date)
        throws(SessionStoreError) -> [SetCookie]
    {
        let maxAge = max(0, Int(session.expiry.timeIntervalSince(now)))
        do {
            return try policy.store(value, name: policy.sessionName, maxAge: maxAge, sameSite: .lax, existing: existing)
        } catch {
            throw .tooLarge(error)
        }
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
