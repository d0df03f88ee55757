/// Decides return targets (`rd`) the way `/oauth2/start?rd=` and `/oauth2/sign_out?rd=` do (CONTRACT 4).
///
/// A target is allowed only as the ``BrowserURL`` a browser would make of it against ``base``; the
/// `Location` Detour emits is that URL's serialisation, so what was checked is what the browser
/// follows. Every refusal carries a ``RejectionReason`` with a stable code.
public struct ReturnTargetPolicy: Sendable {
    /// Where relative targets are resolved: `server.public_url`. Its own origin is always allowed.
    public let base: BrowserURL
    public let allowedHosts: [AllowedHost]
    /// Detour's endpoint prefix (`server.prefix`); targets under it would loop back into sign-in.
    public let prefix: String
    private let prefixFolder: String
    /// The longest target accepted, in bytes.
    public static let maximumLength = 4096

    public init(base: BrowserURL, allowedHosts: [AllowedHost], prefix: String = "/oauth2") {
        self.base = base
        self.allowedHosts = allowedHosts
        self.prefix = prefix.hasSuffix("/") ? String(prefix.dropLast()) : prefix
        self.prefixFolder = self.prefix + "/"
    }

    /// Refuses, before parsing, targets that are empty, too long or hold a control character:
    /// browsers silently drop tabs and newlines and strip other controls at the ends, so a target that
    /// relies on that is an attack, and CR or LF could never go into a Location header anyway.
    private static func screen(_ target: String) -> RejectionReason? {
        var target = target
        return target.withUTF8 { bytes in
            guard bytes.count <= maximumLength else { return .tooLong }
            var onlySpaces = true
            for byte in bytes {
                if byte < 0x20 || byte == 0x7F { return .controlCharacter }
                if byte != 0x20 { onlySpaces = false }
            }
            return onlySpaces ? .empty : nil
        }
    }

    /// The verdict on one target: the already-decoded value of an `rd` parameter.
    public func evaluate(_ target: String) -> ReturnTargetVerdict {
        if let rejection = Self.screen(target) { return .rejected(rejection) }

        let url: BrowserURL
        do {
            url = try BrowserURL(parsing: target, against: base)
        } catch {
            switch error {
            case .unsupportedScheme: return .rejected(.scheme)
            case .unsupportedInternationalHost: return .rejected(.internationalHost)
            default: return .rejected(.unparseable)
            }
        }
        if url.hasCredentials { return .rejected(.userinfo) }
        // The public URL's host counts as listed; its exact origin is allowed whatever its scheme.
        guard url.host == base.host || allowedHosts.contains(where: { $0.matchesHost(url.host) }) else {
            return .rejected(.host)
        }
        if !url.isSameOrigin(as: base) {
            guard url.scheme == .https || url.host.isLoopback else { return .rejected(.scheme) }
            guard allowedHosts.contains(where: { $0.matchesHost(url.host) && $0.matchesPort(of: url) }) else {
                return .rejected(.port)
            }
        }
        let path = url.path
        // Row A2b's confirmation page, naming its form's tag, is the one endpoint sign-in returns to: it shows a page
        // to a signed-in browser and starts no sign-in for one, so it cannot loop.
        if path == prefixFolder + "resubmit", url.fragment == nil, let query = url.query, Self.isFormTag(query) {
            return .allowed(url)
        }
        if path == prefix || path.hasPrefix(prefixFolder) { return .rejected(.loop) }
        return .allowed(url)
    }
}

extension ReturnTargetPolicy {
    /// `form=` and 64 lower-case hexadecimal digits: how a return target names the form kept across sign-in.
    static func isFormTag(_ query: Substring) -> Bool {
        guard query.hasPrefix("form=") else { return false }
        let tag = query.utf8.dropFirst(5)
        return tag.count == 64 && tag.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// Row S1: where sign-in (or sign-out) returns to: `rd` when it is allowed, else `fallback`
    /// (`return_to.default`, checked when the configuration was loaded). Never an open redirect.
    public func returnTarget(for rd: String?, fallback: BrowserURL) -> ReturnTargetResolution {
        guard let rd else { return ReturnTargetResolution(target: fallback, rejection: nil) }
        switch evaluate(rd) {
        case .allowed(let url): return ReturnTargetResolution(target: url, rejection: nil)
        case .rejected(let reason): return ReturnTargetResolution(target: fallback, rejection: reason)
        }
    }
}

extension BrowserURL {
    /// `<origin>/<prefix>/start?rd=<target>`: where Detour sends someone to sign in towards `target`
    /// (rows A2, A3's `login_url`, C2's "sign in again"). Every character of the target but RFC 3986's
    /// unreserved ones is percent-encoded, so the `rd` value reads back exactly.
    public static func signInStart(origin: BrowserURL, prefix: String, returnTo target: BrowserURL) -> BrowserURL {
        var encoded = ""
        for byte in target.href.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                encoded.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                encoded += "%" + String(hexDigitUppercase(byte >> 4)) + String(hexDigitUppercase(byte & 0x0F))
            }
        }
        guard let url = try? BrowserURL(parsing: origin.origin + prefix + "/start?rd=" + encoded) else {
            preconditionFailure("an origin, a validated prefix and an encoded component make a valid URL")
        }
        return url
    }
}

/// A return target after row S1: the URL to go to, and why `rd` was set aside, if it was.
public struct ReturnTargetResolution: Sendable, Hashable {
    public let target: BrowserURL
    /// Set when the requested target was refused and the default used instead (row S1).
    public let rejection: RejectionReason?
}

/// The outcome of checking one return target: the URL to put in `Location`, or why not.
public enum ReturnTargetVerdict: Sendable, Hashable {
    case allowed(BrowserURL)
    case rejected(RejectionReason)

    /// The allowed URL, or `nil` when rejected.
    public var location: BrowserURL? {
        if case .allowed(let url) = self { url } else { nil }
    }
}

/// Why a return target was refused. ``code`` is stable: `redirect check` prints it and logs record it.
public struct RejectionReason: Sendable, Hashable, CustomStringConvertible {
    /// The machine-readable reason, kebab-case.
    public let code: String
    /// One sentence for people.
    public let explanation: String

    private init(_ code: String, _ explanation: String) {
        self.code = code
        self.explanation = explanation
    }

    public static let empty = RejectionReason("empty", "the target is empty")
    public static let tooLong = RejectionReason("too-long", "the target is longer than 4096 bytes")
    public static let controlCharacter = RejectionReason(
        "control-character", "the target contains a control character (tab, newline, NUL...)")
    public static let unparseable = RejectionReason("unparseable", "a browser could not parse the target as a URL")
    public static let scheme = RejectionReason(
        "scheme", "only https targets are allowed (and http to localhost, 127.0.0.1 or [::1])")
    public static let internationalHost = RejectionReason(
        "idn", "the host has international characters Detour does not map exactly as a browser would")
    public static let userinfo = RejectionReason("userinfo", "the target carries a user name or password")
    public static let host = RejectionReason("host", "the host is not in the allowed hosts")
    public static let port = RejectionReason("port", "the host is allowed, but not on this port")
    public static let loop = RejectionReason("loop", "the target is one of Detour's own sign-in endpoints")

    /// Every reason, for documentation and tests.
    public static let all: [RejectionReason] = [
        .empty, .tooLong, .controlCharacter, .unparseable, .scheme, .internationalHost, .userinfo, .host, .port, .loop,
    ]

    public var description: String { code }
}
