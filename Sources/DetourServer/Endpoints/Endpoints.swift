import DetourConfig
public import DetourGateway
import DetourOIDC
public import DetourPolicy
public import DetourRedirect
import DetourSessions
import Foundation
import Logging
import Metrics
import Prometheus

/// Detour's own endpoints: `/oauth2/start`, `/callback`, `/sign_out`, `/userinfo`, `/ping`, `/ready`.
///
/// Every answer comes from the redirect matrix: sign-in starts with 302 to the provider (A1) after the
/// return target is validated once (S1) and a loop is caught (S2); the callback answers 303 (C1) or an
/// error page without a redirect (C2); sign-out clears the session and answers 303 (L1).
public struct Endpoints: Sendable {
    let configuration: Configuration
    let provider: OpenIDProvider
    let sessions: SessionCookies
    /// `return_to.default`, resolved against the public URL.
    public let defaultTarget: BrowserURL
    /// Where sessions live (`session.store`).
    public var sessionStore: any SessionStore { sessions.store }
    let logger: Logger
    /// The registry `/metrics` renders; `nil` renders nothing (metrics not bootstrapped).
    let metrics: PrometheusCollectorRegistry?
    /// Row S2: more than this many starts for one target within ``loopWindow`` is a loop.
    static let loopLimit = 5
    static let loopWindow = Duration.seconds(120)

    public init(
        configuration: Configuration, provider: OpenIDProvider, sessions: SessionCookies, logger: Logger,
        metrics: PrometheusCollectorRegistry? = nil
    ) throws {
        self.metrics = metrics
        self.configuration = configuration
        self.provider = provider
        self.sessions = sessions
        self.logger = logger
        defaultTarget = try BrowserURL(parsing: configuration.returnTo.defaultTarget, against: configuration.baseURL)
    }

    /// The answer of `endpoint` (``Endpoint/forwardAuth`` is the gateway's, never served here).
    public func handle(_ endpoint: Endpoint, _ request: EndpointRequest, now: Date = Date()) async -> Answer {
        switch endpoint {
        case .ping: return Answer(status: 200, headers: [("Content-Type", "text/plain")], body: "OK")
        case .ready:
            if let problem = provider.readiness ?? sessions.store.problem.map({ "session store: \($0)" }) {
                return Answer(status: 503, headers: [("Content-Type", "text/plain")], body: "not ready: \(problem)\n")
            }
            return Answer(status: 200, headers: [("Content-Type", "text/plain")], body: "ready\n")
        case .metrics:
            return Answer(
                status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")],
                body: metrics?.emitToString() ?? "")
        case .start: return await start(request, now: now)
        case .signIn: return await signIn(request, now: now)
        case .callback: return await callback(request, now: now)
        case .signOut: return await signOut(request, now: now)
        case .userinfo: return await userinfo(request, now: now)
        case .backchannelLogout: return await backchannelLogout(request, now: now)
        case .resubmit: return await resubmit(request, now: now)
        case .forwardAuth, .unknown:
            return RequestRefusal.noEndpoint.answer(method: request.method, client: request.client)
        }
    }

    // MARK: sign-in

    func start(_ request: EndpointRequest, now: Date) async -> Answer {
        guard request.method == "GET" || request.method == "HEAD" else {
            return methodNotAllowed(request, ["GET", "HEAD"])
        }
        switch beginSignIn(request, requested: requestedTarget(request), now: now) {
        case .answered(let answer): return answer
        case .later(let answer): return await answer()
        }
    }

    /// `rd`, else oauth2-proxy's `X-Auth-Request-Redirect` header (validated as any `rd` is).
    func requestedTarget(_ request: EndpointRequest) -> String? {
        request.queryItems.first { $0.0 == "rd" }?.1 ?? request.header("x-auth-request-redirect")
    }

    /// A sign-in's first answer: known at once, or once the shared store has counted the start (row S2).
    enum SignInStart: Sendable {
        case answered(Answer)
        case later(@Sendable () async -> Answer)
    }

    /// Sign-in towards `requested`, decided once here as a return target (S1: a refused one becomes the
    /// default).
    func beginSignIn(_ request: EndpointRequest, requested: String?, now: Date) -> SignInStart {
        let resolution = configuration.signInTargets.returnTarget(for: requested, fallback: defaultTarget)
        if let rejection = resolution.rejection {
            logger.info("return target refused, using the default", metadata: ["reason": "\(rejection.code)"])
        }
        let target = resolution.target
        // The state cookie must come back with the callback, on the public origin. Set on another host that
        // no `session.cookie_domain` joins to it, it would not: the browser first goes to the public start.
        // Never to this very URL again, though: a proxy in front that rewrites `Host` would make that a loop.
        let publicStart = startURL(target)
        if let host = request.header("host").flatMap({ BrowserURL.parse("http://\($0)/")?.host.description }),
            !stateCookieReachesCallback(from: host), publicStart.pathQueryAndFragment != request.target
        {
            return .answered(
                Answer(
                    RedirectMatrix.answer(
                        .signInAtProvider(authorizationURL: publicStart), method: request.method,
                        client: request.client)))
        }
        // Row S2 counts a browser's starts by its id cookie, not its address, which a whole office may share. A
        // browser that brings none is given one (and its first start counted under it).
        let policy = sessions.policy
        let presented = request.cookies[policy.browserName].flatMap(Self.browserID)
        let browser = presented ?? Self.newBrowserID()
        let given = presented == nil ? [("Set-Cookie", policy.browserCookie(browser).headerValue)] : []
        // A digest, so that a table entry stays 64 bytes whatever the (up to 4 KiB) target.
        let key = SessionHandles.digest(Array((browser + " " + target.href).utf8))
        if let attempts = sessions.store.countSignInHere(key, window: Self.loopWindow, now: now) {
            var answer = signIn(request, target: target, attempts: attempts, now: now)
            answer.headers += given
            return .answered(answer)
        }
        return .later { [self] in
            let now = Date()
            var answer: Answer
            do {
                let attempts = try await sessions.store.countSignIn(key, window: Self.loopWindow, now: now)
                answer = signIn(request, target: target, attempts: attempts, now: now)
            } catch {
                // The loop guard is a diagnosis, not a defence: without the store, the sign-in goes on (its
                // callback needs the store, and answers 503 while it is away).
                logger.warning(
                    "sign-in not counted: the session store is unavailable", metadata: ["detail": "\(error)"])
                answer = redirectToProvider(request, target: target, now: now)
            }
            answer.headers += given
            return answer
        }
    }

    /// Row S2 when the browser is looping, else row A1.
    private func signIn(_ request: EndpointRequest, target: BrowserURL, attempts: Int, now: Date) -> Answer {
        guard attempts > Self.loopLimit else { return redirectToProvider(request, target: target, now: now) }
        logger.warning("sign-in loop stopped", metadata: ["target": "\(target.origin)", "attempts": "\(attempts)"])
        return Answer(
            RedirectMatrix.answer(
                .signInLoop(target: target, attempts: attempts, window: "2 minutes", signInAgain: startURL(target)),
                method: request.method, client: request.client),
            cookies: sessions.policy.delete(name: sessions.policy.stateName, existing: request.cookies))
    }

    /// Row A1 (and the end of `/oauth2/start`): 302 to the provider for a validated target, with the sealed login
    /// state.
    private func redirectToProvider(_ request: EndpointRequest, target: BrowserURL, now: Date) -> Answer {
        let authorization: AuthorizationRequest
        let url: BrowserURL
        do {
            authorization = try provider.authorizationRequest(returnTo: target.href, now: now)
            url = try BrowserURL(parsing: authorization.url)
        } catch {
            return providerUnavailable(request, detail: "\(error)")
        }
        do {
            return Answer(
                RedirectMatrix.answer(
                    .signInAtProvider(authorizationURL: url), method: request.method, client: request.client),
                cookies: try sessions.store(
                    authorization.loginState, formPost: provider.registration.responseMode == .formPost,
                    existing: request.cookies))
        } catch {
            return sessionTooLarge(request, error, retry: nil, cookies: [])
        }
    }

    /// A browser id: 16 random bytes, base64url.
    static func newBrowserID() -> String {
        Base64URL.encode(SecureRandom.bytes(16))
    }

    /// The id a browser presented, if it is one Detour could have made (so the store never keys anything longer).
    static func browserID(_ value: String) -> String? {
        value.utf8.count == 22 && Base64URL.decode(value)?.count == 16 ? value : nil
    }

    func callback(_ request: EndpointRequest, now: Date) async -> Answer {
        guard request.method == "GET" || request.method == "POST" else {
            return methodNotAllowed(request, ["GET", "POST"])
        }
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
        do {
            guard try await sessions.store.firstUse(of: state.state, expiry: expiry, now: now) else {
                return failure(
                    request, 400, "state-replayed", "This sign-in was already completed.", retry, clearState)
            }
        } catch {
            return storeUnavailable(request, error, retry: retry)
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
        var session: Session
        do {
            session = try Self.session(from: signedIn, lifetime: sessions.lifetime, now: now)
        } catch {
            Counter(label: "detour_sign_ins_total", dimensions: [("result", error.code.rawValue)]).increment()
            logger.warning(
                "sign-in failed", metadata: ["reason": "\(error.code.rawValue)", "detail": "\(error.detail)"])
            return failure(
                request, 401, error.code.rawValue, "Signing you in failed (\(error.code.rawValue)).", retry, clearState)
        }
        // Decided again by the allowlist in effect now: a reload may have taken the host off it since the start.
        let resolution = configuration.signInTargets.returnTarget(for: state.returnTo, fallback: defaultTarget)
        if let rejection = resolution.rejection {
            logger.info("return target no longer allowed, using the default", metadata: ["reason": "\(rejection.code)"])
        }
        let returnTo = resolution.target
        // A sign-in that returns to a kept form's confirmation page binds that form to its session (row A2b).
        session.keptForm = keptFormTag(in: returnTo)
        let cookies: [SetCookie]
        do {
            cookies = try await sessions.store(session, existing: request.cookies, now: now)
        } catch .tooLarge(let error) {
            Counter(label: "detour_sign_ins_total", dimensions: [("result", "session-too-large")]).increment()
            return sessionTooLarge(request, error, retry: retry, cookies: clearState)
        } catch {
            Counter(label: "detour_sign_ins_total", dimensions: [("result", "store-unavailable")]).increment()
            return storeUnavailable(request, error, retry: retry)
        }
        Counter(label: "detour_sign_ins_total", dimensions: [("result", "success")]).increment()
        logger.info("signed in", metadata: ["sub": "\(session.subject)"])
        return Answer(
            RedirectMatrix.answer(.callbackSucceeded(returnTo: returnTo), method: request.method, client: .navigation),
            cookies: cookies + clearState)
    }

    /// A session (or sign-in state) too large for the cookie budget: a 500 page that names the cause and the two
    /// ways out, never a session cut short.
    func sessionTooLarge(
        _ request: EndpointRequest, _ error: CookieBudgetExceeded, retry: BrowserURL?, cookies: [SetCookie]
    ) -> Answer {
        logger.error("sign-in refused: the session is too large for cookies", metadata: ["detail": "\(error)"])
        return failure(
            request, 500, "session-too-large",
            "Your session is too large to keep in cookies (\(error.length) bytes; at most \(CookiePolicy.budget)): "
                + "the identity provider sends too many claims or groups. An administrator can ask it for fewer, "
                + "or keep sessions server-side with session.store.", retry, cookies)
    }

    static func session(from signedIn: SignedIn, lifetime: Duration, now: Date) throws(OIDCError) -> Session {
        let identity = try signedIn.identity()
        let subject = signedIn.claims.subject
        return Session(
            subject: subject, email: identity.email, emailVerified: identity.emailVerified, groups: identity.groups,
            preferredUsername: identity.preferredUsername, claims: identity.claims,
            accessToken: signedIn.accessToken, accessTokenExpiry: signedIn.accessTokenExpiry,
            refreshToken: signedIn.refreshToken, signedInAt: now,
            expiry: now.addingTimeInterval(Double(lifetime.components.seconds)),
            providerSession: signedIn.claims.all["sid"]?.string, user: identity.user == subject ? nil : identity.user)
    }

    // MARK: sign-out and userinfo

    func signOut(_ request: EndpointRequest, now: Date) async -> Answer {
        guard request.method == "GET" || request.method == "POST" else {
            return methodNotAllowed(request, ["GET", "POST"])
        }
        let rd = request.parameters.first { $0.0 == "rd" }?.1
        let target = configuration.signOutTargets.returnTarget(for: rd, fallback: defaultTarget).target
        let session = try? await sessions.session(in: request.cookies, now: now)
        let cleared: [SetCookie]
        do {
            cleared = try await sessions.end(in: request.cookies, now: now)
        } catch {
            // The cookie is kept, so that signing out can be tried again: deleting it here would leave every copy
            // of it signed in.
            return storeUnavailable(request, error, retry: nil)
        }
        var next = target
        if let endSession = provider.endSessionURL(postLogoutRedirect: target.href),
            let url = try? BrowserURL(parsing: endSession)
        {
            next = url
        }
        logger.info("signed out", metadata: ["sub": "\(session?.subject ?? "-")"])
        return Answer(
            RedirectMatrix.answer(.signedOut(next: next), method: request.method, client: .navigation), cookies: cleared
        )
    }

    func userinfo(_ request: EndpointRequest, now: Date) async -> Answer {
        let session: Session?
        do {
            session = try await sessions.session(in: request.cookies, now: now)
        } catch {
            return storeUnavailable(request, error, retry: nil)
        }
        guard let session else {
            return Answer(
                RedirectMatrix.answer(
                    .unauthenticated(loginURL: startURL(defaultTarget)), method: request.method, client: .api))
        }
        let body =
            "{"
            + [
                "\"user\":\(JSON.string(session.user ?? session.subject))",
                "\"email\":\(session.email.map(JSON.string) ?? "null")",
                "\"groups\":[\(session.groups.map(JSON.string).joined(separator: ","))]",
                "\"preferred_username\":\(session.preferredUsername.map(JSON.string) ?? "null")",
            ].joined(separator: ",") + "}"
        return Answer(
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
    ) -> Answer {
        let failure = CallbackFailure(
            status: status, code: code, message: message, signInAgain: retry ?? startURL(defaultTarget))
        return Answer(
            RedirectMatrix.answer(.callbackFailed(failure), method: request.method, client: request.client),
            cookies: cookies)
    }

    /// The session store could not be asked (CONTRACT section 8): a 503 page; nobody is signed in or out.
    func storeUnavailable(_ request: EndpointRequest, _ error: SessionStoreError, retry: BrowserURL?) -> Answer {
        logger.error("the session store is unavailable", metadata: ["detail": "\(error)"])
        return failure(
            request, 503, "session-store-unavailable", "Sessions cannot be read or kept right now; try again shortly.",
            retry, [])
    }

    func providerUnavailable(_ request: EndpointRequest, detail: String) -> Answer {
        logger.error("the identity provider is unavailable", metadata: ["detail": "\(detail)"])
        let failure = CallbackFailure(
            status: 503, code: "provider-unavailable", message: "The identity provider cannot be reached right now.",
            signInAgain: startURL(defaultTarget))
        return Answer(
            RedirectMatrix.answer(.callbackFailed(failure), method: request.method, client: request.client))
    }

    func methodNotAllowed(_ request: EndpointRequest, _ allowed: [String]) -> Answer {
        RequestRefusal.methodNotAllowed(allowed: allowed).answer(method: request.method, client: request.client)
    }
}

extension BrowserURL {
    /// A URL Detour built or validated itself; `nil` only if it is unreadable.
    static func parse(_ text: String) -> BrowserURL? { try? BrowserURL(parsing: text) }
}
