/// A row of the redirect matrix in CONTRACT section 6; each answer names the row that produced it.
public enum MatrixRow: String, Sendable, Hashable, CaseIterable {
    case a1 = "A1"
    case a2 = "A2"
    case a2b = "A2b"
    case a3 = "A3"
    case a4 = "A4"
    case a5 = "A5"
    case c1 = "C1"
    case c2 = "C2"
    case s1 = "S1"
    case s2 = "S2"
    case l1 = "L1"
    case p1 = "P1"
    case u1 = "U1"
    case h1 = "H1"
    case f1 = "F1"
    case f2 = "F2"
    case f3 = "F3"
}

/// What to do about a request from someone who is not signed in (rows A1-A4).
public enum SignInStep: Sendable, Hashable {
    /// A1: send the browser to the provider with 302 (the method is already GET or HEAD).
    case redirectToProvider
    /// A2: 303 to `/oauth2/start?rd=`: a 307 would carry the form body to the provider.
    case seeOtherToStart
    /// A2b: keep the same-origin form server-side, then 303 to `/oauth2/start?rd=`.
    case keepFormThenSeeOtherToStart
    /// A3, F2: 401 with `WWW-Authenticate: Bearer`; fetch() cannot follow a redirect to the provider.
    case unauthorized
    /// A4: a CORS preflight; the route's `preflight` setting decides, never a redirect.
    case preflight

    /// The row this step answers. Forward-auth answers the same rows for a forwarded request (F3), and 401 (F2)
    /// where the proxy in front did not say what the request was.
    public var row: MatrixRow {
        switch self {
        case .redirectToProvider: .a1
        case .seeOtherToStart: .a2
        case .keepFormThenSeeOtherToStart: .a2b
        case .unauthorized: .a3
        case .preflight: .a4
        }
    }
}

/// One header of a Detour answer.
public struct HeaderField: Sendable, Hashable {
    public let name: String
    public let value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// What Detour answers in a given situation: status, headers and body, and the matrix row behind them.
///
/// Every redirect has an absolute `Location` (the serialisation of a checked ``BrowserURL``),
/// `Cache-Control: no-store` and, except for HEAD, a short HTML body whose link is HTML-escaped.
/// Every other answer of the matrix is `no-store` too and comes as HTML to browsers, JSON otherwise.
public struct MatrixAnswer: Sendable, Hashable {
    public let row: MatrixRow
    public let status: Int
    /// All headers, `Location` included; `Content-Length` is left to the server.
    public let headers: [HeaderField]
    /// `nil` for HEAD requests and for answers without a body.
    public let body: String?

    /// The redirect target, for redirects.
    public var location: String? { headers.first { $0.name == "Location" }?.value }

    /// The first value of the named header (case-insensitive).
    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
}

/// The situations of the matrix that Detour answers itself.
public enum Situation: Sendable, Hashable {
    /// A1, or F3 for a navigation: the provider's authorization URL, state and all.
    case signInAtProvider(authorizationURL: BrowserURL)
    /// A2 (and A2b once the form is kept): `/oauth2/start?rd=<original URL>`.
    case signInAfterSeeOther(start: BrowserURL, formKept: Bool)
    /// A3, or F3 for an API request: the URL a person would open to sign in.
    case unauthenticated(loginURL: BrowserURL)
    /// F2: nginx `auth_request` turns the 401 into its own `error_page` redirect.
    case forwardAuthUnauthenticated(loginURL: BrowserURL)
    /// A4 with `preflight: deny`.
    case preflightDenied
    /// A5: signed in, denied by policy; `reason` is the policy's stable reason code.
    case forbidden(reason: String)
    /// C1: the return target was validated when sign-in started.
    case callbackSucceeded(returnTo: BrowserURL)
    /// C2: an error page, never a redirect, so never a loop.
    case callbackFailed(CallbackFailure)
    /// S2: sign-in started too often for the same target; a page that explains, no redirect.
    case signInLoop(target: BrowserURL, attempts: Int, window: String, signInAgain: BrowserURL)
    /// L1: signed out; the provider's end-session URL or the validated `rd`.
    case signedOut(next: BrowserURL)
    /// P1: a policy redirect rule, with its configured status.
    case policyRedirect(status: RedirectStatus, location: BrowserURL)
    /// H1: plain http with `redirect_http_to_https`; 308 keeps the method and body.
    case insecureRequest(httpsURL: BrowserURL)
    /// F1: signed in; the server adds the identity headers.
    case forwardAuthSignedIn
}

/// Why a callback failed (row C2), with the status to answer.
public struct CallbackFailure: Sendable, Hashable {
    /// 400 for a bad or replayed state, 401 for a refused ID token, 502/503 for the provider's faults.
    public let status: Int
    /// A stable kebab-case code, e.g. `state-mismatch`, `provider-error`, `token-exchange-failed`.
    public let code: String
    /// One sentence for the person who sees the page; no tokens or secrets.
    public let message: String
    /// `/oauth2/start?rd=<the original target>`.
    public let signInAgain: BrowserURL

    public init(status: Int, code: String, message: String, signInAgain: BrowserURL) {
        precondition((400...599).contains(status), "a failed callback answers 4xx or 5xx")
        self.status = status
        self.code = code
        self.message = message
        self.signInAgain = signInAgain
    }
}

/// The redirect matrix of CONTRACT section 6 as pure functions.
public enum RedirectMatrix {
    /// Chooses rows A1-A4 for a request from someone not signed in.
    ///
    /// - Parameter formKeepable: `return_to.preserve_post` is on and the request is a same-origin form
    ///   within the size limit (see ``isSameOriginSubmission(secFetchSite:origin:target:)``).
    public static func signInStep(method: String, client: ClientKind, formKeepable: Bool) -> SignInStep {
        if client == .preflight { return .preflight }
        if client == .api { return .unauthorized }
        if method == "GET" || method == "HEAD" { return .redirectToProvider }
        return formKeepable ? .keepFormThenSeeOtherToStart : .seeOtherToStart
    }

    /// Whether a form was sent from the target's own origin (A2b): `Sec-Fetch-Site: same-origin`, or,
    /// from browsers without Fetch Metadata, an `Origin` equal to the target's origin.
    public static func isSameOriginSubmission(secFetchSite: String?, origin: String?, target: BrowserURL) -> Bool {
        if let secFetchSite { return secFetchSite.lowercased() == "same-origin" }
        return origin == target.origin
    }

    /// The answer for `situation` to a request with `method` from `client`.
    public static func answer(_ situation: Situation, method: String, client: ClientKind) -> MatrixAnswer {
        let isHead = method == "HEAD"
        switch situation {
        case .signInAtProvider(let url):
            return redirect(.a1, .found, to: url, isHead: isHead)
        case .signInAfterSeeOther(let start, let formKept):
            return redirect(formKept ? .a2b : .a2, .seeOther, to: start, isHead: isHead)
        case .unauthenticated(let loginURL):
            return unauthenticated(.a3, loginURL: loginURL, isHead: isHead)
        case .forwardAuthUnauthenticated(let loginURL):
            return unauthenticated(.f2, loginURL: loginURL, isHead: isHead)
        case .preflightDenied:
            return MatrixAnswer(row: .a4, status: 403, headers: [noStore], body: nil)
        case .forbidden(let reason):
            return page(
                .a5, status: 403, client: client, isHead: isHead, title: "Access denied",
                message: "You are signed in, but this page is not open to you.",
                json: ["error": "forbidden", "reason": reason])
        case .callbackSucceeded(let returnTo):
            return redirect(.c1, .seeOther, to: returnTo, isHead: isHead)
        case .callbackFailed(let failure):
            return page(
                .c2, status: failure.status, client: client, isHead: isHead, title: "Sign-in failed",
                message: failure.message, link: (failure.signInAgain, "Sign in again"),
                json: ["error": failure.code, "message": failure.message, "login_url": failure.signInAgain.href])
        case .signInLoop(let target, let attempts, let window, let signInAgain):
            let message = """
                Sign-in was started \(attempts) times in \(window) for \(target.href) without the session \
                sticking, so Detour stopped redirecting. Usual causes: the browser refuses the session cookie \
                (a Secure cookie over plain http, a cookie_domain that does not cover this host, third-party \
                cookies blocked), or the application sends you back to sign in after Detour let you through.
                """
            return page(
                .s2, status: 200, client: client, isHead: isHead, title: "Sign-in loop stopped", message: message,
                link: (signInAgain, "Try once more"),
                json: ["error": "sign-in-loop", "target": target.href, "login_url": signInAgain.href])
        case .signedOut(let next):
            return redirect(.l1, .seeOther, to: next, isHead: isHead)
        case .policyRedirect(let status, let location):
            return redirect(.p1, status, to: location, isHead: isHead)
        case .insecureRequest(let httpsURL):
            return redirect(.h1, .permanentRedirect, to: httpsURL, isHead: isHead)
        case .forwardAuthSignedIn:
            return MatrixAnswer(row: .f1, status: 202, headers: [noStore], body: nil)
        }
    }

    private static let noStore = Page.noStore
    private static let html = Page.htmlType
    private static let json = Page.jsonType

    private static func redirect(_ row: MatrixRow, _ status: RedirectStatus, to target: BrowserURL, isHead: Bool)
        -> MatrixAnswer
    {
        let link = HTML.escape(target.href)
        let body = """
            <!DOCTYPE html>
            <html><head><meta charset="utf-8"><title>\(status)</title></head>
            <body><p>Continue to <a href="\(link)">\(link)</a>.</p></body></html>

            """
        return MatrixAnswer(
            row: row, status: status.rawValue, headers: [HeaderField("Location", target.href), noStore, html],
            body: isHead ? nil : body)
    }

    private static func unauthenticated(_ row: MatrixRow, loginURL: BrowserURL, isHead: Bool) -> MatrixAnswer {
        MatrixAnswer(
            row: row, status: 401, headers: [HeaderField("WWW-Authenticate", "Bearer"), noStore, json],
            body: isHead ? nil : JSON.object(["error": "unauthenticated", "login_url": loginURL.href]))
    }

    private static func page(
        _ row: MatrixRow, status: Int, client: ClientKind, isHead: Bool, title: String, message: String,
        link: (url: BrowserURL, text: String)? = nil, json fields: KeyValuePairs<String, String>
    ) -> MatrixAnswer {
        let (headers, body) = Page.render(
            title: title, message: message, link: link, json: fields.map { (name: $0.key, value: $0.value) },
            client: client, isHead: isHead)
        return MatrixAnswer(row: row, status: status, headers: headers, body: body)
    }
}
