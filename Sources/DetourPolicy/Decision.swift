public import DetourRedirect

/// What the policy engine decided for one request, with a stable reason code.
///
/// "Needs to sign in" (``Outcome/signIn(_:returnTo:start:)``) and "forbidden"
/// (``Outcome/forbidden``) are different outcomes with different reasons, never one "denied".
public struct Decision: Sendable, Hashable {
    public enum Outcome: Sendable, Hashable {
        /// Forward to `upstream` (origin + normalised path + query) with these headers added.
        case proxy(upstream: String, headers: [HeaderField], passAccessToken: Bool)
        /// A policy redirect rule (P1) or the http-to-https redirect (H1).
        case redirect(RedirectStatus, location: BrowserURL)
        /// Not signed in: rows A1-A3 as chosen by the redirect matrix.
        case signIn(SignInStep, returnTo: BrowserURL, start: BrowserURL)
        /// A `bearer:` route asked with a token (``PolicyEngine/Request/presentsBearerToken``): the decision waits
        /// for who the token names. Never the answer to a request decided without one (`policy test`).
        case checkBearerToken(BearerMode)
        /// A CORS preflight on a route with `preflight: deny` (A4).
        case preflightDenied
        /// Signed in, and no allow rule grants access (A5).
        case forbidden
        case notFound
        case methodNotAllowed(allowed: [String])
        case badRequest
        /// One of Detour's own endpoints (`/oauth2/...`, `/ping`, `/ready`, `/metrics`).
        case endpoint(Endpoint)
    }

    public let outcome: Outcome
    /// Stable, kebab-case: `proxy-allowed`, `sign-in-required`, `forbidden`, `no-route`,
    /// `bad-path-encoded-slash`... (docs/policies.md lists them all).
    public let reason: String
    /// The route or redirect rule that decided, if any.
    public let rule: String?

    /// The HTTP status Detour answers with; 200 for a proxied request (what `policy test` compares), 401 for a token
    /// not checked yet.
    public var status: Int {
        switch outcome {
        case .proxy: 200
        case .endpoint(let endpoint): endpoint == .unknown ? 404 : 200
        case .redirect(let status, _): status.rawValue
        case .signIn(let step, _, _):
            switch step {
            case .redirectToProvider: 302
            case .seeOtherToStart, .keepFormThenSeeOtherToStart: 303
            case .unauthorized, .preflight: 401
            }
        case .checkBearerToken: 401
        case .preflightDenied, .forbidden: 403
        case .notFound: 404
        case .methodNotAllowed: 405
        case .badRequest: 400
        }
    }
}

extension Decision {
    /// The reason of row H1's decision, the redirect from plain http to https.
    static let httpsRedirectReason = "https-redirect"

    /// Whether this is row H1's redirect to https, not a policy redirect rule (P1).
    public var redirectsToHTTPS: Bool {
        if case .redirect = outcome { reason == Self.httpsRedirectReason } else { false }
    }

    /// The response Detour sends for this decision, per the redirect matrix; `nil` for proxied requests,
    /// Detour's own endpoints, a token not checked yet, and for row A1 when `authorizationURL` is not known
    /// (`policy test` runs without the provider).
    public func answer(method: String, client: ClientKind, authorizationURL: BrowserURL?) -> MatrixAnswer? {
        let situation: Situation
        switch outcome {
        case .proxy, .endpoint, .notFound, .methodNotAllowed, .badRequest, .checkBearerToken:
            return nil
        case .redirect(let status, let location):
            situation =
                redirectsToHTTPS
                ? .insecureRequest(httpsURL: location) : .policyRedirect(status: status, location: location)
        case .signIn(let step, _, let start):
            switch step {
            case .redirectToProvider:
                guard let authorizationURL else { return nil }
                situation = .signInAtProvider(authorizationURL: authorizationURL)
            case .seeOtherToStart: situation = .signInAfterSeeOther(start: start, formKept: false)
            case .keepFormThenSeeOtherToStart: situation = .signInAfterSeeOther(start: start, formKept: true)
            case .unauthorized, .preflight: situation = .unauthenticated(loginURL: start)
            }
        case .preflightDenied:
            situation = .preflightDenied
        case .forbidden:
            situation = .forbidden(reason: reason)
        }
        return RedirectMatrix.answer(situation, method: method, client: client)
    }
}
