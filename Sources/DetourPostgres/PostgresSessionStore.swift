public import DetourSessions
public import Foundation
public import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// `session.store: postgres://...`: sessions and single-use values shared by every replica that points at the same
/// database, through postgres-nio.
///
/// Guarantees:
/// - A signed-in request does not wait for the database each time: a session read once is kept in this replica's
///   cache, and every replica drops its copy when a session ends or is replaced, told by `NOTIFY` on the
///   ``notificationChannel`` (well within a second).
/// - The cache is trusted only while this replica is listening: when the listening connection is lost, the cache is
///   emptied and ``problem`` says why, so a session ended meanwhile cannot be served from a stale copy.
/// - Every call gives up after ``timeout`` with ``SessionStoreError/unavailable(_:)``: a database that is down or
///   slow makes sign-in a 503, never a hang, and never signs anybody in or keeps anybody signed in unchecked.
/// - Rows hold sessions sealed with `session.secrets` and keyed by the SHA-256 of the handle ( ``SessionHandles``):
///   a dump reveals no token and no cookie. Expired rows are deleted in the background.
public final class PostgresSessionStore: SessionStore {
    /// Where the database is, and how to reach it.
    public struct Connection: Sendable {
        public var host: String
        public var port: Int
        public var user: String
        public var password: String?
        public var database: String?
        /// Whether to speak TLS, verifying the server's certificate and host name.
        public var verifiedTLS: Bool

        public init(host: String, port: Int, user: String, password: String?, database: String?, verifiedTLS: Bool) {
            self.host = host
            self.port = port
            self.user = user
            self.password = password
            self.database = database
            self.verifiedTLS = verifiedTLS
        }
    }

    public static let notificationChannel = "detour_sessions_changed"
    /// How long any call waits for the database.
    public let timeout: Duration
    /// How often expired rows are deleted.
    public let sweepInterval: Duration

    let client: PostgresClient
    let connection: Connection
    let handles: SessionHandles
    let logger: Logger
    private let state = Mutex(State())
    /// Past this many cached sessions the cache starts afresh (a signed-in request then asks the database once).
    static let cacheCapacity = 50_000

    struct State {
        /// Sessions read from the database, trusted only while ``listening``; `nil` caches "no such session".
        var cache: [String: Session?] = [:]
        var listening = false
        var migrated = false
        var problem = "connecting to the database"
        var changes: UInt64 = 0
        /// Why the last call failed, while no call has succeeded since and this replica is not listening: calls
        /// then fail at once rather than each wait out ``timeout`` (the listening loop keeps trying every second).
        var failing: String?
    }

    public init(
        _ connection: Connection, codec: SealedCookieCodec, logger: Logger, timeout: Duration = .seconds(3),
        sweepInterval: Duration = .seconds(60)
    ) {
        var configuration = PostgresClient.Configuration(
            host: connection.host, port: connection.port, username: connection.user, password: connection.password,
            database: connection.database,
            tls: connection.verifiedTLS ? .require(.makeClientConfiguration()) : .disable)
        configuration.options.connectTimeout = timeout
        configuration.options.maximumConnections = 8
        // postgres-nio reports every reconnection attempt at `info`; the store reports an outage once, itself.
        var background = logger
        background.logLevel = max(logger.logLevel, .warning)
        client = PostgresClient(configuration: configuration, backgroundLogger: background)
        self.connection = connection
        handles = SessionHandles(codec: codec)
        self.logger = logger
        self.timeout = timeout
        self.sweepInterval = sweepInterval
    }

    public var isServerSide: Bool { true }

    public var problem: String? {
        state.withLock { $0.listening && $0.migrated ? nil : $0.problem }
    }

    public var changes: UInt64 { state.withLock { $0.changes } }

    // MARK: sessions

    public func cached(_ cookie: String, now: Date) -> SessionLookup {
        guard let key = handles.key(cookie, now: now) else { return .known(nil) }
        return state.withLock { state in
            guard state.listening, let entry = state.cache[key] else { return .unknown }
            return .known(entry.flatMap { $0.expiry > now ? $0 : nil })
        }
    }

    public func session(_ cookie: String, now: Date) async throws(SessionStoreError) -> Session? {
        guard let key = handles.key(cookie, now: now) else { return nil }
        if case .known(let session) = cached(cookie, now: now) { return session }
        // Read whether this replica listens, and how many changes it has heard of, before the row: a change notified
        // before this point is in the row read, and one notified after it keeps the row out of the cache below.
        let (listening, changes) = state.withLock { ($0.listening, $0.changes) }
        let sealed = try await call { client in
            try await Self.sealed(
                client.query("SELECT sealed FROM detour_sessions WHERE key = \(key) AND expires_at > now()"))
        }
        let session = sealed.flatMap { handles.open($0, now: now) }
        if listening {
            state.withLock { state in
                guard state.listening, state.changes == changes else { return }
                if state.cache.count >= Self.cacheCapacity { state.cache.removeAll(keepingCapacity: true) }
                state.cache[key] = .some(session)
            }
        }
        return session
    }

    public func save(_ session: Session, replacing: String?, now: Date) async throws(SessionStoreError) -> String {
        let sealed = handles.seal(session)
        let expiry = session.expiry
        if let replacing, let key = handles.key(replacing, now: now) {
            // Only a session still there is replaced: one ended meanwhile stays ended.
            try await call { client in
                _ = try await client.query(
                    """
                    WITH updated AS (
                        UPDATE detour_sessions SET sealed = \(sealed), expires_at = \(expiry) WHERE key = \(key)
                        RETURNING key)
                    SELECT pg_notify(\(Self.notificationChannel), key) FROM updated
                    """)
            }
            evict(key)
            return replacing
        }
        let (cookie, key) = handles.make(for: session)
        // The provider's session id is kept as a digest: a dump must not hand anyone a value other parties act on.
        let named = session.providerSession.map { SessionHandles.digest(Array($0.utf8)) }
        try await call { client in
            _ = try await client.query(
                """
                INSERT INTO detour_sessions (key, sealed, subject, provider_session, expires_at)
                VALUES (\(key), \(sealed), \(session.subject), \(named), \(expiry))
                """)
        }
        return cookie
    }

    public func end(_ cookie: String, now: Date) async throws(SessionStoreError) {
        guard let key = handles.key(cookie, now: now) else { return }
        try await call { client in
            _ = try await client.query(
                """
                WITH ended AS (DELETE FROM detour_sessions WHERE key = \(key) RETURNING key)
                SELECT pg_notify(\(Self.notificationChannel), \(key))
                """)
        }
        evict(key)
    }

    public func endSessions(
        of subject: String?, providerSession: String?, once tokenID: String, expiry: Date, now: Date
    ) async throws(SessionStoreError) -> Int? {
        let used = SessionHandles.digest(Array(tokenID.utf8))
        let named = providerSession.map { SessionHandles.digest(Array($0.utf8)) }
        let (fresh, keys) = try await call { client in
            // One statement: the token is recorded only if the sessions end, and they end only if it is new.
            let rows = try await client.query(
                """
                WITH used AS (
                    INSERT INTO detour_single_use (digest, expires_at) VALUES (\(used), \(expiry))
                    ON CONFLICT (digest) DO UPDATE SET expires_at = EXCLUDED.expires_at
                        WHERE detour_single_use.expires_at <= now()
                    RETURNING digest),
                ended AS (
                    DELETE FROM detour_sessions
                    WHERE EXISTS (SELECT 1 FROM used)
                        AND (\(subject)::text IS NOT NULL OR \(named)::text IS NOT NULL)
                        AND (\(subject)::text IS NULL OR subject = \(subject))
                        AND (\(named)::text IS NULL OR provider_session = \(named))
                    RETURNING key)
                SELECT (SELECT count(*) FROM used)::integer,
                    (SELECT coalesce(array_agg(key), '{}') FROM (
                        SELECT key, pg_notify(\(Self.notificationChannel), key) FROM ended) AS notified)
                """)
            var answer: (Int, [String]) = (0, [])
            for try await row in rows { answer = try row.decode((Int, [String]).self) }
            return answer
        }
        for key in keys { evict(key) }
        return fresh == 1 ? keys.count : nil
    }

    public func firstUse(of value: String, expiry: Date, now: Date) async throws(SessionStoreError) -> Bool {
        let digest = SessionHandles.digest(Array(value.utf8))
        return try await call { client in
            let rows = try await client.query(
                """
                INSERT INTO detour_single_use (digest, expires_at) VALUES (\(digest), \(expiry))
                ON CONFLICT (digest) DO UPDATE SET expires_at = EXCLUDED.expires_at
                    WHERE detour_single_use.expires_at <= now()
                RETURNING digest
                """)
            var inserted = false
            for try await _ in rows { inserted = true }
            return inserted
        }
    }

    public func keepForm(_ sealed: String, under key: String, expiry: Date, now: Date) async throws(SessionStoreError)
        -> Bool
    {
        let (capacity, count) = (KeptForm.storeCapacity, KeptForm.storeCount)
        return try await call { client in
            // Bounded like the memory table (in bytes and in forms): a flood of anonymous POSTs cannot fill the
            // database. Replicas keeping at once may overshoot by a form each.
            let rows = try await client.query(
                """
                INSERT INTO detour_kept_forms (key, sealed, expires_at)
                SELECT \(key), \(sealed), \(expiry)
                WHERE (SELECT count(*) < \(count)
                        AND coalesce(sum(octet_length(sealed)), 0) + octet_length(\(sealed)) <= \(capacity)
                    FROM detour_kept_forms WHERE expires_at > now())
                ON CONFLICT (key) DO NOTHING
                RETURNING key
                """)
            var kept = false
            for try await _ in rows { kept = true }
            return kept
        }
    }

    public func keptForm(_ key: String, now: Date) async throws(SessionStoreError) -> String? {
        try await call { client in
            try await Self.sealed(
                client.query("SELECT sealed FROM detour_kept_forms WHERE key = \(key) AND expires_at > now()"))
        }
    }

    public func takeForm(_ key: String, now: Date) async throws(SessionStoreError) -> String? {
        try await call { client in
            let rows = try await client.query(
                "DELETE FROM detour_kept_forms WHERE key = \(key) RETURNING sealed, expires_at > now()")
            var taken: String?
            for try await row in rows {
                let (sealed, live) = try row.decode((String, Bool).self)
                if live { taken = sealed }
            }
            return taken
        }
    }

    public func sessionCount(now: Date) async throws(SessionStoreError) -> Int? {
        try await call { client in
            var count = 0
            let rows = try await client.query("SELECT count(*)::integer FROM detour_sessions WHERE expires_at > now()")
            for try await row in rows { count = try row.decode(Int.self) }
            return count
        }
    }

    public func countSignInHere(_ key: String, window: Duration, now: Date) -> Int? { nil }

    public func countSignIn(_ key: String, window: Duration, now: Date) async throws(SessionStoreError) -> Int {
        let seconds = Int(window.components.seconds)
        return try await call { client in
            // One statement, so that replicas counting the same browser at once never lose a start.
            let rows = try await client.query(
                """
                INSERT INTO detour_sign_in_starts AS starts (digest, count, expires_at)
                VALUES (\(key), 1, now() + make_interval(secs => \(seconds)))
                ON CONFLICT (digest) DO UPDATE SET
                    count = CASE WHEN starts.expires_at > now() THEN starts.count + 1 ELSE 1 END,
                    expires_at = CASE WHEN starts.expires_at > now() THEN starts.expires_at
                        ELSE EXCLUDED.expires_at END
                RETURNING count
                """)
            var count = 1
            for try await row in rows { count = try row.decode(Int.self) }
            return count
        }
    }

    /// The one sealed value a lookup by key answers, if any.
    static func sealed(_ rows: PostgresRowSequence) async throws -> String? {
        var sealed: String?
        for try await row in rows { sealed = try row.decode(String.self) }
        return sealed
    }

    /// Drops a session from this replica's cache, and tells memos of it to look again.
    func evict(_ key: String) {
        state.withLock {
            $0.cache[key] = nil
            $0.changes &+= 1
        }
    }

    /// Runs `body` against the database, giving up after ``timeout``; at once while the database is known to be
    /// away (unless `retrying`, which the listening loop's own reconnection is).
    @discardableResult
    func call<Value: Sendable>(
        retrying: Bool = false, _ body: @escaping @Sendable (PostgresClient) async throws -> Value
    ) async throws(SessionStoreError) -> Value {
        if !retrying, let failing = state.withLock({ $0.listening ? nil : $0.failing }) {
            throw .unavailable(failing)
        }
        let client = self.client
        do {
            let value = try await Self.within(timeout) { try await body(client) }
            state.withLock { $0.failing = nil }
            return value
        } catch {
            if case .unavailable(let reason) = error { state.withLock { $0.failing = reason } }
            throw error
        }
    }

    /// `body`'s value, or ``SessionStoreError/unavailable(_:)`` when it fails or takes longer than `timeout`.
    static func within<Value: Sendable>(_ timeout: Duration, _ body: @escaping @Sendable () async throws -> Value)
        async throws(SessionStoreError) -> Value
    {
        do {
            return try await withThrowingTaskGroup(of: Value?.self) { group in
                group.addTask { try await body() }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let value = first else {
                    throw SessionStoreError.unavailable("no answer within \(timeout)")
                }
                return value
            }
        } catch let error as SessionStoreError {
            throw error
        } catch {
            throw .unavailable(Self.reason(error))
        }
    }

    /// What went wrong, in words that never include the password (postgres-nio's own descriptions are generic for
    /// that reason; the server's message is safe).
    static func reason(_ error: any Error) -> String {
        if let failed = error as? PostgresTransactionError,
            let cause = failed.beginError ?? failed.closureError ?? failed.commitError
        {
            return reason(cause)
        }
        guard let error = error as? PSQLError else { return "\(type(of: error))" }
        if let info = error.serverInfo, let message = info[.message] {
            return "\(message) (SQLSTATE \(info[.sqlState] ?? "?"))"
        }
        return "\(error.code)"
    }

    func setProblem(_ problem: String) {
        state.withLock { $0.problem = problem }
    }

    /// The listening connection failed: the database is taken to be away until a call or the listening loop
    /// reaches it again, so that requests meanwhile fail at once instead of each waiting out ``timeout``.
    func lost(_ reason: String) {
        state.withLock { state in
            state.problem = "database unreachable: \(reason)"
            state.failing = reason
        }
    }

    func setListening(_ listening: Bool) {
        state.withLock { state in
            state.listening = listening
            if listening { state.failing = nil }
            if !listening {
                state.cache.removeAll()
                state.changes &+= 1
            }
        }
    }

    func setMigrated() { state.withLock { $0.migrated = true } }

    var isListening: Bool { state.withLock { $0.listening } }
}
