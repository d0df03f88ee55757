import DetourConfig
import DetourCurl
import DetourGateway
import DetourOIDC
import DetourPolicy
import DetourRedirect
import DetourSessions
import DetourYAML
import Dispatch
import Foundation
public import Logging
import Metrics
import NIOCore
import Prometheus

/// Everything `detour serve` runs, built from a validated configuration.
public struct DetourService: Sendable {
    public let endpoints: Endpoints
    let dispatcher: Dispatcher
    public let provider: OpenIDProvider
    public let host: String
    public let port: Int
    let limits: HTTPServer.Limits

    /// Checks that the configuration can serve sign-in and builds the service; nothing starts yet.
    ///
    /// - Throws: ``ConfigError`` naming every missing or unusable setting.
    /// The process's metrics registry: bootstrapped into swift-metrics once, rendered by `/metrics`.
    private static let metrics: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }()

    public init(configuration: Configuration, logger: Logger) throws(ConfigError) {
        var problems: [String] = []
        func problem(_ text: String) { problems.append(text) }
        let oidc = configuration.oidc
        if oidc == nil { problem("oidc: is required to serve (issuer, client_id, client_secret)") }
        var secret = oidc?.clientSecret
        if let file = oidc?.clientSecretFile {
            secret = (try? String(contentsOfFile: file, encoding: .utf8))?.trimmingCharacters(
                in: .whitespacesAndNewlines)
            if secret == nil { problem("oidc.client_secret_file \(file) cannot be read") }
        }
        if oidc != nil, secret == nil { problem("oidc.client_secret or oidc.client_secret_file is required") }
        if configuration.server.publicURL == nil {
            problem("server.public_url is required to serve (it builds the callback URL)")
        }
        let listen = Self.parseListen(configuration.server.listen)
        if listen == nil { problem("server.listen must be HOST:PORT, such as 127.0.0.1:4180") }
        var codec: SealedCookieCodec?
        do {
            codec = try SealedCookieCodec(secrets: configuration.session.secrets)
        } catch {
            problem("session.secrets: \(error)")
        }
        guard problems.isEmpty, let oidc, let secret, let listen, let codec else {
            throw ConfigError(
                diagnostics: problems.map { Diagnostic(file: configuration.file, line: 0, column: 0, message: $0) })
        }
        let base = configuration.baseURL
        let registration = ClientRegistration(
            issuer: oidc.issuer, clientID: oidc.clientID, clientSecret: secret,
            authentication: oidc.tokenEndpointAuth == .clientSecretPost ? .clientSecretPost : .clientSecretBasic,
            redirectURI: base.origin + configuration.server.prefix + "/callback", scopes: oidc.scopes,
            responseMode: oidc.responseMode == .formPost ? .formPost : .query, bearerAudiences: oidc.bearerAudiences,
            introspectionURL: oidc.introspectionURL)
        let transport = CurlClient(options: .init(timeout: oidc.timeout, caFile: oidc.caFile))
        provider = OpenIDProvider(registration: registration, transport: transport)
        let secure = !(base.scheme == .http && base.host.isLoopback)
        let sessions = SessionCookies(
            codec: codec,
            policy: CookiePolicy(
                cookieName: configuration.session.cookieName, domain: configuration.session.cookieDomain, secure: secure
            ),
            lifetime: configuration.session.lifetime)
        do {
            endpoints = try Endpoints(
                configuration: configuration, provider: provider, sessions: sessions, logger: logger,
                metrics: Self.metrics)
        } catch {
            throw ConfigError(
                diagnostics: [
                    Diagnostic(file: configuration.file, line: 0, column: 0, message: "return_to.default: \(error)")
                ])
        }
        let policies = try configuration.loadPolicies()
        let upstreamTLS = try Self.upstreamTLS(for: policies.routes)
        let trusted: TrustedProxies
        do {
            trusted = try TrustedProxies(configuration.server.trustedProxies)
        } catch {
            throw ConfigError(diagnostics: [
                Diagnostic(file: configuration.file, line: 0, column: 0, message: error.description)
            ])
        }
        let provider = self.provider
        let authentication = Authentication(
            jwts: BearerTokenCache(ttl: .seconds(60)) { token, now throws(OIDCError) in
                try await provider.validateAccessToken(token, now: now)
            },
            introspections: BearerTokenCache(ttl: oidc.introspectionCacheTTL) { token, now throws(OIDCError) in
                try await provider.introspect(token, now: now)
            },
            refresher: SessionRefresher(refreshBefore: configuration.session.refreshBefore, logger: logger) {
                token, subject, now throws(OIDCError) in
                try await provider.refresh(token, subject: subject, now: now)
            },
            logger: logger)
        dispatcher = Dispatcher(
            gateway: Gateway(
                engine: PolicyEngine(policies: policies, settings: configuration.engineSettings), scheme: base.scheme,
                defaultTarget: endpoints.defaultTarget),
            endpoints: endpoints, sessions: sessions, trustedProxies: trusted, authentication: authentication,
            upstreams: Upstreams(
                timeouts: UpstreamTimeouts(
                    connect: TimeAmount(configuration.server.upstreamConnectTimeout),
                    response: TimeAmount(configuration.server.upstreamTimeout)),
                tls: upstreamTLS),
            counters: RequestCounters(factory: MetricsSystem.factory))
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
            // The gateway finds a route's TLS by its name: two routes of one name would share the first's.
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

    static func parseListen(_ text: String) -> (String, Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }

    /// Binds, loads discovery in the background, and serves until SIGTERM or SIGINT, then drains.
    public func run(logger: Logger, alsoStopping companions: [HTTPServer] = []) async throws {
        let dispatcher = self.dispatcher
        let server = try await HTTPServer.bind(host: host, port: port, limits: limits, logger: logger) {
            dispatcher.dispatch($0, $1)
        }
        logger.info("listening", metadata: ["address": "\(host):\(server.port)"])
        let signals = [SIGTERM, SIGINT].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler {
                logger.info("shutting down: draining in-flight requests")
                server.shutdown()
                for companion in companions { companion.shutdown() }
            }
            source.resume()
            return source
        }
        let discovery = Task { await provider.run() }
        defer {
            discovery.cancel()
            for source in signals { source.cancel() }
        }
        try await server.run()
        logger.info("stopped")
    }
}
