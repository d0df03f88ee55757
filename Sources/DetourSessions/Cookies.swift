/// One `Set-Cookie` header (RFC 6265 section 4.1).
public struct SetCookie: Sendable, Hashable {
    public enum SameSite: String, Sendable, Hashable {
        case lax = "Lax"
        case strict = "Strict"
        case none = "None"
    }

    public var name: String
    public var value: String
    /// Seconds; 0 deletes the cookie; `nil` makes a browser-session cookie.
    public var maxAge: Int?
    public var domain: String?
    public var path = "/"
    public var secure: Bool
    public var httpOnly = true
    public var sameSite: SameSite

    public init(
        name: String, value: String, maxAge: Int?, domain: String? = nil, secure: Bool, sameSite: SameSite
    ) {
        self.name = name
        self.value = value
        self.maxAge = maxAge
        self.domain = domain
        self.secure = secure
        self.sameSite = sameSite
    }

    /// The header's value.
    public var headerValue: String {
        var parts = ["\(name)=\(value)", "Path=\(path)"]
        if let maxAge { parts.append("Max-Age=\(maxAge)") }
        if let domain { parts.append("Domain=\(domain)") }
        if secure { parts.append("Secure") }
        if httpOnly { parts.append("HttpOnly") }
        parts.append("SameSite=\(sameSite.rawValue)")
        return parts.joined(separator: "; ")
    }
}

/// The cookies of a request's `Cookie` headers. Malformed pairs are skipped, never an error;
/// the first of several cookies with one name wins.
public struct RequestCookies: Sendable {
    private var values: [String: String] = [:]

    public init(headers: [String]) {
        for var header in headers {
            header.withUTF8 { bytes in
                var start = 0
                while start < bytes.count {
                    var end = start
                    while end < bytes.count, bytes[end] != UInt8(ascii: ";") { end += 1 }
                    add(UnsafeBufferPointer(rebasing: bytes[start..<end]))
                    start = end + 1
                }
            }
        }
    }

    /// Adds one `name=value` pair, trimmed; pairs without `=` or a name are skipped.
    private mutating func add(_ pair: UnsafeBufferPointer<UInt8>) {
        guard let equals = pair.firstIndex(of: UInt8(ascii: "=")) else { return }
        let name = Self.trimmed(pair[..<equals])
        guard !name.isEmpty else { return }
        let key = String(decoding: name, as: UTF8.self)
        if values[key] == nil { values[key] = String(decoding: Self.trimmed(pair[(equals + 1)...]), as: UTF8.self) }
    }

    private static func trimmed(_ bytes: Slice<UnsafeBufferPointer<UInt8>>) -> Slice<UnsafeBufferPointer<UInt8>> {
        var trimmed = bytes
        while let first = trimmed.first, first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") {
            trimmed.removeFirst()
        }
        while let last = trimmed.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") { trimmed.removeLast() }
        return trimmed
    }

    public subscript(name: String) -> String? { values[name] }

    /// Every cookie name, for stripping Detour's own cookies before a request goes upstream.
    public var names: some Collection<String> { values.keys }
}

/// How Detour names and splits its cookies (CONTRACT section 7).
///
/// Guarantees: session cookies are `HttpOnly`, `SameSite=Lax`, `Secure` unless the public URL is plain
/// http on loopback, and `__Host-`-prefixed when `Secure` without a domain; the form_post state cookie
/// is `SameSite=None; Secure` (or `Lax` without `Secure` on http loopback, where browsers refuse that
/// pair). Values longer than ``chunkSize`` are split into `NAME_0`, `NAME_1`...; writing a value
/// deletes the chunks an earlier, longer value left. A value longer than ``budget`` is refused with
/// ``CookieBudgetExceeded``, never cut short and never a trap.
public struct CookiePolicy: Sendable {
    public let baseName: String
    public let domain: String?
    public let secure: Bool
    /// The longest value one cookie carries; browsers keep at least 4096 bytes per cookie, name included.
    public static let chunkSize = 3800
    /// Chunks one value may take; a request presenting more is read as its first ones only (and then fails
    /// to open). Four chunks keep Detour's cookies within about 15 KiB of the request head.
    public static let maximumChunks = 4
    /// The longest value stored, in bytes: every chunk full.
    public static let budget = chunkSize * maximumChunks

    /// - Parameters:
    ///   - secure: false only for a public URL that is plain http on a loopback host.
    public init(cookieName: String, domain: String?, secure: Bool) {
        self.domain = domain
        self.secure = secure
        baseName = secure && domain == nil ? "__Host-" + cookieName : cookieName
    }

    public var sessionName: String { baseName }
    public var stateName: String { baseName + "_state" }
    /// The browser's own random id, for row S2's loop guard: lives as long as the browser session.
    public var browserName: String { baseName + "_browser" }
    /// Names the form kept across sign-in (row A2b), then arms its re-submission.
    public var formName: String { baseName + "_form" }

    /// The `Set-Cookie` header giving a browser its id.
    public func browserCookie(_ id: String) -> SetCookie {
        SetCookie(name: browserName, value: id, maxAge: nil, domain: domain, secure: secure, sameSite: .lax)
    }

    /// `Set-Cookie` headers that store `value` under `name`, chunked when long, and delete stale chunks.
    ///
    /// - Throws: ``CookieBudgetExceeded`` when `value` is longer than ``budget``.
    public func store(
        _ value: String, name: String, maxAge: Int, sameSite: SetCookie.SameSite, existing: RequestCookies
    ) throws(CookieBudgetExceeded) -> [SetCookie] {
        let bytes = Array(value.utf8)
        guard bytes.count <= Self.budget else { throw CookieBudgetExceeded(length: bytes.count) }
        // SameSite=None needs Secure; on http loopback, where Secure cannot be set, Lax is the fallback.
        let site: SetCookie.SameSite = sameSite == .none && !secure ? .lax : sameSite
        func cookie(_ name: String, _ value: String, _ maxAge: Int) -> SetCookie {
            SetCookie(name: name, value: value, maxAge: maxAge, domain: domain, secure: secure, sameSite: site)
        }
        var cookies: [SetCookie] = []
        if bytes.count <= Self.chunkSize {
            cookies.append(cookie(name, value, maxAge))
            for index in 0..<Self.maximumChunks where existing["\(name)_\(index)"] != nil {
                cookies.append(cookie("\(name)_\(index)", "", 0))
            }
        } else {
            let chunks = stride(from: 0, to: bytes.count, by: Self.chunkSize).map {
                String(decoding: bytes[$0..<min($0 + Self.chunkSize, bytes.count)], as: UTF8.self)
            }
            for (index, chunk) in chunks.enumerated() { cookies.append(cookie("\(name)_\(index)", chunk, maxAge)) }
            if existing[name] != nil { cookies.append(cookie(name, "", 0)) }
            for index in chunks.count..<Self.maximumChunks where existing["\(name)_\(index)"] != nil {
                cookies.append(cookie("\(name)_\(index)", "", 0))
            }
        }
        return cookies
    }

    /// `Set-Cookie` headers that delete `name` and any chunks of it the request carries.
    public func delete(name: String, existing: RequestCookies) -> [SetCookie] {
        ([name] + (0..<Self.maximumChunks).map { "\(name)_\($0)" }).filter { existing[$0] != nil }.map {
            SetCookie(name: $0, value: "", maxAge: 0, domain: domain, secure: secure, sameSite: .lax)
        }
    }

    /// The value stored under `name`, joined from its chunks if it was split; `nil` if absent or malformed.
    public func load(name: String, from cookies: RequestCookies) -> String? {
        if let whole = cookies[name] { return whole }
        var joined = ""
        for index in 0..<Self.maximumChunks {
            guard let chunk = cookies["\(name)_\(index)"] else { break }
            joined += chunk
        }
        return joined.isEmpty ? nil : joined
    }

    /// Whether a cookie name is one of Detour's (session, state, browser id, or a chunk), so that it is
    /// removed before the request reaches the upstream.
    public func isOwnCookie(_ name: String) -> Bool {
        name == sessionName || name == stateName || name.hasPrefix(sessionName + "_")
    }
}

/// A value Detour would store in cookies is longer than ``CookiePolicy/budget`` (a session carrying
/// hundreds of groups, say): it is refused whole rather than cut short.
public struct CookieBudgetExceeded: Error, Sendable, Hashable, CustomStringConvertible {
    /// The sealed value's length, in bytes.
    public let length: Int

    public var description: String {
        "the session needs \(length) bytes of cookies, more than the \(CookiePolicy.budget) bytes Detour stores in them"
    }
}
