import DetourGateway
import DetourOIDC
import DetourRedirect
import DetourSessions
import NIOHTTP1

/// A request as Detour's endpoints see it: already read whole (they take small bodies only).
public struct EndpointRequest: Sendable {
    public var method: String
    /// `/path?query` as sent.
    public var target: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// Whether the peer is a trusted proxy (`server.trusted_proxies`), whose forwarded headers are believed.
    public var fromTrustedProxy: Bool

    public init(
        method: String, target: String, headers: [(name: String, value: String)], body: [UInt8] = [],
        fromTrustedProxy: Bool = false
    ) {
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
        self.fromTrustedProxy = fromTrustedProxy
    }

    /// The request `head` begins, with `body` read whole.
    init(_ head: HTTPRequestHead, body: [UInt8] = []) {
        self.init(
            method: head.method.rawValue, target: head.uri, headers: head.headers.map { ($0.name, $0.value) },
            body: body)
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

extension Answer {
    /// The matrix's answer, with these cookies set.
    init(_ answer: MatrixAnswer, cookies: [SetCookie]) {
        self.init(answer, adding: cookies.map { ("Set-Cookie", $0.headerValue) })
    }
}
