import DetourConfig
import DetourOIDC
public import DetourRedirect
import DetourSessions
import Foundation
import Logging
import Metrics
import Prometheus

/// A request as Detour's endpoints see it: already read whole (they take small bodies only).
public struct EndpointRequest: Sendable {
    public var method: String
    /// `/path?query` as sent.
    public var target: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(method: String, target: String, headers: [(name: String, value: String)], body: [UInt8] = []) {
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
    }

    /// A header's first value by case-insensitive name.
    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name }?.value
    }

    var path: Substring { target.split(separator: "?", maxSplits: 1).first ?? "/" }

    var queryItems: [(String, String)] {
        guard let mark = target.firstIndex(of: "?") else { return [] }
        return FormEncoding.decode(target[target.index(after: mark)...])
    }

    /// Query parameters, and for a form POST the form's fields after them.
    var parameters: [(String, String)] {
        var items = queryItems
        if method == "POST", header("content-type")?.lowercased().hasPrefix("application/x-www-form-urlencoded") == true
        {
            items += FormEncoding.decode(String(decoding: body, as: UTF8.self))
        }
        return items
    }

    var cookies: RequestCookies {
        RequestCookies(headers: headers.filter { $0.name.lowercased() == "cookie" }.map(\.value))
    }

    var client: ClientKind { ClientKind.classify(method: method, header: header) }
}

/// A response from an endpoint.
public struct EndpointResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(name: String, value: String)] = [], body: String = "") {
        self.status = status
        self.headers = headers
        self.body = Array(body.utf8)
    }

    init(_ answer: MatrixAnswer, cookies: [SetCookie] = []) {
        status = answer.status
        headers = answer.headers.map { ($0.name, $0.value) } + cookies.map { ("Set-Cookie", $0.headerValue) }
        body = Array((answer.body ?? "").utf8)
    }
}

/// Detour's own endpoints: `/oauth2/start`, `/callback`, `/sign_out`, `/userinfo`, `/ping`, `/ready`.
///
/// Every answer comes from the redirect matrix: sign-in starts with 302 to the provider (A1) after the
/// return target is validated once (S1) and a loop is caught (S2); the callback answers 303 (C1) or an
/// error page without a redirect (C2); sign-out clears the session and answers 303 (L1).
public struct Endpoints: Sendable {
    let configuration: Configuration
    let provider: OpenIDProvider
    let sessions: SessionCookies
    let replayGuard: ReplayGuard
    /// `return_to.default`, resolved against the public URL.
    public let defaultTarget: BrowserURL
    let logger: Logger
    /// The registry `/metrics` renders; `nil` renders nothing (metrics not bootstrapped).
    let metrics: PrometheusCollectorRegistry?
    /// Row S2: more than this many starts for one target within ``loopWindow`` is a loop.
    static let loopLimit = 5
    static let loopWindow: TimeInterval = 120

    /// - Parameter replayGuard: the single-use table for sign-in states (tests pass a small one).
    public init(
        configuration: Configuration, provider: OpenIDProvider, sessions: SessionCookies, logger: Logger,
        metrics: PrometheusCollectorRegistry? = nil, replayGuard: ReplayGuard = ReplayGuard()
    ) throws {
        self.metrics = metrics
        self.configuration = configuration
        self.provider = provider
        self.sessions = sessions
        self.logger = logger
        self.replayGuard = replayGuard
        defaultTarget = try BrowserURL(parsing: configuration.returnTo.defaultTarget, against: configuration.baseURL)
    }

    public func handle(_ request: EndpointRequest, now: Date = Date()) async -> EndpointResponse {
        let prefix = configuration.server.prefix
        switch request.path {
        case "/ping": return EndpointResponse(status: 200, headers: [("Content-Type", "text/plain")], body: "OK")
        case "/ready":
            if let problem = provider.readiness {
                return EndpointResponse(
                    status: 503, headers: [("Content-Type", "text/plain")], body: "not ready: \(problem)\n")
            }
            return EndpointResponse(status: 200, headers: [("Content-Type", "text/plain")], body: "ready\n")
        case "/metrics":
            return EndpointResponse(
                status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")],
                body: metrics?.emitToString() ?? "")
        case prefix + "/start": return start(request, now: now)
        case prefix + "/callback": return await callback(request, now: now)
        case prefix + "/sign_out": return signOut(request, now: now)
        case prefix + "/userinfo": return userinfo(request, now: now)
        default:
            return EndpointResponse(status: 404, headers: [("Content-Type", "text/plain")], body: "not found\n")
        }
    }

    // MARK: sign-in

    func start(_ request: EndpointRequest, now: Date) -> EndpointResponse {
        guard request.method == "GET" || request.method == "HEAD" else { return methodNotAllowed("GET, HEAD") }
        return beginSignIn(request, requested: request.queryItems.first { $0.0 == "rd" }?.1, now: now)
    }

    /// Sign-in towards `requested`, decided once here as a return target (S1: a refused one becomes the
    /// default).
    func beginSignIn(_ request: EndpointRequest, requested: String?, now: Date) -> EndpointResponse {
        let resolution = configuration.signInTargets.returnTarget(for: requested, fallback: defaultTarget)
        if let rejection = resolution.rejection {
            logger.info("return target refused, using the default", metadata: ["reason": "\(rejection.code)"])
        }
        return beginSignIn(request, target: resolution.target, now: now)
    }

    /// Row A1 (and the end of `/oauth2/start`): 302 to the provider for a validated target, with the
    /// sealed login state, unless this browser is looping (S2).
    private func beginSignIn(_ request: EndpointRequest, target: BrowserURL, now: Date) -> EndpointResponse {
        // The state cookie must come back with the callback, on the public origin. Set on another host that
        // no `session.cookie_domain` joins to it, it would not: the browser first goes to the public start.
        // Never to this very URL again, though: a proxy in front that rewrites `Host` would make that a loop.
        let publicStart = startURL(target)
        if let host = request.header("host").flatMap({ BrowserURL.parse("http://\($0)/")?.host.description }),
            !stateCookieReachesCallback(from: host), publicStart.pathQueryAndFragment != request.target
        {
            return EndpointResponse(
                RedirectMatrix.answer(
                    .signInAtProvider(authorizationURL: publicStart), method: request.method, client: request.client))
        }
        var attempts = 1
        var firstAttemptAt = now
        if let previous = sessions.loginState(in: request.cookies, now: now), previous.returnTo == target.href,
            now.timeIntervalSince(previous.firstAttemptAt) < Self.loopWindow
        {
            attempts = previous.attempts + 1
            firstAttemptAt = previous.firstAttemptAt
        }
        if attempts > Self.loopLimit {
            logger.warning("sign-in loop stopped", metadata: ["target": "\(target.origin)"])
            return EndpointResponse(
                RedirectMatrix.answer(
                    .signInLoop(target: target, attempts: attempts, window: "2 minutes", signInAgain: startURL(target)),
                    method: request.method, client: request.client),
                cookies: sessions.policy.delete(name: sessions.policy.stateName, existing: request.cookies))
        }
        let authorization: AuthorizationRequest
        let url: BrowserURL
        do {
            authorization = try provider.authorizationRequest(returnTo: target.href, now: now)
            url = try BrowserURL(parsing: authorization.url)
        } catch {
            return providerUnavailable(request, detail: "\(error)")
        }
        var state = authorization.loginState
        state.attempts = attempts
        state.firstAttemptAt = firstAttemptAt
        do {
            return EndpointResponse(
                RedirectMatrix.answer(
                    .signInAtProvider(authorizationURL: url), method: request.method, client: request.client),
                cookies: try sessions.store(
                    state, formPost: provider.registration.responseMode == .formPost, existing: request.cookies))
        } catch {
            return sessionTooLarge(request, error, retry: nil, cookies: [])
        }
    }

    func callback(_ request: EndpointRequest, now: Date) async -> EndpointResponse {
        guard request.method == "GET" || request.method == "POST" else { return methodNotAllowed("GET, POST") }
        let parameters = request.parameters
        func parameter(_ name: String) -> String? { parameters.first { $0.0 == name }?.1 }
        let clearState = sessions.policy.delete(name: sessions.policy.stateName, existing: request.cookies)
        guard let state = sessions.loginState(in: request.cookies, now: now) else {
            return failure(
                request, 400, "state-missing", "This sign-in has expired, or the browser did not keep its cookie.", nil,
                clearState)
        }
        let retry = startURL(BrowserURL.parse(state.returnTo) ?? defaultTarget)
        guard let returned = parameter("state"), returned == state.state else {
            return failure(
                request, 400, "state-mismatch", "This sign-in does not belong to this browser.", retry, clearState)
        }
        let expiry = state.startedAt.addingTimeInterval(Double(SessionCookies.loginStateLifetime.components.seconds))
        guard replayGuard.firstUse(of: state.state, expiry: expiry, now: now) else {
            return failure(request, 400, "state-replayed", "This sign-in was already completed.", retry, clearState)
        }
        if let error = parameter("error") {
            logger.info("the provider refused sign-in", metadata: ["error": "\(error)"])
            return failure(
                request, 403, "provider-error", "The identity provider did not sign you in (\(error)).", retry,
                clearState)
        }
        guard let code = parameter("code") else {
            return failure(
                request, 400, "code-missing", "The identity provider sent no authorization code.", retry, clearState)
        }
        let signedIn: SignedIn
        do {
            signedIn = try await provider.redeem(code: code, issuer: parameter("iss"), loginState: state, now: now)
        } catch {
            Counter(label: "detour_sign_ins_total", dimensions: [("result", error.code.rawValue)]).increment()
            logger.warning("sign-in failed", metadata: ["reason": "\(error.code.rawValue)"])
            let status =
                switch error.code {
                case .providerUnavailable, .providerTimedOut: 503
                case .tokenRequestRefused, .badProviderResponse: 502
                default: 401
                }
            return failure(
                request, status, error.code.rawValue, "Signing you in failed (\(error.code.rawValue)).", retry,
                clearState)
        }
        let session = Self.session(from: signedIn, lifetime: sessions.lifetime, now: now)
        guard let returnTo = BrowserURL.parse(state.returnTo) else {
            return failure(
                request, 400, "state-mismatch", "This sign-in's return target is unreadable.", retry, clearState)
        }
        let cookies: [SetCookie]
        do {
            cookies = try sessions.store(session, existing: request.cookies, now: now)
        } catch {
            Counter(label: "detour_sign_ins_total", dimensions: [("result", "session-too-large")]).increment()
            return sessionTooLarge(request, error, retry: retry, cookies: clearState)
        }
        Counter(label: "detour_sign_ins_total", dimensions: [("result", "success")]).increment()
        logger.info("signed in", metadata: ["sub": "\(session.subject)"])
        return EndpointResponse(
            RedirectMatrix.answer(.callbackSucceeded(returnTo: returnTo), method: request.method, client: .navigation),
            cookies: cookies + clearState)
    }

    /// A session (or sign-in state) too large for the cookie budget: a 500 page that names the cause and the two
    /// ways out, never a session cut short.
    func sessionTooLarge(
        _ request: EndpointRequest, _ error: CookieBudgetExceeded, retry: BrowserURL?, cookies: [SetCookie]
    ) -> EndpointResponse {
        logger.error("sign-in refused: the session is too large for cookies", metadata: ["detail": "\(error)"])
        return failure(
            request, 500, "session-too-large",
            "Your session is too large to keep in cookies (\(error.length) bytes; at most \(CookiePolicy.budget)): "
                + "the identity provider sends too many claims or groups. An administrator can ask it for fewer, "
                + "or keep sessions server-side with session.store.", retry, cookies)
    }

    /// Claims about the token rather than the user: kept out of the session cookie.
    static let protocolClaims: Set<String> = [
        "iss", "aud", "exp", "iat", "nbf", "nonce", "auth_time", "at_hash", "c_hash", "azp", "jti", "sid", "sub",
    ]

    /// The string and string-list claims about the user, for policy `claim:` rules.
    static func userClaims(_ claims: [String: JSONValue]) -> [String: [String]] {
        var extra: [String: [String]] = [:]
        for (name, value) in claims where !protocolClaims.contains(name) {
            if let strings = value.strings { extra[name] = strings }
        }
        return extra
    }

    static func session(from signedIn: SignedIn, lifetime: Duration, now: Date) -> Session {
        let claims = signedIn.claims.all.merging(signedIn.userinfo) { _, userinfo in userinfo }
        let extra = userClaims(claims)
        return Session(
            subject: signedIn.claims.subject, email: claims["email"]?.string,
            emailVerified: claims["email_verified"]?.bool,
            groups: claims["groups"]?.strings ?? [], preferredUsername: claims["preferred_username"]?.string,
            claims: extra,
            accessToken: signedIn.accessToken, accessTokenExpiry: signedIn.accessTokenExpiry,
            refreshToken: signedIn.refreshToken, signedInAt: now,
            expiry: now.addingTimeInterval(Double(lifetime.components.seconds)))
    }

    // MARK: sign-out and userinfo

    func signOut(_ request: EndpointRequest, now: Date) -> EndpointResponse {
        guard request.method == "GET" || request.method == "POST" else { return methodNotAllowed("GET, POST") }
        let rd = request.parameters.first { $0.0 == "rd" }?.1
        let target = configuration.signOutTargets.returnTarget(for: rd, fallback: defaultTarget).target
        let session = sessions.session(in: request.cookies, now: now)
        let cleared = sessions.policy.delete(name: sessions.policy.sessionName, existing: request.cookies)
        var next = target
        if let endSession = provider.endSessionURL(postLogoutRedirect: target.href),
            let url = try? BrowserURL(parsing: endSession)
        {
            next = url
        }
        logger.info("signed out", metadata: ["sub": "\(session?.subject ?? "-")"])
        return EndpointResponse(
            RedirectMatrix.answer(.signedOut(next: next), method: request.method, client: .navigation), cookies: cleared
        )
    }

    func userinfo(_ request: EndpointRequest, now: Date) -> EndpointResponse {
        guard let session = sessions.session(in: request.cookies, now: now) else {
            return EndpointResponse(
                RedirectMatrix.answer(
                    .unauthenticated(loginURL: startURL(defaultTarget)), method: request.method, client: .api))
        }
        let body =
            "{"
            + [
                "\"user\":\(JSON.string(session.subject))",
                "\"email\":\(session.email.map(JSON.string) ?? "null")",
                "\"groups\":[\(session.groups.map(JSON.string).joined(separator: ","))]",
                "\"preferred_username\":\(session.preferredUsername.map(JSON.string) ?? "null")",
            ].joined(separator: ",") + "}"
        return EndpointResponse(
            status: 200, headers: [("Content-Type", "application/json"), ("Cache-Control", "no-store")], body: body)
    }

    // MARK: helpers

    /// `/oauth2/start?rd=<target>` on the public URL.
    /// Whether a cookie set while answering on `host` is sent to the callback on the public origin's host:
    /// the same host, or both within `session.cookie_domain` (cookies ignore ports).
    func stateCookieReachesCallback(from host: String) -> Bool {
        let callbackHost = configuration.baseURL.host.description
        if host == callbackHost { return true }
        guard let domain = configuration.session.cookieDomain?.lowercased() else { return false }
        let parent = domain.hasPrefix(".") ? String(domain.dropFirst()) : domain
        func within(_ name: String) -> Bool { name == parent || name.hasSuffix("." + parent) }
        return within(host) && within(callbackHost)
    }

    public func startURL(_ target: BrowserURL) -> BrowserURL {
        .signInStart(origin: configuration.baseURL, prefix: configuration.server.prefix, returnTo: target)
    }

    func failure(
        _ request: EndpointRequest, _ status: Int, _ code: String, _ message: String, _ retry: BrowserURL?,
        _ cookies: [SetCookie]
    ) -> EndpointResponse {
        let failure = CallbackFailure(
            status: status, code: code, message: message, signInAgain: retry ?? startURL(defaultTarget))
        return EndpointResponse(
            RedirectMatrix.answer(.callbackFailed(failure), method: request.method, client: request.client),
            cookies: cookies)
    }

    func providerUnavailable(_ request: EndpointRequest, detail: String) -> EndpointResponse {
        logger.error("the identity provider is unavailable", metadata: ["detail": "\(detail)"])
        let failure = CallbackFailure(
            status: 503, code: "provider-unavailable", message: "The identity provider cannot be reached right now.",
            signInAgain: startURL(defaultTarget))
        return EndpointResponse(
            RedirectMatrix.answer(.callbackFailed(failure), method: request.method, client: request.client))
    }

    func methodNotAllowed(_ allowed: String) -> EndpointResponse {
        EndpointResponse(
            status: 405, headers: [("Allow", allowed), ("Content-Type", "text/plain")], body: "method not allowed\n")
    }
}

extension BrowserURL {
    /// A URL Detour built or validated itself; `nil` only if it is unreadable.
    static func parse(_ text: String) -> BrowserURL? { try? BrowserURL(parsing: text) }
}
