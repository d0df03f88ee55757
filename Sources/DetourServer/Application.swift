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
    public let endpoints: Endpoints
    let dispatcher: Dispatcher
    let host: String
    let port: Int
    let limits: HTTPServer.Limits

    /// - Parameters:
    ///   - listen: where ``bind()`` listens.
    ///   - metrics: the registry `/metrics` renders, and the factory Detour's counters are made by.
    public init(
        configuration: Configuration, provider: OpenIDProvider, sessions: SessionCookies,
        listen: (host: String, port: Int),
        metrics: (registry: PrometheusCollectorRegistry, factory: any MetricsFactory),
        logger: Logger
    ) throws(ConfigError) {
        func refused(_ message: String) -> ConfigError {
            ConfigError(diagnostics: [Diagnostic(file: configuration.file, line: 0, column: 0, message: message)])
        }
        do {
            endpoints = try Endpoints(
                configuration: configuration, provider: provider, sessions: sessions, logger: logger,
                metrics: metrics.registry)
        } catch {
            throw refused("return_to.default: \(error)")
        }
        let policies = try configuration.loadPolicies()
        let upstreamTLS = try Self.upstreamTLS(for: policies.routes)
        let trusted: TrustedProxies
        do {
            trusted = try TrustedProxies(configuration.server.trustedProxies)
        } catch {
            throw refused(error.description)
        }
        let authentication = Authentication(
            jwts: BearerTokenCache(ttl: .seconds(60)) { token, now throws(OIDCError) in
                try await provider.validateAccessToken(token, now: now)
            },
            introspections: BearerTokenCache(ttl: configuration.oidc?.introspectionCacheTTL ?? .seconds(60)) {
                token, now throws(OIDCError) in
                try await provider.introspect(token, now: now)
            },
            refresher: SessionRefresher(refreshBefore: configuration.session.refreshBefore, logger: logger) {
                token, subject, now throws(OIDCError) in
                try await provider.refresh(token, subject: subject, now: now)
            },
            logger: logger)
        dispatcher = Dispatcher(
            gateway: Gateway(
                engine: PolicyEngine(policies: policies, settings: configuration.engineSettings),
                scheme: configuration.baseURL.scheme, defaultTarget: endpoints.defaultTarget),
            endpoints: endpoints, sessions: sessions, trustedProxies: trusted, authentication: authentication,
            upstreams: Upstreams(
                timeouts: UpstreamTimeouts(
                    connect: TimeAmount(configuration.server.upstreamConnectTimeout),
                    response: TimeAmount(configuration.server.upstreamTimeout)),
                tls: upstreamTLS),
            counters: RequestCounters(factory: metrics.factory))
        var limits = HTTPServer.Limits(maximumRequestBody: configuration.server.maxRequestBody)
        let configured = configuration.server.limits
        limits.maximumConnections = configured.maxConnections
        limits.maximumHeaderBytes = configured.maxHeaderBytes
        limits.headerTimeout = TimeAmount(configured.headerTimeout)
        limits.bodyTimeout = TimeAmount(configured.bodyTimeout)
        limits.idleTimeout = TimeAmount(configured.idleTimeout)
        self.limits = limits
        (host, port) = listen
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

    /// Listens on the configured address; the listener serves until it is shut down (``HTTPServer/run()``).
    public func bind(logger: Logger) async throws -> HTTPServer {
        let dispatcher = self.dispatcher
        return try await HTTPServer.bind(host: host, port: port, limits: limits, logger: logger) {
            dispatcher.dispatch($0, $1)
        }
    }
}
