/// Who is asking, as far as redirects are concerned (CONTRACT section 6).
///
/// A browser navigation may be redirected to the provider; an API request (fetch, XHR, scripts)
/// gets a 401 instead, because fetch() would follow a redirect into the provider and fail on CORS;
/// a CORS preflight carries no credentials and is never redirected.
public enum ClientKind: String, Sendable, Hashable {
    case navigation
    case api
    case preflight

    /// Classifies a request from its method and headers; `header` returns a header's value by
    /// case-insensitive name, or `nil`.
    ///
    /// - A preflight is `OPTIONS` with `Origin` and `Access-Control-Request-Method` (Fetch 3.3.3).
    /// - `Sec-Fetch-Mode: navigate` is a navigation: browsers set it and scripts cannot.
    /// - Any other `Sec-Fetch-Mode` (`cors`, `same-origin`, `no-cors`, `websocket`) is an API request.
    /// - Without Sec-Fetch headers (older browsers, curl, scripts): `Authorization` or
    ///   `X-Requested-With` make an API request; otherwise an `Accept` that lists `text/html` with a
    ///   non-zero quality is a navigation; anything else (`*/*`, `application/json`, none) is API.
    public static func classify(method: String, header: (String) -> String?) -> ClientKind {
        if method == "OPTIONS", header("origin") != nil, header("access-control-request-method") != nil {
            return .preflight
        }
        if let mode = header("sec-fetch-mode") {
            return mode.lowercased() == "navigate" ? .navigation : .api
        }
        if header("sec-fetch-site") != nil || header("sec-fetch-dest") != nil || header("sec-fetch-user") != nil
            || header("authorization") != nil || header("x-requested-with") != nil
        {
            return .api
        }
        return header("accept").map(acceptsHTML) == true ? .navigation : .api
    }

    /// Whether an `Accept` value lists `text/html` with a quality above zero (RFC 9110 12.5.1).
    static func acceptsHTML(_ accept: String) -> Bool {
        accept.split(separator: ",").contains { range in
            let parameters = range.split(separator: ";").map { $0.trimmingSpaces.lowercased() }
            guard parameters.first == "text/html" else { return false }
            let quality = parameters.dropFirst().first { $0.hasPrefix("q=") }.flatMap { Double($0.dropFirst(2)) }
            return (quality ?? 1) > 0
        }
    }
}

extension Substring {
    /// Without leading and trailing spaces and tabs (HTTP's optional whitespace).
    var trimmingSpaces: Substring {
        var trimmed = self
        while trimmed.first == " " || trimmed.first == "\t" { trimmed.removeFirst() }
        while trimmed.last == " " || trimmed.last == "\t" { trimmed.removeLast() }
        return trimmed
    }
}
