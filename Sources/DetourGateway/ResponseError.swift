public import DetourPolicy
public import DetourRedirect

/// A failure that is answered, not thrown past the client: every error Detour answers conforms, and
/// ``answer(method:client:)`` is the one rendering of them all (a page for a browser navigation, JSON otherwise, by
/// the matrix's rule).
///
/// Guarantees: the body says what ``code`` and ``message`` say and nothing else (no stack, no detail of the cause
/// that the log does not need to hide); every answer is `no-store`.
public protocol ResponseError: Error, Sendable {
    /// 4xx or 5xx.
    var status: Int { get }
    /// Stable and machine-readable (kebab-case, or RFC 6750's `invalid_token`): the JSON `error` and the metric label.
    var code: String { get }
    /// One sentence for the person who sees the page.
    var message: String { get }
    /// Headers the status calls for: `Allow` with 405, `WWW-Authenticate` with 401, `Retry-After` with 503.
    var headers: [HeaderField] { get }
    /// The JSON fields after `error`; by default the message.
    var details: [(name: String, value: String)] { get }
}

extension ResponseError {
    public var headers: [HeaderField] { [] }
    public var details: [(name: String, value: String)] { [("message", message)] }

    /// The answer to a request with `method` from `client`.
    public func answer(method: String, client: ClientKind) -> Answer {
        let (pageHeaders, body) = Page.render(
            title: "\(status) \(Self.reasonPhrase(status))", message: message, json: [("error", code)] + details,
            client: client, isHead: method == "HEAD")
        return Answer(
            status: status, headers: (headers + pageHeaders).map { ($0.name, $0.value) }, body: body ?? "")
    }

    /// RFC 9110 section 15's reason phrase, for the page's title.
    static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 413: "Content Too Large"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        default: status < 500 ? "Client Error" : "Server Error"
        }
    }
}

/// Why the gateway refused a request: comparable by ``code``, made only through its named cases.
public struct RequestRefusal: ResponseError, Hashable {
    public let status: Int
    public let code: String
    public let message: String
    public let headers: [HeaderField]
    private let reason: String?

    private init(_ status: Int, _ code: String, _ message: String, headers: [HeaderField] = [], reason: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.reason = reason
    }

    public var details: [(name: String, value: String)] {
        reason.map { [("reason", $0)] } ?? [("message", message)]
    }

    /// A target that two servers could read two ways, or no path at all (CONTRACT section 7).
    public static func badPath(_ rejection: RequestPath.Rejection) -> RequestRefusal {
        RequestRefusal(400, rejection.rawValue, "The request's address is malformed or ambiguous.")
    }

    /// The policy engine refused the request as malformed (`bad-host`...).
    public static func badRequest(_ reason: String) -> RequestRefusal {
        RequestRefusal(400, reason, "The request is malformed (\(reason)).")
    }

    public static let noRoute = RequestRefusal(404, "no-route", "Nothing is served at this address.")
    /// Row A2b: a re-submission whose kept form was sent already or expired; nothing is sent.
    public static let formNotKept = RequestRefusal(
        409, "form-not-kept", "This form was sent already, or it waited too long; nothing was sent.")
    public static let noEndpoint = RequestRefusal(404, "no-endpoint", "Detour has no such endpoint.")

    public static func methodNotAllowed(allowed: [String]) -> RequestRefusal {
        RequestRefusal(
            405, "method-not-allowed", "This address does not take this method.",
            headers: [HeaderField("Allow", allowed.joined(separator: ", "))])
    }

    /// A forwarded URL from a peer that is not a trusted proxy: judging the request as if it were for `/` would skip
    /// the rules of the path it really is for.
    public static let untrustedForwardedURL = RequestRefusal(
        400, "forwarded-url-untrusted", "Forwarded request URLs are believed from trusted proxies only.")
    /// Two forwarded values that disagree: a request Detour cannot tell apart from a forgery.
    public static let conflictingForwardedRequest = RequestRefusal(
        400, "forwarded-request-conflict", "The proxy in front forwarded two different requests.")
    public static let unreadableForwardedURL = RequestRefusal(
        400, "forwarded-url-unreadable", "The forwarded request URL is not a URL.")

    /// A value Detour would send holds a control byte (most likely a claim with a line break): never split into two
    /// headers (CONTRACT section 7).
    public static let unsendableHeader = RequestRefusal(
        502, "unsendable-header",
        "Detour cannot pass this on: a header value, most likely from a claim, holds a character headers cannot carry.")
    /// A route's upstream that cannot be reached as configured (an https upstream without its TLS).
    public static let sessionStoreUnavailable = RequestRefusal(
        503, "session-store-unavailable", "Sessions cannot be read right now; try again shortly.")
    public static let badUpstream = RequestRefusal(502, "bad-upstream", "The application's address is unusable.")

    /// RFC 6750 3.1: a bearer token that did not check out; `reason` is safe to show.
    public static func invalidToken(_ reason: String) -> RequestRefusal {
        RequestRefusal(
            401, "invalid_token", "The bearer token was refused (\(reason)).",
            headers: [HeaderField("WWW-Authenticate", "Bearer error=\"invalid_token\"")], reason: reason)
    }

    /// The provider could not be asked about a bearer token.
    public static let providerUnavailable = RequestRefusal(
        503, "temporarily_unavailable", "The identity provider cannot be reached right now.",
        headers: [HeaderField("Retry-After", "5")], reason: "provider-unavailable")

    public static func == (lhs: RequestRefusal, rhs: RequestRefusal) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
}
