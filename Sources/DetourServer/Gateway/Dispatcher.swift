import DetourGateway
import DetourOIDC
import DetourPolicy
import DetourRedirect
import DetourSessions
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// Performs the gateway's decisions (``Gateway``) on the connection's event loop: builds the request the gateway
/// resolves, looks the session up, asks the provider off the loop when a step says so, and turns each step into a
/// ``Dispatch`` for the connection.
///
/// Guarantees: every decision is the pure gateway's, made once per request (again only after the provider was
/// asked); each response is counted as `detour_requests_total{route,status}` and Detour's own redirects as
/// `detour_redirects_total{status}`; Set-Cookie headers from a refresh reach the client whatever the answer.
///
/// A class: a request's closures and steps hold one reference to it, not a copy of its fields.
final class Dispatcher: Sendable {
    let gateway: Gateway
    let endpoints: Endpoints
    let sessions: SessionCookies
    let trustedProxies: TrustedProxies
    let authentication: Authentication
    let upstreams: Upstreams
    private let counters: RequestCounters
    /// Bodies of forms being read to be kept across sign-in (row A2b), held in memory meanwhile.
    private let keptForms: ByteBudget
    /// The configuration generation this dispatcher decides for (``Generation/number``).
    let generation: Int
    /// ``PolicyEngine/origin(scheme:host:)``, captured once: a response's rewriting closure holds one reference to it
    /// rather than a copy of the engine.
    let origin: @Sendable (BrowserURL.Scheme, String) -> String

    init(
        gateway: Gateway, endpoints: Endpoints, sessions: SessionCookies, trustedProxies: TrustedProxies,
        authentication: Authentication, upstreams: Upstreams, counters: RequestCounters, keptForms: ByteBudget,
        generation: Int
    ) {
        self.gateway = gateway
        self.endpoints = endpoints
        self.sessions = sessions
        self.trustedProxies = trustedProxies
        self.authentication = authentication
        self.upstreams = upstreams
        self.counters = counters
        self.keptForms = keptForms
        self.generation = generation
        let engine = gateway.engine
        origin = { scheme, host in engine.origin(scheme: scheme, host: host) }
    }

    func dispatch(_ head: HTTPRequestHead, _ connection: ConnectionInfo) -> Dispatch {
        let request = GatewayRequest(
            method: head.method.rawValue, target: head.uri, headers: head.headers, peer: connection.remoteAddress,
            fromTrustedProxy: connection.trustsPeer(trustedProxies, generation: generation))
        let requestID = RequestID.of(head.headers, trusted: request.fromTrustedProxy)
        connection.current = (requestID, RequestID.client(head.headers, connection, trusted: request.fromTrustedProxy))
        switch gateway.resolve(request) {
        case .endpoint(let endpoint):
            let trusted = request.fromTrustedProxy
            return counted(
                .respond { [endpoints] in
                    var request = $0
                    request.fromTrustedProxy = trusted
                    return await endpoints.handle(endpoint, request)
                }, label: "detour")
        case .refuse(let refusal):
            return counted(.respond { refusal.answer(method: $0.method, client: $0.client) }, label: refusal.code)
        case .decide(let canonical, let mode):
            let now = Date()
            switch signedIn(head.headers, on: connection, now: now) {
            case .known(let session, let identity):
                return decide(
                    canonical, mode, head, requestID: requestID, session: session, identity: identity, now: now,
                    memo: connection)
            case .ask(let cookie):
                // A server-side session this replica has not read yet: the store is asked off the event loop.
                return .later { [self] in
                    let now = Date()
                    do {
                        let session = try await sessions.store.session(cookie, now: now)
                        return decide(
                            canonical, mode, head, requestID: requestID, session: session,
                            identity: session.map(Self.identity), now: now, memo: nil)
                    } catch {
                        authentication.logger.error(
                            "the session store is unavailable", metadata: ["detail": "\(error)"])
                        let refusal = RequestRefusal.sessionStoreUnavailable
                        return counted(
                            .respond { refusal.answer(method: $0.method, client: $0.client) }, label: refusal.code)
                    }
                }
            }
        }
    }

    /// The gateway's decision for a resolved request and the session it carries, performed.
    private func decide(
        _ canonical: CanonicalRequest, _ mode: Mode, _ head: HTTPRequestHead, requestID: String, session: Session?,
        identity: Identity?, now: Date, memo: ConnectionInfo?
    ) -> Dispatch {
        let credentials = Credentials(
            session: session.flatMap { session in
                identity.map {
                    SessionCredentials(
                        identity: $0, accessToken: session.accessToken,
                        needsRefresh: authentication.refresher.needsRefresh(session, now: now))
                }
            })
        let exchange = Exchange(head: head, request: canonical, mode: mode, session: session, requestID: requestID)
        return perform(gateway.decide(canonical, mode, credentials: credentials), exchange, credentials, memo: memo)
    }

    /// One request between its decisions: what deciding again after a check needs.
    struct Exchange: Sendable {
        var head: HTTPRequestHead
        let request: CanonicalRequest
        let mode: Mode
        let session: Session?
        /// `X-Request-Id`, sent upstream.
        let requestID: String
        var cookies: [SetCookie] = []
        /// Who is signed in, once decided (the access log's `user`).
        var user: String?
    }

    /// - Parameter memo: the connection whose memos may be used: only on its event loop, so `nil` off it.
    private func perform(
        _ decision: GatewayDecision, _ exchange: Exchange, _ credentials: Credentials, memo: ConnectionInfo?
    ) -> Dispatch {
        if let notice = decision.notice {
            authentication.logger.log(
                level: notice.warning ? .warning : .info, "\(notice.message)", metadata: ["reason": "\(notice.reason)"])
        }
        var noted = exchange
        noted.user = Self.user(credentials)
        let exchange = noted
        let user = exchange.user
        let cookies = exchange.cookies.map { (name: "Set-Cookie", value: $0.headerValue) }
        switch decision.step {
        case .answer(var answer):
            answer.headers += cookies
            return counted(.answer(answer), label: decision.label, user: user)
        case .signIn(let returnTo):
            // The target was built from the Host header: it is checked like any rd, or a forged Host would make the
            // 303 after sign-in an open redirect. Row A1 needs the head alone: a body is not waited for.
            var asking = EndpointRequest(exchange.head)
            // In forward-auth the browser is on the forwarded host, not on the one the proxy in front asked with
            // (Traefik asks with the auth address): the state cookie is set where the browser is.
            if exchange.mode != .proxy {
                asking.headers = asking.headers.filter { !ProxyHeaders.name($0.name, spells: "host") }
                asking.headers.append(("Host", exchange.request.host))
            }
            switch endpoints.beginSignIn(asking, requested: returnTo.href, now: Date()) {
            case .answered(var answer):
                answer.headers += cookies
                return counted(.answer(answer), label: decision.label, user: user)
            case .later(let answer):
                return .later { [self] in
                    var answer = await answer()
                    answer.headers += cookies
                    return counted(.answer(answer), label: decision.label, user: user)
                }
            }
        case .keepForm(let returnTo):
            // The body is read whole: only while the process-wide budget for such bodies has room (else row A2).
            let length = exchange.head.headers.first(name: "content-length").flatMap(Int.init) ?? 0
            guard let reservation = keptForms.reserve(length) else {
                authentication.logger.warning("form not kept across sign-in: too many kept forms are being read")
                var answer = Answer(
                    RedirectMatrix.answer(
                        .signInAfterSeeOther(start: endpoints.startURL(returnTo), formKept: false),
                        method: exchange.request.method, client: exchange.request.client))
                answer.headers += cookies
                return counted(.answer(answer), label: decision.label, user: user)
            }
            return counted(
                .respondReading(upTo: gateway.engine.settings.preservedFormLimit) { [endpoints] in
                    var answer = await endpoints.keepForm($0, returnTo: returnTo, now: Date())
                    withExtendedLifetime(reservation) { answer.headers += cookies }
                    return answer
                }, label: decision.label, user: user)
        case .proxy(let upstream):
            if exchange.head.method == .POST, let key = armedForm(exchange.head, upstream) {
                return resubmission(of: key, upstream, exchange, label: decision.label)
            }
            return plan(upstream, exchange, label: decision.label, memo: memo)
        case .check(.bearerToken(let token, let mode)):
            guard let tokens = authentication.tokens(for: mode) else {
                preconditionFailure("the gateway asks for a bearer check only on a bearer route")
            }
            let decideWith: @Sendable (TokenVerdict, ConnectionInfo?) -> Dispatch = { [self] verdict, memo in
                var credentials = credentials
                credentials.bearer = verdict.check(presenting: token)
                return perform(
                    gateway.decide(exchange.request, exchange.mode, credentials: credentials), exchange, credentials,
                    memo: memo)
            }
            // A token seen before is answered here, on the event loop; a new one is checked off it.
            if let known = tokens.cached(token, now: Date()) { return decideWith(known, memo) }
            return .later { decideWith(await tokens.check(token, now: Date()), nil) }
        case .check(.sessionRefresh):
            return .later { [self] in
                let now = Date()
                let (renewed, cookies) = await refreshed(exchange.session, exchange.head, now: now)
                var credentials = credentials
                credentials.session = renewed.map {
                    SessionCredentials(identity: Self.identity($0), accessToken: $0.accessToken, needsRefresh: false)
                }
                var refreshedExchange = exchange
                refreshedExchange.cookies = cookies
                return perform(
                    gateway.decide(exchange.request, exchange.mode, credentials: credentials), refreshedExchange,
                    credentials, memo: nil)
            }
        }
    }

    /// The request for the upstream, from the client's head and what the gateway adds; `body`, when given, goes in
    /// place of the client's.
    func plan(
        _ upstream: UpstreamRequest, _ exchange: Exchange, label: String, memo: ConnectionInfo?, body: ByteBuffer? = nil
    ) -> Dispatch {
        guard let route = upstreams.route(upstream, memo: memo) else {
            return counted(
                .respond { RequestRefusal.badUpstream.answer(method: $0.method, client: $0.client) }, label: label)
        }
        let head = exchange.head
        var fields = ProxyHeaders.forUpstream(head.headers, cookiePrefix: sessions.policy.sessionName)
        if upstream.replacesAuthorization { fields.removeAll { ProxyHeaders.name($0.0, spells: "authorization") } }
        for (name, value) in upstream.addedHeaders { fields.append((name, value)) }
        fields.removeAll { ProxyHeaders.name($0.0, spells: "x-request-id") }
        fields.append(("X-Request-Id", exchange.requestID))
        var upstreamHead = HTTPRequestHead(version: .http1_1, method: head.method, uri: String(route.target))
        upstreamHead.headers = HTTPHeaders(fields)
        let setCookies = exchange.cookies.map { ("Set-Cookie", $0.headerValue) }
        let (url, scheme, host, target, origin) = (
            upstream.url, upstream.publicScheme, upstream.publicHost, upstream.publicTarget, origin
        )
        return .proxy(
            ProxyPlan(
                host: route.host, port: route.port, head: upstreamHead,
                // Captures the counters, not the dispatcher: a response keeps alive only what it needs.
                rewriteResponse: { [counters] head in
                    counters.count(
                        route: label, decision: AccessNote.proxied, status: Int(head.status.code), redirect: false)
                    // The public URL is spelt out only when a response carries a Location.
                    var rewritten = ProxyHeaders.forClient(
                        head, upstreamRequest: url, publicRequest: origin(scheme, host) + target)
                    rewritten.added = setCookies
                    return rewritten
                },
                timeouts: upstreams.timeouts, tls: route.tls, body: body,
                note: AccessNote(route: label, decision: AccessNote.proxied, user: exchange.user)))
    }

    /// `dispatch`, counted as `detour_requests_total{route,status}` and noted for the access log (`label` as the
    /// route, the answer's matrix row or else `label` as the decision, `user`).
    func counted(_ dispatch: Dispatch, label: String, user: String? = nil) -> Dispatch {
        let counters = self.counters
        @Sendable func noted(_ answer: Answer) -> Answer {
            var answer = answer
            answer.note = AccessNote(route: label, decision: answer.note?.decision ?? label, user: user)
            return answer
        }
        func counting(_ handler: @escaping @Sendable (EndpointRequest) async -> Answer)
            -> @Sendable (EndpointRequest) async -> Answer
        {
            { request in
                let response = noted(await handler(request))
                counters.count(
                    route: label, decision: response.note?.decision ?? label, status: response.status, redirect: true)
                return response
            }
        }
        switch dispatch {
        case .answer(let answer):
            let answer = noted(answer)
            counters.count(
                route: label, decision: answer.note?.decision ?? label, status: answer.status, redirect: true)
            return .answer(answer)
        case .respond(let handler): return .respond(counting(handler))
        case .respondReading(let limit, let handler): return .respondReading(upTo: limit, counting(handler))
        case .proxy, .later: return dispatch
        }
    }

    /// The session with fresh tokens and the cookies that store it, or `nil` and the cookies that end it.
    private func refreshed(_ session: Session?, _ head: HTTPRequestHead, now: Date) async -> (Session?, [SetCookie]) {
        let existing = RequestCookies(headers: head.headers["cookie"])
        guard let session, let renewed = await authentication.refresher.refreshed(session, now: now) else {
            // A session the provider no longer refreshes is over, in the store too (best effort: the cookie goes).
            let ended = sessions.policy.delete(name: sessions.policy.sessionName, existing: existing)
            return (nil, (try? await sessions.end(in: existing, now: now)) ?? ended)
        }
        do {
            return (renewed, try await sessions.replace(renewed, existing: existing, now: now))
        } catch .tooLarge(let error) {
            // Fresh tokens that no longer fit end the session; signing in again explains why (a 500 page).
            authentication.logger.warning(
                "session ended: the refreshed session is too large for cookies", metadata: ["detail": "\(error)"])
            return (nil, sessions.policy.delete(name: sessions.policy.sessionName, existing: existing))
        } catch {
            // Fresh tokens this request may use though they could not be kept: the next one refreshes again (the
            // refresher remembers this answer for a while, so the provider is not asked twice).
            authentication.logger.warning("refreshed session not kept", metadata: ["detail": "\(error)"])
            return (renewed, [])
        }
    }

    /// Who a request's cookies sign in, as far as it is known on the event loop.
    private enum SignedIn {
        case known(Session?, Identity?)
        /// The session cookie's value, which only the shared store can open.
        case ask(String)
    }

    /// The session the cookies hold and its identity for policies. A connection remembers the last cookie
    /// header it opened: a browser sends the same one with each request, and only the expiry is checked again,
    /// until the store reports a session ended or replaced anywhere.
    private func signedIn(_ headers: HTTPHeaders, on connection: ConnectionInfo, now: Date) -> SignedIn {
        let changes = sessions.store.changes
        if let memo = connection.lastSession, memo.changes == changes,
            Self.cookieValues(in: headers, are: memo.cookieHeaders)
        {
            guard let session = memo.session, session.expiry > now else { return .known(nil, nil) }
            return .known(session, memo.identity)
        }
        let cookieHeaders = headers["cookie"]
        var session: Session?
        if !cookieHeaders.isEmpty, let value = sessions.sessionValue(in: RequestCookies(headers: cookieHeaders)) {
            switch sessions.store.cached(value, now: now) {
            case .known(let known): session = known
            case .unknown: return .ask(value)
            }
        }
        let identity = session.map(Self.identity)
        connection.lastSession = OpenedCookies(
            cookieHeaders: cookieHeaders, session: session, identity: identity, changes: changes)
        return .known(session, identity)
    }

    /// Whether the request's `Cookie` headers hold `values`, in order: compared where they are, without building
    /// their list on every request.
    private static func cookieValues(in headers: HTTPHeaders, are values: [String]) -> Bool {
        var expected = values[...]
        for (name, value) in headers where ProxyHeaders.name(name, spells: "cookie") {
            guard expected.first == value else { return false }
            expected = expected.dropFirst()
        }
        return expected.isEmpty
    }

    /// Who the credentials say is asking: the bearer token's identity, else the session's.
    static func user(_ credentials: Credentials) -> String? {
        if case .accepted(let identity, _)? = credentials.bearer { return identity.subject }
        return credentials.session?.identity.subject
    }

    static func identity(_ session: Session) -> Identity {
        Identity(
            subject: session.user ?? session.subject, email: session.email, emailVerified: session.emailVerified,
            groups: session.groups, preferredUsername: session.preferredUsername, claims: session.claims)
    }
}

extension HTTPHeaders: RequestHeaders {
    public func first(_ name: String) -> String? { first(name: name) }
    public func all(_ name: String) -> [String] { self[name] }
}
