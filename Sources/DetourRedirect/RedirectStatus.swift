/// The redirect status codes Detour sends or passes through, with what each does to the method.
///
/// Unlike frameworks whose helper calls 301 "permanent" and has no 308, every code a redirect rule may
/// name is here, and what a client does with the method and body is explicit (RFC 9110 section 15.4).
public enum RedirectStatus: Int, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// RFC 9110 15.4.2: clients may (and browsers do) turn POST into GET.
    case movedPermanently = 301
    /// RFC 9110 15.4.3: clients may (and browsers do) turn POST into GET.
    case found = 302
    /// RFC 9110 15.4.4: the client fetches the target with GET; the body is dropped.
    case seeOther = 303
    /// RFC 9110 15.4.8: the client repeats the method and body.
    case temporaryRedirect = 307
    /// RFC 9110 15.4.9: the client repeats the method and body.
    case permanentRedirect = 308

    /// Whether clients must send the same method and body to the target.
    public var preservesMethod: Bool { self == .temporaryRedirect || self == .permanentRedirect }

    /// Whether a client that sent `method` may follow this redirect with another method
    /// (a POST sent through a 301 or 302 arrives as a GET).
    public func mayChangeMethod(_ method: String) -> Bool {
        switch self {
        case .seeOther: method != "GET" && method != "HEAD"
        case .movedPermanently, .found: method == "POST"
        case .temporaryRedirect, .permanentRedirect: false
        }
    }

    public var reasonPhrase: String {
        switch self {
        case .movedPermanently: "Moved Permanently"
        case .found: "Found"
        case .seeOther: "See Other"
        case .temporaryRedirect: "Temporary Redirect"
        case .permanentRedirect: "Permanent Redirect"
        }
    }

    public var description: String { "\(rawValue) \(reasonPhrase)" }
}
