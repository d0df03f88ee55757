import DetourConfig
import DetourCurl
import DetourOIDC
import DetourPostgres
import DetourRedirect
import DetourServer
import DetourSessions
import DetourYAML
import Foundation
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import UnixSignals

/// The composition root of `detour serve` and `detour dev`: checks that a configuration can serve sign-in, makes
/// the provider client and the sessions, joins them into an ``Application``, and runs its listener with any
/// companions in one service group, which turns SIGTERM and SIGINT into a drain.
struct Composition {
    let application: Application
    let provider: OpenIDProvider
    /// `session.store` when it is a PostgreSQL database: prepared before the listener binds, run beside it.
    let database: PostgresSessionStore?

    /// The process's metrics registry: bootstrapped into swift-metrics once, here, and rendered by `/metrics`.
    static let metrics: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }()

    /// - Throws: ``ConfigError`` naming every missing or unusable setting.
    init(configuration: Configuration, logger: Logger) throws(ConfigError) {
        var problems: [String] = []
        let oidc = configuration.oidc
        if oidc == nil { problems.append("oidc: is required to serve (issuer, client_id, client_secret)") }
        var secret = oidc?.clientSecret
        if let file = oidc?.clientSecretFile {
            secret = (try? String(contentsOfFile: file, encoding: .utf8))?.trimmingCharacters(
                in: .whitespacesAndNewlines)
            if secret == nil { problems.append("oidc.client_secret_file \(file) cannot be read") }
        }
        var assertionKey: ClientAssertionKey?
        if let file = oidc?.privateKeyFile {
            do {
                guard let pem = try? String(contentsOfFile: file, encoding: .utf8) else {
                    throw ClientAssertionKeyError("cannot be read")
                }
                assertionKey = try ClientAssertionKey(pem: pem)
                secret = ""
            } catch {
                problems.append("oidc.private_key_file \(file): \(error)")
            }
        } else if oidc != nil, secret == nil {
            problems.append("oidc.client_secret or oidc.client_secret_file is required")
        }
        if configuration.server.publicURL == nil {
            problems.append("server.public_url is required to serve (it builds the callback URL)")
        }
        let listen = Self.parseListen(configuration.server.listen)
        if listen == nil { problems.append("server.listen must be HOST:PORT, such as 127.0.0.1:4180") }
        let plainListen = configuration.server.httpListen.map(Self.parseListen)
        let adminListen = configuration.server.adminListen.map(Self.parseListen)
        if case .some(nil) = adminListen {
            problems.append("server.admin_listen must be HOST:PORT, such as 127.0.0.1:9180")
        }
        if case .some(nil) = plainListen {
            problems.append("server.http_listen must be HOST:PORT, such as 0.0.0.0:80")
        }
        var codec: SealedCookieCodec?
        do {
            codec = try SealedCookieCodec(secrets: configuration.session.secrets)
        } catch {
            problems.append("session.secrets: \(error)")
        }
        guard problems.isEmpty, let oidc, let secret, let listen, let codec else {
            throw ConfigError(
                diagnostics: problems.map { Diagnostic(file: configuration.file, line: 0, column: 0, message: $0) })
        }
        let base = configuration.baseURL
        let registration = ClientRegistration(
            issuer: oidc.issuer, clientID: oidc.clientID, clientSecret: secret,
            authentication: assertionKey.map { .privateKeyJWT($0) }
                ?? (oidc.tokenEndpointAuth == .clientSecretPost ? .clientSecretPost : .clientSecretBasic),
            redirectURI: base.origin + configuration.server.prefix + "/callback", scopes: oidc.scopes,
            responseMode: oidc.responseMode == .formPost ? .formPost : .query, bearerAudiences: oidc.bearerAudiences,
            introspectionURL: oidc.introspectionURL,
            claims: ClaimMapping(
                user: oidc.claims.user, email: oidc.claims.email, groups: oidc.claims.groups,
                preferredUsername: oidc.claims.preferredUsername),
            authorizationParameters: oidc.authParams.map { ($0.name, $0.value) })
        provider = OpenIDProvider(
            registration: registration,
            transport: CurlClient(options: .init(timeout: oidc.timeout, caFile: oidc.caFile)))
        // Secure cookies everywhere but plain http on loopback (`detour dev`), where browsers would drop them.
        let secure = !(base.scheme == .http && base.host.isLoopback)
        let store: any SessionStore
        switch configuration.session.store {
        case .cookie:
            store = CookieSessionStore(codec: codec)
            database = nil
        case .memory:
            store = MemorySessionStore(codec: codec)
            database = nil
        case .postgres(let url):
            let postgres = PostgresSessionStore(
                .init(
                    host: url.host, port: url.port, user: url.user, password: url.password, database: url.database,
                    verifiedTLS: url.verifiedTLS),
                codec: codec, logger: logger)
            store = postgres
            database = postgres
        }
        let sessions = SessionCookies(
            codec: codec,
            policy: CookiePolicy(
                cookieName: configuration.session.cookieName, domain: configuration.session.cookieDomain, secure: secure
            ),
            lifetime: configuration.session.lifetime, store: store)
        application = try Application(
            configuration: configuration, provider: provider, sessions: sessions, listen: listen,
            plainListen: plainListen ?? nil, adminListen: adminListen ?? nil,
            metrics: (Self.metrics, MetricsSystem.factory), logger: logger)
    }

    static func parseListen(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }

    /// Binds, loads discovery in the background, and serves until SIGTERM or SIGINT, then drains: the listener and
    /// every companion stop accepting, finish what is in flight, and the group returns.
    ///
    /// - Parameters:
    ///   - hangups: SIGHUP, trapped as early as the command could, so that a hangup during start-up waits for the
    ///     reload service rather than ending the process.
    ///   - reloading: the configuration SIGHUP reads again from its file; `nil` reloads only the certificate.
    /// - Throws: ``PostgresSessionStore/Refused`` when the session database refuses Detour (a wrong password, say),
    ///   before anything listens.
    func run(
        logger: Logger, hangups: UnixSignalsSequence, reloading: Configuration? = nil, companions: [HTTPServer] = []
    ) async throws {
        // A closed standard output (the access log's reader gone) is an error to count, not a signal that kills.
        signal(SIGPIPE, SIG_IGN)
        try await database?.prepare()
        let server = try await application.bind(logger: logger)
        var metadata: Logger.Metadata = ["address": "\(server.host):\(server.port)"]
        if let tls = application.tls {
            metadata["certificate"] = "\(tls.fingerprint)"
            HangupReload.warnIfExpired(tls, logger: logger)
        }
        logger.info(application.tls == nil ? "listening" : "listening over TLS", metadata: metadata)
        var plain: [HTTPServer] = []
        if let listener = try await application.bindPlain(logger: logger) {
            logger.info("redirecting plain http to https", metadata: ["address": "\(listener.host):\(listener.port)"])
            plain.append(listener)
        }
        if let listener = try await application.bindAdmin(logger: logger) {
            logger.info(
                "serving /ping, /ready and /metrics", metadata: ["address": "\(listener.host):\(listener.port)"])
            plain.append(listener)
        }
        let listeners = ([server] + plain + companions).map {
            ServiceGroupConfiguration.ServiceConfiguration(
                service: $0, successTerminationBehavior: .gracefullyShutdownGroup)
        }
        let discovery = ServiceGroupConfiguration.ServiceConfiguration(
            service: ProviderDiscovery(provider: provider), successTerminationBehavior: .ignore)
        let reload = ServiceGroupConfiguration.ServiceConfiguration(
            service: HangupReload(
                hangups: hangups, application: application, configuration: reloading, logger: logger),
            successTerminationBehavior: .ignore)
        // First in the list, so that it is stopped last: requests that drain still reach their sessions.
        let store = database.map {
            ServiceGroupConfiguration.ServiceConfiguration(
                service: SessionDatabase(store: $0), successTerminationBehavior: .ignore)
        }
        let gauge = ServiceGroupConfiguration.ServiceConfiguration(
            service: SessionGauge(store: application.endpoints.sessionStore), successTerminationBehavior: .ignore)
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: (store.map { [$0] } ?? []) + listeners + [discovery, gauge, reload],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        application.accessLog?.flush()
        logger.info("stopped")
    }
}

/// Discovery and the provider's keys, loaded with retries until they are (``OpenIDProvider/run()``); `/ready` says
/// 503 meanwhile. Ends early on shutdown.
struct ProviderDiscovery: Service {
    let provider: OpenIDProvider

    func run() async {
        await cancelWhenGracefulShutdown { await provider.run() }
    }
}

/// `detour_sessions`: how many sessions the store holds, read at start and every 15 seconds (not for the cookie
/// store, which holds none). Ends on shutdown.
struct SessionGauge: Service {
    let store: any SessionStore

    func run() async {
        let gauge = Gauge(label: "detour_sessions")
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                if let count = try? await store.sessionCount(now: Date()) { gauge.record(count) }
                try? await Task.sleep(for: .seconds(15))
            }
        }
    }
}

/// The session database's connections, notifications and sweeps (``PostgresSessionStore/run()``), until shutdown.
struct SessionDatabase: Service {
    let store: PostgresSessionStore

    func run() async {
        await cancelWhenGracefulShutdown { await store.run() }
    }
}
