import DetourConfig
import DetourGateway
import DetourOIDC
import DetourPolicy
import DetourRedirect
import DetourSessions
import DetourYAML
import Logging
import Metrics
import NIOCore
import Prometheus
import Synchronization

/// The decision path of one configuration: its dispatchers, made together and replaced together.
///
/// A class, so that reading the current one costs one reference.
final class Generation: Sendable {
    /// The public listener's.
    let main: Dispatcher
    /// The plain listener's, whose every answer is row H1; ``main`` itself when there is no plain listener.
    let upgrading: Dispatcher
    let routeCount: Int

    init(main: Dispatcher, upgrading: Dispatcher, routeCount: Int) {
        self.main = main
        self.upgrading = upgrading
        self.routeCount = routeCount
    }
}

/// The generation in effect, swapped whole by a reload (SIGHUP).
///
/// Guarantees: a request reads its dispatcher once, when its head arrives, and keeps it to its end, so a request
/// in flight during a reload finishes on the configuration it started with, and every request whose head arrives
/// after ``replace(with:)`` decides on the new one, on connections old and new.
final class CurrentDispatchers: Sendable {
    private let current: Mutex<Generation>

    init(_ first: Generation) { current = Mutex(first) }

    /// The generation in effect; the caller keeps it for the whole of one request.
    var generation: Generation { current.withLock { $0 } }

    func replace(with next: Generation) {
        current.withLock { $0 = next }
    }
}

/// What every generation shares, made once at start: the provider, the sessions, the token caches and refresher,
/// the request counters and the memory kept forms may hold. A reload keeps them, so that a reload forgets no
/// validated token and double-counts no metric.
struct SharedParts: Sendable {
    let provider: OpenIDProvider
    let sessions: SessionCookies
    let authentication: Authentication
    let counters: RequestCounters
    /// Bodies of forms being read to be kept across sign-in (row A2b), held in memory meanwhile: 32 MiB at once.
    let keptForms = ByteBudget(capacity: 32 * 1024 * 1024)
    let metrics: PrometheusCollectorRegistry
    let logger: Logger
    private static let numbers = Atomic<Int>(0)

    init(
        configuration: Configuration, provider: OpenIDProvider, sessions: SessionCookies,
        metrics: (registry: PrometheusCollectorRegistry, factory: any MetricsFactory), logger: Logger
    ) {
        self.provider = provider
        self.sessions = sessions
        self.logger = logger
        self.metrics = metrics.registry
        counters = RequestCounters(factory: metrics.factory)
        authentication = Authentication(
            validate: { token, now throws(OIDCError) in try await provider.validateAccessToken(token, now: now) },
            introspect: { token, now throws(OIDCError) in try await provider.introspect(token, now: now) },
            introspectionTTL: configuration.oidc?.introspectionCacheTTL ?? .seconds(60),
            refresher: SessionRefresher(refreshBefore: configuration.session.refreshBefore, logger: logger) {
                token, subject, now throws(OIDCError) in
                try await provider.refresh(token, subject: subject, now: now)
            },
            logger: logger)
    }

    /// The dispatchers of `configuration`: its policies loaded and compiled, its upstream TLS files read.
    ///
    /// - Parameter upgrading: whether a plain listener needs its H1 dispatcher.
    /// - Throws: ``ConfigError`` for a `return_to.default` that is no URL, policies that do not load, an
    ///   `upstream_tls` file that cannot be read, a trusted proxy that is no address.
    func generation(of configuration: Configuration, upgrading: Bool) throws(ConfigError) -> Generation {
        func refused(_ message: String) -> ConfigError {
            ConfigError(diagnostics: [Diagnostic(file: configuration.file, line: 0, column: 0, message: message)])
        }
        let endpoints: Endpoints
        do {
            endpoints = try Endpoints(
                configuration: configuration, provider: provider, sessions: sessions, logger: logger,
                metrics: metrics)
        } catch {
            throw refused("return_to.default: \(error)")
        }
        let policies = try configuration.loadPolicies()
        let trusted: TrustedProxies
        do {
            trusted = try TrustedProxies(configuration.server.trustedProxies)
        } catch {
            throw refused(error.description)
        }
        let upstreams = Upstreams(
            timeouts: UpstreamTimeouts(
                connect: TimeAmount(configuration.server.upstreamConnectTimeout),
                response: TimeAmount(configuration.server.upstreamTimeout)),
            tls: try Application.upstreamTLS(for: policies.routes))
        let number = Self.numbers.add(1, ordering: .relaxed).newValue
        func dispatcher(upgradingToHTTPS: Bool) -> Dispatcher {
            var settings = configuration.engineSettings
            settings.redirectHTTPToHTTPS = settings.redirectHTTPToHTTPS || upgradingToHTTPS
            return Dispatcher(
                gateway: Gateway(
                    engine: PolicyEngine(policies: policies, settings: settings),
                    scheme: configuration.baseURL.scheme, defaultTarget: endpoints.defaultTarget,
                    upgradesToHTTPS: upgradingToHTTPS),
                endpoints: endpoints, sessions: sessions, trustedProxies: trusted, authentication: authentication,
                upstreams: upstreams, counters: counters, keptForms: keptForms, generation: number)
        }
        let main = dispatcher(upgradingToHTTPS: false)
        return Generation(
            main: main, upgrading: upgrading ? dispatcher(upgradingToHTTPS: true) : main,
            routeCount: policies.routes.count)
    }
}
