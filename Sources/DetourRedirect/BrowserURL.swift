/// An absolute `http` or `https` URL exactly as a browser reads it.
///
/// A `BrowserURL` only comes from ``init(parsing:against:)``, which follows the WHATWG URL Standard's
/// basic URL parser (https://url.spec.whatwg.org/#concept-basic-url-parser), so ``href`` is the string
/// a browser would navigate to for the same input and base: checking this value is checking what the
/// browser follows. Inputs the standard would read differently in ways Detour does not reproduce
/// (other schemes, non-ASCII hosts beyond Latin-1 letters) are refused rather than guessed.
public struct BrowserURL: Sendable, Hashable, CustomStringConvertible {
    /// The scheme of an http(s) URL.
    public enum Scheme: String, Sendable, Hashable {
        case http
        case https

        /// The port a browser uses when the URL names none (RFC 9110 4.2).
        public var defaultPort: UInt16 { self == .http ? 80 : 443 }
    }

    /// The serialised URL (the standard's "href").
    public let href: String
    public let scheme: Scheme
    public let host: Host
    /// The port written in the URL, `nil` when it is absent or the scheme's default.
    public let port: UInt16?
    /// Whether the URL carries a username or password (`https://user:pass@host/`).
    public let hasCredentials: Bool
    // Byte offsets into href's UTF-8 view; the standard's serialiser lays components out in this order.
    let pathStart: Int
    let queryStart: Int?
    let fragmentStart: Int?

    /// The port a browser connects to.
    public var effectivePort: UInt16 { port ?? scheme.defaultPort }

    /// The serialised origin, `scheme://host[:port]`, with no trailing slash.
    public var origin: String {
        hasCredentials ? "\(scheme.rawValue)://\(host)" + (port.map { ":\($0)" } ?? "") : String(slice(0, pathStart))
    }

    /// The serialised path, always starting with `/`.
    public var path: Substring { slice(pathStart, queryStart ?? fragmentStart ?? href.utf8.count) }

    /// The serialised query without its `?`, or `nil` when the URL has none.
    public var query: Substring? { queryStart.map { slice($0 + 1, fragmentStart ?? href.utf8.count) } }

    /// The serialised fragment without its `#`, or `nil` when the URL has none.
    public var fragment: Substring? { fragmentStart.map { slice($0 + 1, href.utf8.count) } }

    /// The path, query and fragment: everything after the origin.
    public var pathQueryAndFragment: Substring { slice(pathStart, href.utf8.count) }

    public var description: String { href }

    /// Whether both URLs have the same origin (RFC 6454): scheme, host and port.
    public func isSameOrigin(as other: BrowserURL) -> Bool {
        scheme == other.scheme && host == other.host && port == other.port
    }

    private func slice(_ start: Int, _ end: Int) -> Substring {
        let utf8 = href.utf8
        return Substring(
            utf8[utf8.index(utf8.startIndex, offsetBy: start)..<utf8.index(utf8.startIndex, offsetBy: end)])
    }
}

extension BrowserURL {
    /// Why the WHATWG parser, or Detour's reading of it, refused an input.
    public struct ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        enum Code: Sendable, Hashable {
            case missingScheme
            case unsupportedScheme
            case missingHost
            case invalidHost
            case invalidPort
            case invalidIPv4
            case invalidIPv6
            case unsupportedInternationalHost
        }

        let code: Code
        /// The scheme, for ``unsupportedScheme``.
        public let scheme: String?

        init(_ code: Code, scheme: String? = nil) {
            self.code = code
            self.scheme = scheme
        }

        /// A relative reference with no base to resolve it against.
        public static let missingScheme = ParseError(.missingScheme)
        /// A scheme other than http or https; the URL may be valid, but it is not one Detour follows.
        public static let unsupportedScheme = ParseError(.unsupportedScheme)
        public static let missingHost = ParseError(.missingHost)
        /// A host with a forbidden code point, a bad percent-escape or an invalid punycode label.
        public static let invalidHost = ParseError(.invalidHost)
        public static let invalidPort = ParseError(.invalidPort)
        public static let invalidIPv4 = ParseError(.invalidIPv4)
        public static let invalidIPv6 = ParseError(.invalidIPv6)
        /// A non-ASCII host Detour cannot map exactly as a browser's IDNA tables would; refused, not guessed.
        public static let unsupportedInternationalHost = ParseError(.unsupportedInternationalHost)

        /// True when a browser would also fail to parse the input; false when Detour refuses something
        /// a browser may accept (another scheme, an international host it does not map).
        public var browserAlsoFails: Bool {
            switch code {
            case .unsupportedScheme, .unsupportedInternationalHost: false
            default: true
            }
        }

        public static func == (lhs: ParseError, rhs: ParseError) -> Bool { lhs.code == rhs.code }
        public func hash(into hasher: inout Hasher) { hasher.combine(code) }

        public var description: String {
            switch code {
            case .missingScheme: "relative reference without a base"
            case .unsupportedScheme: "unsupported scheme \(scheme ?? "")"
            case .missingHost: "missing host"
            case .invalidHost: "invalid host"
            case .invalidPort: "invalid port"
            case .invalidIPv4: "invalid IPv4 address"
            case .invalidIPv6: "invalid IPv6 address"
            case .unsupportedInternationalHost: "international host Detour does not map"
            }
        }
    }
}
