/// A request for the identity provider: discovery, JWKS, token, userinfo, introspection.
public struct HTTPRequest: Sendable {
    public var method: String
    public var url: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]?

    public init(
        method: String = "GET", url: String, headers: [(name: String, value: String)] = [], body: [UInt8]? = nil
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
    }
}

/// A complete response: never a 3xx (those are ``CurlError/redirectRefused``), never larger than the
/// client's size limit.
public struct HTTPResponse: Sendable {
    public let status: Int
    /// In the order received, names as sent.
    public let headers: [(name: String, value: String)]
    public let body: [UInt8]

    public init(status: Int, headers: [(name: String, value: String)], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The first value of the named header, case-insensitive.
    public func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.first { $0.name.lowercased() == wanted }?.value
    }
}

/// Why a call to the provider did not produce a response. Errors compare by kind.
public struct CurlError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        /// The provider answered 3xx: Detour never follows a redirect from the provider (CONTRACT 7).
        case redirectRefused = "redirect-refused"
        case connectFailed = "connect-failed"
        case timedOut = "timed-out"
        case tlsFailed = "tls-failed"
        case responseTooLarge = "response-too-large"
        case unsupportedURL = "unsupported-url"
        case cancelled
        case failed
    }

    public let kind: Kind
    /// libcurl's explanation or the refused `Location`; never a token or secret.
    public let detail: String

    public init(_ kind: Kind, _ detail: String) {
        self.kind = kind
        self.detail = detail
    }

    public var description: String { "\(kind.rawValue): \(detail)" }

    public static func == (lhs: CurlError, rhs: CurlError) -> Bool { lhs.kind == rhs.kind }
    public func hash(into hasher: inout Hasher) { hasher.combine(kind) }
}
