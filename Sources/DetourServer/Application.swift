public import DetourConfig
import DetourGateway
public import DetourOIDC
import DetourPolicy
import DetourRedirect
public import DetourSessions
import DetourYAML
public import Logging
public import Metrics
import NIOCore
import NIOHTTP1
public import Prometheus

/// Detour assembled from its parts: the endpoints, the gateway over the compiled policies, and the dispatcher that
/// performs the gateway's steps; ``bind()`` makes its listener.
///
/// The executable is the composition root: it validates the configuration, makes the provider, the sessions, the
/// process's metrics and logging, and runs the listeners in a service group that owns signals and draining. This
/// type only joins what it is given, and refuses (as ``ConfigError``) what cannot serve: a `return_to.default`
/// that is no URL, policies that do not load, an `upstream_tls` file that cannot be read, a trusted proxy that is
/// no address.
public struct Application: Sendable {
    /// The endpoints of the configuration Detour started with: health, readiness and metrics, which no reload
    /// changes, and the session store.
    public let endpoints: Endpoints
    /// The decision path in effect; ``reload(_:)`` replaces it whole.
    let dispatchers: CurrentDispatchers
    /// What every configuration's decision path shares: made once, kept across reloads.
    let shared: SharedParts
    let host: String
    let port: Int
    let limits: HTTPServer.Limits
    /// `server.tls`, loaded: the listener serves HTTPS with it; ``ListenerTLS/reload()`` swaps the pair.
    public let tls: ListenerTLS?
    /// The `Strict-Transport-Security` value answers over TLS carry; `nil` without TLS or with `hsts: 0s`.
    let hsts: String?
    /// `server.http_listen`: where the plain listener binds; it answers everything with H1.
    let plain: (host: String, port: Int)?
    /// `server.admin_listen`: where `/ping`, `/ready` and `/metrics` are served instead of on the public listener.
    let admin: (host: String, port: Int)?
    /// `server.access_log`, unless `off`: the public listeners' requests, a line each (the admin listener's are not
    /// logged: health checks would drown the rest).
    public let accessLog: AccessLog?

    /// - Parameters:
    ///   - listen: where ``bind(logger:)`` listens.
    ///   - plainListen: where ``bindPlain(logger:)`` listens (`server.http_listen`).
    ///   - adminListen: where ``bindAdmin(logger:)`` listens (`server.admin_listen`).
    ///   - metrics: the registry `/metrics` renders, and the factory Detour's counters are made by.
    public init(
        configuration: Configuration, provider: OpenIDProvider, sessions: SessionCookies,
        listen: (host: String, port: Int), plainListen: (host: String, port: Int)? = nil,
        adminListen: (host: String, port: Int)? = nil,
        metrics: (registry: PrometheusCollectorRegistry, factory: any MetricsFactory),
        logger: Logger
    ) throws(ConfigError) {
        shared = SharedParts(
            configuration: configuration, provider: provider, sessions: sessions, metrics: metrics, logger: logger)
        let first = try shared.generation(of: configuration, upgrading: plainListen != nil)
        dispatchers = CurrentDispatchers(first)
        endpoints = first.main.endpoints
        tls = try configuration.server.tls.map { files throws(ConfigError) in try ListenerTLS(files) }
        let maxAge = configuration.server.hsts.components.seconds
        hsts = tls != nil && maxAge > 0 ? "max-age=\(maxAge)" : nil
        plain = plainListen
        admin = adminListen
        var limits = HTTPServer.Limits(maximumRequestBody: configuration.server.maxRequestBody)
        let configured = configuration.server.limits
        limits.maximumConnections = configured.maxConnections
        limits.maximumHeaderBytes = configured.maxHeaderBytes
        limits.headerTimeout = TimeAmount(configured.headerTimeout)
        limits.bodyTimeout = TimeAmount(configured.bodyTimeout)
        limits.idleTimeout = TimeAmount(configured.idleTimeout)
        limits.shutdownGrace = TimeAmount(configuration.server.shutdownGrace)
        switch configuration.server.accessLog {
        case .json: accessLog = AccessLog(format: .json)
        case .text: accessLog = AccessLog(format: .text)
        case .off: accessLog = nil
        }
        limits.accessLog = accessLog
        self.limits = limits
        (host, port) = listen
    }

    /// Puts `configuration` in effect for every request whose head arrives from now on; requests in flight finish
    /// on the configuration they started with. Everything is built before anything is swapped.
    ///
    /// - Returns: how many routes the new configuration has.
    /// - Throws: ``ConfigError`` when its policies or files cannot serve; the running configuration stays.
    public func reload(_ configuration: Configuration) throws(ConfigError) -> Int {
        let next = try shared.generation(of: configuration, upgrading: plain != nil)
        dispatchers.replace(with: next)
        return next.routeCount
    }

    /// TLS for every route with an `https://` upstream, made now so that an unreadable `upstream_tls` file stops
    /// start-up with its route's position rather than failing requests later.
    static func upstreamTLS(for routes: [Route]) throws(ConfigError) -> [String: UpstreamTLSClient] {
        var clients: [String: UpstreamTLSClient] = [:]
        var diagnostics: [Diagnostic] = []
        for route in routes where route.upstream.scheme == .https {
            // The dispatcher finds a route's TLS by its name: two routes of one name would share the first's.
            guard clients[route.name] == nil else {
                diagnostics.append(
                    Diagnostic(
                        file: route.location.file, line: route.location.line, column: route.location.column,
                        message: "route name \"\(route.name)\" is used twice (policy check reports it too)"))
                continue
            }
            do {
                clients[route.name] = try UpstreamTLSClient(
                    route.upstreamTLS, upstreamHost: route.upstream.host.description)
            } catch {
                diagnostics.append(
                    Diagnostic(
                        file: route.location.file, line: route.location.line, column: route.location.column,
                        message: "route \"\(route.name)\": \(error)"))
            }
        }
        guard diagnostics.isEmpty else { throw ConfigError(diagnostics: diagnostics) }
        return clients
    }

    /// Listens on the configured address, over TLS when configured; the listener serves until it is shut down
    /// (``HTTPServer/run()``).
    public func bind(logger: Logger) async throws -> HTTPServer {
        let dispatchers = self.dispatchers
        return try await HTTPServer.bind(
            host: host, port: port, limits: limits, tls: tls, hsts: hsts, logger: logger
        ) { dispatchers.generation.main.dispatch($0, $1) }
    }

    /// Listens on `server.http_listen`, if configured: plain HTTP whose every answer is a 308 to https (row H1).
    public func bindPlain(logger: Logger) async throws -> HTTPServer? {
        guard let plain else { return nil }
        let dispatchers = self.dispatchers
        return try await HTTPServer.bind(host: plain.host, port: plain.port, limits: limits, logger: logger) {
            dispatchers.generation.upgrading.dispatch($0, $1)
        }
    }

    /// Listens on `server.admin_listen`, if configured: `/ping`, `/ready` and `/metrics` (under any spelling the path
    /// normalises from), and 404 for everything else. Nothing there reaches an upstream or a sign-in.
    public func bindAdmin(logger: Logger) async throws -> HTTPServer? {
        guard let admin else { return nil }
        let endpoints = self.endpoints
        var limits = self.limits
        limits.accessLog = nil
        return try await HTTPServer.bind(host: admin.host, port: admin.port, limits: limits, logger: logger) {
            head, _ in
            guard let path = try? RequestPath(normalizing: head.uri), let endpoint = Endpoint.health(path.path) else {
                return .answer(RequestRefusal.noEndpoint.answer(method: head.method.rawValue, client: .api))
            }
            return .respond { await endpoints.handle(endpoint, $0) }
        }
    }
}
