import DetourSessions
import Logging
import NIOCore
import NIOSSL
import PostgresNIO

extension PostgresSessionStore {
    /// Detour's schema, one migration (its statements) per version: applied in order, each once, in one transaction, by whichever replica gets there
    /// first (they are serialised by an advisory lock, so replicas starting together do not race).
    static let migrations: [[String]] = [
        [
            """
            CREATE TABLE detour_sessions (
                key text PRIMARY KEY,
                sealed text NOT NULL,
                subject text NOT NULL,
                expires_at timestamptz NOT NULL)
            """,
            "CREATE INDEX detour_sessions_expiry ON detour_sessions (expires_at)",
            "CREATE INDEX detour_sessions_subject ON detour_sessions (subject)",
            "CREATE TABLE detour_single_use (digest text PRIMARY KEY, expires_at timestamptz NOT NULL)",
            "CREATE INDEX detour_single_use_expiry ON detour_single_use (expires_at)",
        ],
        [
            "CREATE TABLE detour_sign_in_starts (digest text PRIMARY KEY, count integer NOT NULL, expires_at timestamptz NOT NULL)",
            "CREATE INDEX detour_sign_in_starts_expiry ON detour_sign_in_starts (expires_at)",
        ],
        [
            "ALTER TABLE detour_sessions ADD COLUMN provider_session text",
            "CREATE INDEX detour_sessions_provider_session ON detour_sessions (provider_session)",
            "CREATE TABLE detour_kept_forms (key text PRIMARY KEY, sealed text NOT NULL, expires_at timestamptz NOT NULL)",
            "CREATE INDEX detour_kept_forms_expiry ON detour_kept_forms (expires_at)",
        ],
    ]

    /// The schema's current version, as `detour_schema` records it.
    static let schemaVersion = migrations.count

    /// A refusal that retrying will not mend: the database exists and answers, but will not let Detour in.
    public struct Refused: Error, CustomStringConvertible {
        public let description: String
    }

    /// Connects once, on a connection of its own (the pool runs only with ``run()``), and brings the schema up to
    /// date, so that a wrong password or database name stops start-up with a clear message rather than a `/ready`
    /// that never turns. A database that cannot be reached yet is not an error here: ``run()`` keeps trying, and
    /// `/ready` says 503 meanwhile.
    ///
    /// - Throws: ``Refused`` for an authentication failure, an unknown database, or a missing privilege.
    public func prepare() async throws(Refused) {
        let (connection, logger) = (self.connection, self.logger)
        do {
            try await Self.within(timeout) {
                let tls: PostgresConnection.Configuration.TLS =
                    connection.verifiedTLS
                    ? .require(try NIOSSLContext(configuration: .makeClientConfiguration())) : .disable
                let opened = try await PostgresConnection.connect(
                    configuration: .init(
                        host: connection.host, port: connection.port, username: connection.user,
                        password: connection.password, database: connection.database, tls: tls),
                    id: 0, logger: logger)
                do {
                    try await Self.migrate(on: opened, logger: logger)
                } catch {
                    try? await opened.close().get()
                    throw error
                }
                try await opened.close().get()
            }
            setMigrated()
        } catch .unavailable(let reason) {
            setProblem("database unreachable: \(reason)")
            // SQLSTATE classes 28 (authorization) and 3D (no such database), and 42501 (no privilege), are the
            // operator's to mend: retrying does not.
            if reason.contains("SQLSTATE 28") || reason.contains("SQLSTATE 3D") || reason.contains("SQLSTATE 42501") {
                throw Refused(description: "session.store: the database refused Detour: \(reason)")
            }
            logger.warning("session store: database unreachable; retrying", metadata: ["reason": "\(reason)"])
        } catch {
            return
        }
    }

    /// The connection pool, the notifications that keep every replica's cache honest, and the sweep of expired
    /// rows, until cancelled.
    public func run() async {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.client.run() }
            group.addTask { await self.listen() }
            group.addTask { await self.sweep() }
        }
    }

    /// Brings the schema up to date in one transaction, serialised across replicas by an advisory lock.
    static func migrate(on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.withTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(7461636865)", logger: logger)
            try await connection.query(
                "CREATE TABLE IF NOT EXISTS detour_schema (version integer NOT NULL)", logger: logger)
            var version = 0
            for try await row in try await connection.query("SELECT max(version) FROM detour_schema", logger: logger) {
                version = try row.decode(Int?.self) ?? 0
            }
            for (index, migration) in migrations.enumerated() where index + 1 > version {
                for statement in migration {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query("INSERT INTO detour_schema (version) VALUES (\(index + 1))", logger: logger)
            }
        }
    }

    func migrate() async throws(SessionStoreError) {
        let logger = self.logger
        try await call(retrying: true) { client in
            try await client.withConnection { try await Self.migrate(on: $0, logger: logger) }
        }
        setMigrated()
    }

    /// Listens for changed sessions on a connection of its own, evicting each from the cache; when the connection
    /// is lost, empties the cache and tries again every second.
    func listen() async {
        while !Task.isCancelled {
            do {
                try await migrate()
                try await client.withConnection { connection in
                    try await connection.listen(on: Self.notificationChannel) { notifications in
                        self.setListening(true)
                        self.logger.info("session store: listening for ended sessions")
                        for try await notification in notifications { self.evict(notification.payload) }
                    }
                }
                lost("the listening connection closed")
            } catch {
                lost(Self.reason(error))
            }
            if isListening {
                logger.warning("session store: lost the database; sessions are not served from cache")
            }
            setListening(false)
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// Deletes expired sessions, single-use values, sign-in counts and kept forms every ``sweepInterval``.
    func sweep() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: sweepInterval)
            do {
                try await call { client in
                    _ = try await client.query("DELETE FROM detour_sessions WHERE expires_at <= now()")
                    _ = try await client.query("DELETE FROM detour_single_use WHERE expires_at <= now()")
                    _ = try await client.query("DELETE FROM detour_sign_in_starts WHERE expires_at <= now()")
                    _ = try await client.query("DELETE FROM detour_kept_forms WHERE expires_at <= now()")
                }
            } catch {
                logger.debug("session store: sweep skipped", metadata: ["reason": "\(error)"])
            }
        }
    }
}
