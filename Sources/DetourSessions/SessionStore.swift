public import Foundation

/// Where sessions live (`session.store`, CONTRACT section 8), and the single-use values every replica must agree
/// on. The session cookie's value is the store's to choose: the whole sealed session for ``CookieSessionStore``, a
/// sealed random handle for the server-side stores.
///
/// Guarantees every implementation gives: a cookie value that does not open (tampered, expired, sealed by an
/// unknown key, or naming an ended session) is "not signed in", never an error; ``cached(_:now:)`` never waits,
/// so it may be called on an event loop; the asynchronous calls fail with ``SessionStoreError/unavailable(_:)``
/// rather than wait for long, and never report a session that was ended.
public protocol SessionStore: Sendable {
    /// Whether sessions live on the server, so that ending one stops every copy of its cookie.
    var isServerSide: Bool { get }

    /// What the cookie value opens to, if that is known here without asking a shared store.
    func cached(_ cookie: String, now: Date) -> SessionLookup

    /// The session the cookie value names, asking the shared store when need be.
    func session(_ cookie: String, now: Date) async throws(SessionStoreError) -> Session?

    /// Keeps `session` and answers the cookie value that names it. With `replacing` (a refreshed session), the
    /// session that value names is replaced, and every replica stops using its old copy.
    func save(_ session: Session, replacing: String?, now: Date) async throws(SessionStoreError) -> String

    /// Ends the session the cookie value names, on every replica.
    func end(_ cookie: String, now: Date) async throws(SessionStoreError)

    /// Back-channel logout: unless the logout token `tokenID` was used before on any replica (then `nil`), records
    /// it until `expiry` and ends every session of `subject`, or the one provider session `providerSession` names
    /// (when both are given, only if it is `subject`'s), on every replica; answers how many ended. Recording and
    /// ending are one step, so a failure leaves the token unused for the provider to send again. Nothing ends when
    /// both are `nil`, nor in a store that does not keep sessions server-side.
    func endSessions(
        of subject: String?, providerSession: String?, once tokenID: String, expiry: Date, now: Date
    ) async throws(SessionStoreError) -> Int?

    /// Row A2b: keeps a sealed form under `key` (a digest) until `expiry`; false when the store has no room for it.
    func keepForm(_ sealed: String, under key: String, expiry: Date, now: Date) async throws(SessionStoreError) -> Bool

    /// The sealed form kept under `key`, left in place; `nil` when there is none (taken, or expired).
    func keptForm(_ key: String, now: Date) async throws(SessionStoreError) -> String?

    /// The sealed form kept under `key`, taken: of any number of takes on any replica, only the first answers it.
    func takeForm(_ key: String, now: Date) async throws(SessionStoreError) -> String?

    /// True the first time `value` is used before `expiry` on any replica; false for a replay.
    func firstUse(of value: String, expiry: Date, now: Date) async throws(SessionStoreError) -> Bool

    /// Row S2's loop guard: counts one sign-in start under `key` (a digest naming a browser and its target, so
    /// of bounded length) and answers how many
    /// started within `window` of the first, this one included, on any replica; `nil` when only the shared store
    /// knows (ask ``countSignIn(_:window:now:)``).
    func countSignInHere(_ key: String, window: Duration, now: Date) -> Int?

    /// Row S2's loop guard, asking the shared store.
    func countSignIn(_ key: String, window: Duration, now: Date) async throws(SessionStoreError) -> Int

    /// How many sessions the store holds, for `detour_sessions`; `nil` when it keeps none (the cookie store).
    func sessionCount(now: Date) async throws(SessionStoreError) -> Int?

    /// Why the store cannot serve now (`/ready` says it), or `nil` when it can.
    var problem: String? { get }

    /// Changes whenever a session this replica may have opened before ends or is replaced: a memo of an opened
    /// cookie taken at another count must be looked up again.
    var changes: UInt64 { get }
}

extension Session {
    /// Whether back-channel logout for `subject` and `providerSession` names this session: each that is given
    /// matches, and at least one is given.
    public func isNamed(bySubject subject: String?, providerSession: String?) -> Bool {
        guard subject != nil || providerSession != nil else { return false }
        return (subject.map { $0 == self.subject } ?? true)
            && (providerSession.map { $0 == self.providerSession } ?? true)
    }
}

/// What a store knows about a cookie value without waiting.
public enum SessionLookup: Sendable, Equatable {
    /// The session, or `nil` for none (not signed in).
    case known(Session?)
    /// Only the shared store knows: ask ``SessionStore/session(_:now:)``.
    case unknown
}

/// Why a store could not do what it was asked.
public enum SessionStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The shared store cannot be reached, or did not answer in time: nobody is signed in or out meanwhile.
    case unavailable(String)
    /// The session is too large for the cookie store's budget.
    case tooLarge(CookieBudgetExceeded)

    public var description: String {
        switch self {
        case .unavailable(let reason): "the session store is unavailable: \(reason)"
        case .tooLarge(let error): error.description
        }
    }
}

/// `session.store: cookie`: the sealed session travels in the cookie and nothing is shared. Ending a session only
/// deletes the cookie, so a copy of it works until it expires; single-use values are remembered by this process.
public struct CookieSessionStore: SessionStore {
    let codec: SealedCookieCodec
    /// The single-use values this process has seen.
    public let replayGuard: ReplayGuard
    let signIns = SignInCounter()
    let forms = KeptFormTable()

    public init(codec: SealedCookieCodec, replayGuard: ReplayGuard = ReplayGuard()) {
        self.codec = codec
        self.replayGuard = replayGuard
    }

    public var isServerSide: Bool { false }
    public var problem: String? { nil }
    public var changes: UInt64 { 0 }

    public func sessionCount(now: Date) -> Int? { nil }

    public func cached(_ cookie: String, now: Date) -> SessionLookup {
        guard let plaintext = codec.open(cookie, purpose: "session", now: now),
            let session = Session(encoded: plaintext), session.expiry > now
        else { return .known(nil) }
        return .known(session)
    }

    public func session(_ cookie: String, now: Date) -> Session? {
        guard case .known(let session) = cached(cookie, now: now) else { return nil }
        return session
    }

    public func save(_ session: Session, replacing: String?, now: Date) -> String {
        codec.seal(session.encoded(), purpose: "session", expiry: session.expiry)
    }

    public func end(_ cookie: String, now: Date) {}

    public func endSessions(
        of subject: String?, providerSession: String?, once tokenID: String, expiry: Date, now: Date
    )
        -> Int?
    {
        replayGuard.firstUse(of: tokenID, expiry: expiry, now: now) ? 0 : nil
    }

    public func countSignInHere(_ key: String, window: Duration, now: Date) -> Int? {
        signIns.count(key, window: window, now: now)
    }

    public func countSignIn(_ key: String, window: Duration, now: Date) -> Int {
        signIns.count(key, window: window, now: now)
    }

    public func firstUse(of value: String, expiry: Date, now: Date) -> Bool {
        replayGuard.firstUse(of: value, expiry: expiry, now: now)
    }

    public func keepForm(_ sealed: String, under key: String, expiry: Date, now: Date) -> Bool {
        forms.keep(sealed, under: key, expiry: expiry, now: now)
    }

    public func keptForm(_ key: String, now: Date) -> String? { forms.peek(key, now: now) }

    public func takeForm(_ key: String, now: Date) -> String? { forms.take(key, now: now) }
}
