public import DetourPolicy
public import DetourRedirect

/// What the gateway decided to do with one request: the one value the server performs.
public enum Step: Sendable {
    /// Detour answers, as this (a matrix answer, a forward-auth answer, a refusal rendered for the client).
    case answer(Answer)
    /// Row A1: send the browser to the provider, to come back to `returnTo`. The sign-in endpoint performs it: it
    /// checks the target as it checks any `rd`, stops loops (S2) and makes the authorization request.
    case signIn(returnTo: BrowserURL)
    /// Row A2b: keep the form the request carries (its body, read whole), then send the browser to sign in; after it,
    /// the user is asked before the form is sent to `returnTo` again.
    case keepForm(returnTo: BrowserURL)
    /// Forward to the upstream (in proxy mode only: forward-auth answers 202 instead).
    case proxy(UpstreamRequest)
    /// Ask the provider first, off the event loop, then decide again with what it said.
    case check(CredentialCheck)
}

/// What must be asked of the provider before a request can be decided.
public enum CredentialCheck: Sendable, Hashable {
    /// A route with `bearer:` and a bearer token: the token, not the cookies, says who this is.
    case bearerToken(String, BearerMode)
    /// The session's access token is about to expire: refresh it, or treat the request as signed out.
    case sessionRefresh
}

/// What Detour knows of the requester when it decides: the session the cookies held and, once checked, the bearer
/// token.
public struct Credentials: Sendable {
    public var session: SessionCredentials?
    /// `nil` until a bearer token was checked (``CredentialCheck/bearerToken(_:_:)``).
    public var bearer: BearerCheck?

    public init(session: SessionCredentials? = nil, bearer: BearerCheck? = nil) {
        self.session = session
        self.bearer = bearer
    }
}

/// A session's identity and tokens, as far as decisions need them.
public struct SessionCredentials: Sendable {
    public let identity: Identity
    public let accessToken: String?
    /// Its access token expires within `session.refresh_before` and it has a refresh token.
    public let needsRefresh: Bool

    public init(identity: Identity, accessToken: String?, needsRefresh: Bool) {
        self.identity = identity
        self.accessToken = accessToken
        self.needsRefresh = needsRefresh
    }
}

/// What the provider said about a bearer token.
public enum BearerCheck: Sendable {
    case accepted(Identity, token: String)
    /// Not valid, or not active; `reason` is a code safe to show.
    case refused(reason: String)
    case providerUnavailable
}

/// A request on its way to the upstream, as the gateway decided it.
///
/// Guarantees: ``addedHeaders`` hold no value that cannot be sent (no control byte: a claim cannot add a header);
/// the upstream is reached at ``url``, whose path is the normalised one that was routed.
public struct UpstreamRequest: Sendable {
    /// The route's upstream origin, then the normalised path and query.
    public let url: String
    /// The route that decided (its upstream TLS settings are found by this name).
    public let route: String?
    /// What Detour adds to the client's headers, in order: identity, `X-Forwarded-Proto`, `-Host`, `-For`, and the
    /// access token where the route passes it.
    public let addedHeaders: [(name: String, value: String)]
    /// The client's own `Authorization` is dropped: the route passes the access token in its place.
    public let replacesAuthorization: Bool
    /// Where the client sent the request, for moving an upstream's `Location` to the public origin (row U1).
    public let publicScheme: BrowserURL.Scheme
    public let publicHost: String
    public let publicTarget: String
}

/// A step, with the label it is counted under (`detour_requests_total{route}`) and, when an operator should hear
/// about it, a line for the log.
public struct GatewayDecision: Sendable {
    public let step: Step
    public let label: String
    public let notice: Notice?

    init(_ step: Step, label: String, notice: Notice? = nil) {
        self.step = step
        self.label = label
        self.notice = notice
    }
}

/// A line for the log about a decision.
public struct Notice: Sendable, Hashable {
    public let warning: Bool
    public let message: String
    public let reason: String
}
