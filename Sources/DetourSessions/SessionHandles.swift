import Crypto
public import Foundation
import Synchronization

/// The random handles that name server-side sessions, sealed into the session cookie, and the sealed form a
/// session takes in a shared store.
///
/// Guarantees: a handle is 32 bytes from the system's secure generator; the cookie carries it sealed (so a cookie
/// made up or changed by the client opens to nothing) and expires with the session; a store is keyed by the
/// handle's SHA-256, so neither a store dump nor its notifications give anyone a cookie; a stored session is
/// sealed with `session.secrets`, so a dump reveals no token.
public struct SessionHandles: Sendable {
    let codec: SealedCookieCodec

    public init(codec: SealedCookieCodec) { self.codec = codec }

    /// A new handle for `session`: its cookie value, and the key the store keeps it under.
    public func make(for session: Session) -> (cookie: String, key: String) {
        let handle = SecureRandom.bytes(32)
        return (codec.seal(handle, purpose: "session-handle", expiry: session.expiry), Self.key(of: handle))
    }

    /// The store key a cookie value names, or `nil` when the value does not open (tampered, expired, unknown key).
    public func key(_ cookie: String, now: Date) -> String? {
        guard let handle = codec.open(cookie, purpose: "session-handle", now: now), handle.count == 32 else {
            return nil
        }
        return Self.key(of: handle)
    }

    /// `session` as a store keeps it: sealed until its expiry.
    public func seal(_ session: Session) -> String {
        codec.seal(session.encoded(), purpose: "stored-session", expiry: session.expiry)
    }

    /// A stored session, or `nil` when it does not open or has expired.
    public func open(_ sealed: String, now: Date) -> Session? {
        guard let plaintext = codec.open(sealed, purpose: "stored-session", now: now),
            let session = Session(encoded: plaintext), session.expiry > now
        else { return nil }
        return session
    }

    /// A value's SHA-256 in hex: what stores keep of handles and single-use values.
    public static func digest(_ value: some DataProtocol) -> String {
        Hex.lowercase(SHA256.hash(data: value))
    }

    static func key(of handle: [UInt8]) -> String { digest(handle) }
}

/// `session.store: memory`: sessions kept in this process, the cookie holding only a sealed handle. Signing out
/// ends the session, so a copied cookie stops working; a restart signs everybody out.
///
/// Bounded: past ``capacity`` sessions, the expired ones are dropped, then the one closest to its expiry, so that
/// memory stays bounded (only completed sign-ins add sessions). Single-use values are remembered as
/// ``ReplayGuard`` does, sign-in starts as ``SignInCounter`` counts them.
public final class MemorySessionStore: SessionStore {
    private let handles: SessionHandles
    private let replayGuard: ReplayGuard
    private let signIns = SignInCounter()
    private let forms = KeptFormTable()
    private let table: Mutex<Table>
    public let capacity: Int

    private struct Table {
        var sessions: [String: Session] = [:]
        var changes: UInt64 = 0
    }

    public init(codec: SealedCookieCodec, capacity: Int = 100_000, replayGuard: ReplayGuard = ReplayGuard()) {
        precondition(capacity > 0, "a memory store holds at least one session")
        handles = SessionHandles(codec: codec)
        self.capacity = capacity
        self.replayGuard = replayGuard
        table = Mutex(Table())
    }

    public var isServerSide: Bool { true }
    public var problem: String? { nil }
    public var changes: UInt64 { table.withLock { $0.changes } }
    /// How many sessions are held now (for tests and metrics).
    public var count: Int { table.withLock { $0.sessions.count } }

    public func sessionCount(now: Date) -> Int? {
        table.withLock { $0.sessions.values.count { $0.expiry > now } }
    }

    public func cached(_ cookie: String, now: Date) -> SessionLookup {
        guard let key = handles.key(cookie, now: now) else { return .known(nil) }
        return .known(table.withLock { $0.sessions[key] }.flatMap { $0.expiry > now ? $0 : nil })
    }

    public func session(_ cookie: String, now: Date) -> Session? {
        guard case .known(let session) = cached(cookie, now: now) else { return nil }
        return session
    }

    public func save(_ session: Session, replacing: String?, now: Date) -> String {
        if let replacing, let key = handles.key(replacing, now: now) {
            table.withLock {
                guard $0.sessions[key] != nil else { return }
                $0.sessions[key] = session
                $0.changes &+= 1
            }
            return replacing
        }
        let (cookie, key) = handles.make(for: session)
        table.withLock { table in
            if table.sessions.count >= capacity {
                table.sessions = table.sessions.filter { $0.value.expiry > now }
            }
            if table.sessions.count >= capacity,
                let soonest = table.sessions.min(by: { $0.value.expiry < $1.value.expiry })?.key
            {
                table.sessions[soonest] = nil
                table.changes &+= 1
            }
            table.sessions[key] = session
        }
        return cookie
    }

    public func end(_ cookie: String, now: Date) {
        guard let key = handles.key(cookie, now: now) else { return }
        table.withLock {
            $0.sessions[key] = nil
            $0.changes &+= 1
        }
    }

    public func endSessions(
        of subject: String?, providerSession: String?, once tokenID: String, expiry: Date, now: Date
    )
        -> Int?
    {
        guard replayGuard.firstUse(of: tokenID, expiry: expiry, now: now) else { return nil }
        return table.withLock { table in
            let named = table.sessions.filter { $0.value.isNamed(bySubject: subject, providerSession: providerSession) }
            guard !named.isEmpty else { return 0 }
            for key in named.keys { table.sessions[key] = nil }
            table.changes &+= 1
            return named.count
        }
    }

    public func firstUse(of value: String, expiry: Date, now: Date) -> Bool {
        replayGuard.firstUse(of: value, expiry: expiry, now: now)
    }

    public func countSignInHere(_ key: String, window: Duration, now: Date) -> Int? {
        signIns.count(key, window: window, now: now)
    }

    public func countSignIn(_ key: String, window: Duration, now: Date) -> Int {
        signIns.count(key, window: window, now: now)
    }

    public func keepForm(_ sealed: String, under key: String, expiry: Date, now: Date) -> Bool {
        forms.keep(sealed, under: key, expiry: expiry, now: now)
    }

    public func keptForm(_ key: String, now: Date) -> String? { forms.peek(key, now: now) }

    public func takeForm(_ key: String, now: Date) -> String? { forms.take(key, now: now) }
}
