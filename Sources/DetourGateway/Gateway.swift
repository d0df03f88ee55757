public import DetourPolicy
public import DetourRedirect

/// Detour's one decision path: a request is resolved once into a canonical value (``resolve(_:)``), then decided
/// once into a ``Step`` (``decide(_:_:credentials:)``), which the server performs. Pure: no I/O, no clock, no
/// server types, so every row of the matrix is tested here without a socket.
///
/// Guarantees:
/// - Detour's endpoints are matched in one table (``Endpoint``), on the normalised path, before anything else.
/// - Proxy and forward-auth are two modes of the same decision: a request forwarded with its method (F3) gets
///   exactly the answer it would get through the proxy, and 202 with the identity headers (F1) where the proxy
///   would forward it. Forward-auth without a forwarded method (nginx `auth_request`) gets 401 (F2) or 403 where
///   the proxy would redirect or answer a page, since `auth_request` passes on nothing else.
/// - A bearer token decides who a `bearer:` route's request is from, whatever the cookies say; a token that does
///   not check out is a 401 `invalid_token` (RFC 6750 3.1), or 503 when the provider cannot be asked.
/// - No value Detour adds to a request or an answer holds a control byte (CONTRACT section 7): one that would is a
///   502 instead, and the decision carries a warning for the log.
public struct Gateway: Sendable {
    public let engine: PolicyEngine
    /// How clients reach Detour when no trusted proxy says otherwise.
    public let scheme: BrowserURL.Scheme
    /// Where a person signs in when no target is known (F2's `login_url`).
    public let loginURL: BrowserURL

    /// Whether this gateway serves the plain-HTTP listener beside a TLS one (`server.http_listen`), where every
    /// request with a readable path and host is answered H1 (308 to https), Detour's endpoints included.
    public let upgradesToHTTPS: Bool

    /// - Parameter upgradesToHTTPS: for `server.http_listen`; `engine` must then redirect http to https.
    public init(
        engine: PolicyEngine, scheme: BrowserURL.Scheme, defaultTarget: BrowserURL, upgradesToHTTPS: Bool = false
    ) {
        precondition(!upgradesToHTTPS || engine.settings.redirectHTTPToHTTPS, "an upgrading gateway's engine redirects")
        self.engine = engine
        self.scheme = upgradesToHTTPS ? .http : scheme
        self.upgradesToHTTPS = upgradesToHTTPS
        loginURL = engine.startURL(returnTo: defaultTarget)
    }

    /// Normalises the target, matches Detour's endpoints, and reads a forward-auth request's forwarded one.
    public func resolve(_ request: GatewayRequest) -> Resolution {
        let path: RequestPath
        do {
            path = try RequestPath(normalizing: request.target)
        } catch {
            return .refuse(.badPath(error))
        }
        let settings = engine.settings
        switch upgradesToHTTPS
            ? nil : Endpoint.named(by: path.path, prefix: settings.prefix, health: settings.servesHealth)
        {
        case .forwardAuth?:
            return ForwardedRequest.resolve(request, ownPath: path, defaultScheme: scheme)
        case let endpoint?:
            return .endpoint(endpoint)
        case nil:
            let forwardedScheme =
                request.fromTrustedProxy && !upgradesToHTTPS
                ? request.headers.first("x-forwarded-proto").flatMap(BrowserURL.Scheme.init) : nil
            return .decide(
                CanonicalRequest(
                    method: request.method, scheme: forwardedScheme ?? scheme,
                    host: request.headers.first("host") ?? "",
                    target: request.target, path: path, headers: request.headers, peer: request.peer,
                    fromTrustedProxy: request.fromTrustedProxy), .proxy)
        }
    }

    /// The step for a resolved request in `mode`, given what is known of the requester.
    public func decide(_ request: CanonicalRequest, _ mode: Mode, credentials: Credentials) -> GatewayDecision {
        if upgradesToHTTPS {
            // Nothing the request carries matters on the plain listener: it only learns where https is. A request no
            // https URL can be made for is refused, never decided further (no route is served over plain http).
            let decision = decided(request, nil)
            guard decision.redirectsToHTTPS || decision.outcome == .badRequest else {
                let refusal = RequestRefusal.badRequest("no-https-url")
                return GatewayDecision(
                    .answer(refusal.answer(method: request.method, client: request.client)), label: "https-redirect")
            }
            return GatewayDecision(answer(decision, request), label: "https-redirect")
        }
        let forwardAuth = mode != .proxy
        let identity: Identity?
        var accessToken: String?
        switch credentials.bearer {
        case .accepted(let tokenIdentity, let token)?:
            identity = tokenIdentity
            accessToken = token
        case .refused(let reason)?:
            return refuse(
                .invalidToken(reason), request, label: forwardAuth ? "forward-auth" : "bearer",
                notice: Notice(warning: false, message: "bearer token refused", reason: reason))
        case .providerUnavailable?:
            return refuse(
                .providerUnavailable, request, label: forwardAuth ? "forward-auth" : "bearer",
                notice: Notice(warning: false, message: "bearer token refused", reason: "provider-unavailable"))
        case nil:
            identity = credentials.session?.identity
            accessToken = credentials.session?.accessToken
        }
        let refresh = credentials.bearer == nil && credentials.session?.needsRefresh == true
        if mode == .authenticationOnly {
            return refresh
                ? GatewayDecision(.check(.sessionRefresh), label: "forward-auth") : authenticated(identity, request)
        }
        // A bearer route's token decides instead of the cookies; otherwise a session about to expire is refreshed
        // first. Either way the gateway decides again with what the provider said.
        let token = credentials.bearer == nil && engine.takesBearerTokens ? request.bearerToken : nil
        let decision = decided(request, identity, presentsBearerToken: token != nil)
        let label = forwardAuth ? "forward-auth" : decision.rule ?? decision.reason
        if case .checkBearerToken(let mode) = decision.outcome, let token {
            return GatewayDecision(.check(.bearerToken(token, mode)), label: label)
        }
        if refresh { return GatewayDecision(.check(.sessionRefresh), label: label) }
        guard case .forwardAuth(let forwardedMethod) = mode else {
            return proxied(decision, request, accessToken: accessToken)
        }
        return forwardAuthAnswer(
            decision, request, identity: identity, accessToken: accessToken, forwardedMethod: forwardedMethod)
    }

    private func decided(
        _ request: CanonicalRequest, _ identity: Identity?, presentsBearerToken: Bool = false
    ) -> Decision {
        let headers = request.headers
        return engine.decide(
            PolicyEngine.Request(
                method: request.method, scheme: request.scheme, host: request.host, target: request.target,
                identity: identity, recognizesEndpoints: false, presentsBearerToken: presentsBearerToken,
                header: { headers.first($0) }),
            path: request.path)
    }

    // MARK: Proxy mode

    private func proxied(_ decision: Decision, _ request: CanonicalRequest, accessToken: String?) -> GatewayDecision {
        let label = decision.rule ?? decision.reason
        guard case .proxy(let url, let added, let passAccessToken) = decision.outcome else {
            return GatewayDecision(answer(decision, request), label: label)
        }
        var headers = added.map { (name: $0.name, value: $0.value) }
        if let forwardedFor = request.forwardedFor { headers.append(("X-Forwarded-For", forwardedFor)) }
        let passed = passAccessToken ? accessToken : nil
        if let passed { headers += IdentityHeaders.upstream.accessToken(passed) }
        if let refusal = unsendable(headers, request, label: label) { return refusal }
        return GatewayDecision(
            .proxy(
                UpstreamRequest(
                    url: url, route: decision.rule, addedHeaders: headers, replacesAuthorization: passed != nil,
                    publicScheme: request.scheme, publicHost: request.host, publicTarget: request.target)),
            label: label)
    }

    /// Detour's own answer to a decision that does not forward, per the matrix; A1 goes to the sign-in endpoint.
    private func answer(_ decision: Decision, _ request: CanonicalRequest) -> Step {
        let client = request.client
        switch decision.outcome {
        case .signIn(.redirectToProvider, let returnTo, _):
            return .signIn(returnTo: returnTo)
        case .signIn(.keepFormThenSeeOtherToStart, let returnTo, _):
            return .keepForm(returnTo: returnTo)
        case .notFound, .endpoint:
            return .answer(RequestRefusal.noRoute.answer(method: request.method, client: client))
        case .methodNotAllowed(let allowed):
            return .answer(
                RequestRefusal.methodNotAllowed(allowed: allowed).answer(method: request.method, client: client))
        case .badRequest:
            return .answer(RequestRefusal.badRequest(decision.reason).answer(method: request.method, client: client))
        case .checkBearerToken:
            // Decided only for a request whose token is checked before anything is answered; never let through.
            return .answer(RequestRefusal.invalidToken("unchecked").answer(method: request.method, client: client))
        case .proxy, .redirect, .signIn, .preflightDenied, .forbidden:
            guard let answer = decision.answer(method: request.method, client: client, authorizationURL: nil) else {
                preconditionFailure("the matrix answers every decision but A1 and forwarding: \(decision.reason)")
            }
            return .answer(Answer(answer))
        }
    }

    // MARK: Forward-auth mode

    /// Rows F1-F3 for a decision about the forwarded request.
    private func forwardAuthAnswer(
        _ decision: Decision, _ request: CanonicalRequest, identity: Identity?, accessToken: String?,
        forwardedMethod: Bool
    ) -> GatewayDecision {
        let label = "forward-auth"
        switch decision.outcome {
        case .proxy(_, _, let passAccessToken):
            return accepted(identity, accessToken: passAccessToken ? accessToken : nil, request)
        case .notFound where engine.policies.routes.isEmpty:
            // No routes at all: authentication only, as oauth2-proxy does.
            return authenticated(identity, request)
        case .notFound, .badRequest, .methodNotAllowed:
            return GatewayDecision(answer(decision, request), label: label)
        case .signIn(.keepFormThenSeeOtherToStart, _, let start) where forwardedMethod:
            // The body never reaches forward-auth, so nothing can be kept: row A2.
            let answer = RedirectMatrix.answer(
                .signInAfterSeeOther(start: start, formKept: false), method: request.method, client: request.client)
            return GatewayDecision(.answer(Answer(answer)), label: label)
        case _ where forwardedMethod:
            return GatewayDecision(answer(decision, request), label: label)
        case .forbidden, .preflightDenied:
            return GatewayDecision(
                .answer(Answer(status: 403, headers: [("Cache-Control", "no-store")])), label: label)
        case .redirect, .signIn, .endpoint, .checkBearerToken:
            return unauthorized(request)
        }
    }

    /// F1 when signed in, else F2.
    private func authenticated(_ identity: Identity?, _ request: CanonicalRequest) -> GatewayDecision {
        identity == nil ? unauthorized(request) : accepted(identity, accessToken: nil, request)
    }

    /// F1: 202 with the `X-Auth-Request-*` identity headers (none for a public path with no one signed in).
    private func accepted(_ identity: Identity?, accessToken: String?, _ request: CanonicalRequest) -> GatewayDecision {
        // oauth2-proxy's `allowed_*` parameters: signed in, but outside them, is 403 (a 401 would loop to sign-in).
        if let identity, !request.narrowing.admits(identity) {
            return GatewayDecision(
                .answer(Answer(status: 403, headers: [("Cache-Control", "no-store")])), label: "forward-auth",
                notice: Notice(warning: false, message: "forward-auth narrowed", reason: "not-allowed-by-query"))
        }
        var headers = identity?.headers(.forwardAuth) ?? []
        if let accessToken { headers += IdentityHeaders.forwardAuth.accessToken(accessToken) }
        if let refusal = unsendable(headers, request, label: "forward-auth") { return refusal }
        let answer = RedirectMatrix.answer(.forwardAuthSignedIn, method: request.method, client: .api)
        return GatewayDecision(.answer(Answer(answer, adding: headers)), label: "forward-auth")
    }

    /// F2: 401, with the sign-in URL for clients that read it.
    private func unauthorized(_ request: CanonicalRequest) -> GatewayDecision {
        let answer = RedirectMatrix.answer(
            .forwardAuthUnauthenticated(loginURL: loginURL), method: request.method, client: .api)
        return GatewayDecision(.answer(Answer(answer)), label: "forward-auth")
    }

    // MARK: Refusals

    private func refuse(
        _ refusal: RequestRefusal, _ request: CanonicalRequest, label: String, notice: Notice? = nil
    ) -> GatewayDecision {
        GatewayDecision(
            .answer(refusal.answer(method: request.method, client: request.client)), label: label, notice: notice)
    }

    /// A 502 in place of headers that cannot be sent, or `nil` when all can.
    private func unsendable(
        _ headers: [(name: String, value: String)], _ request: CanonicalRequest, label: String
    ) -> GatewayDecision? {
        guard let invalid = headers.first(where: { !HeaderValue.isSendable($0.value) }) else { return nil }
        return refuse(
            .unsendableHeader, request, label: label,
            notice: Notice(
                warning: true, message: "request refused: a header value cannot be sent", reason: invalid.name))
    }
}

/// Which header values can be sent (RFC 9110 5.5).
public enum HeaderValue {
    /// No CR, LF, NUL or other control byte but horizontal tab.
    public static func isSendable(_ value: String) -> Bool {
        let isControl = { (byte: UInt8) in (byte < 0x20 && byte != 0x09) || byte == 0x7F }
        return value.utf8.withContiguousStorageIfAvailable { !$0.contains(where: isControl) }
            ?? !value.utf8.contains(where: isControl)
    }
}
