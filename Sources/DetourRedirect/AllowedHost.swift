/// One entry of `return_to.allowed_hosts` (CONTRACT section 4), normalised as a browser normalises hosts.
///
/// Matching is on whole labels: `*.corp.example` and `.corp.example` never match `evilcorp.example`,
/// and a trailing dot makes a different host. An entry that would match a whole top-level domain or
/// public suffix cannot be constructed.
public struct AllowedHost: Sendable, Hashable, CustomStringConvertible {
    enum HostPattern: Hashable {
        case exactly(Host)
        /// `*.suffix`: any subdomain at any depth, not the suffix itself.
        case subdomains(of: String)
        /// `.suffix`: the suffix and any subdomain (oauth2-proxy's meaning).
        case domainAndSubdomains(of: String)
    }

    enum PortPattern: Hashable {
        case schemeDefault
        case exactly(UInt16)
        case any
    }

    let hostPattern: HostPattern
    let portPattern: PortPattern
    /// The entry as written.
    public let description: String

    /// Parses an entry: `host`, `host:port`, `host:*`, `*.domain`, `.domain`, `[::1]:8080`.
    public init(parsing entry: String) throws(AllowedHostError) {
        description = entry
        guard !entry.isEmpty else { throw AllowedHostError(entry, "is empty") }
        guard entry != "*", entry != "*.", entry != "." else { throw AllowedHostError(entry, "matches every host") }
        guard !entry.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F || $0 == UInt8(ascii: "/") }) else {
            throw AllowedHostError(entry, "must be a host with an optional port, without scheme, path or spaces")
        }
        var hostPart = Substring(entry)
        var portPart: Substring?
        if entry.hasPrefix("[") {
            guard let close = entry.firstIndex(of: "]") else { throw AllowedHostError(entry, "has no closing ]") }
            hostPart = entry[...close]
            let rest = entry[entry.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { throw AllowedHostError(entry, "has text after ]") }
                portPart = rest.dropFirst()
            }
        } else if let colon = entry.lastIndex(of: ":") {
            hostPart = entry[..<colon]
            portPart = entry[entry.index(after: colon)...]
        }
        portPattern = try Self.parsePort(portPart, entry: entry)

        if hostPart.hasPrefix("*.") {
            hostPattern = .subdomains(of: try Self.parseSuffix(hostPart.dropFirst(2), entry: entry))
        } else if hostPart.hasPrefix(".") {
            hostPattern = .domainAndSubdomains(of: try Self.parseSuffix(hostPart.dropFirst(), entry: entry))
        } else {
            guard !hostPart.isEmpty, !hostPart.contains("*") else {
                throw AllowedHostError(entry, "has a wildcard that is not a leading \"*.\"")
            }
            do {
                hostPattern = .exactly(try HostParser.parse(Array(hostPart.utf8)[...]))
            } catch {
                throw AllowedHostError(entry, "is not a valid host (\(error))")
            }
        }
    }

    private static func parsePort(_ text: Substring?, entry: String) throws(AllowedHostError) -> PortPattern {
        guard let text else { return .schemeDefault }
        if text == "*" { return .any }
        guard text.allSatisfy({ $0 >= "0" && $0 <= "9" }), let port = UInt16(text), port > 0 else {
            throw AllowedHostError(entry, "has an invalid port \"\(text)\" (1-65535 or *)")
        }
        return .exactly(port)
    }

    private static func parseSuffix(_ text: Substring, entry: String) throws(AllowedHostError) -> String {
        guard !text.contains("*") else { throw AllowedHostError(entry, "has a wildcard that is not a leading \"*.\"") }
        let host: Host
        do {
            host = try HostParser.parse(Array(text.utf8)[...])
        } catch {
            throw AllowedHostError(entry, "is not a valid domain (\(error))")
        }
        guard case .domain(let suffix) = host else {
            throw AllowedHostError(entry, "puts a wildcard on an IP address")
        }
        let labels = suffix.split(separator: ".", omittingEmptySubsequences: false)
        guard !labels.contains(where: \.isEmpty) else { throw AllowedHostError(entry, "has an empty label") }
        guard labels.count > 1 || suffix == "localhost", !PublicSuffixes.contains(suffix) else {
            throw AllowedHostError(entry, "matches every host under the public suffix \"\(suffix)\"")
        }
        return suffix
    }

    /// Whether `host` is one this entry names, whatever the port.
    func matchesHost(_ host: Host) -> Bool {
        switch hostPattern {
        case .exactly(let expected):
            return host == expected
        case .subdomains(let suffix):
            guard case .domain(let name) = host else { return false }
            return Self.isStrictSubdomain(name, of: suffix)
        case .domainAndSubdomains(let suffix):
            guard case .domain(let name) = host else { return false }
            return name == suffix || Self.isStrictSubdomain(name, of: suffix)
        }
    }

    /// Whether `url`'s port is one this entry allows.
    func matchesPort(of url: BrowserURL) -> Bool {
        switch portPattern {
        case .schemeDefault: url.port == nil
        case .exactly(let port): url.effectivePort == port
        case .any: true
        }
    }

    /// `name` ends in "." + `suffix` and every label before it is non-empty.
    private static func isStrictSubdomain(_ name: String, of suffix: String) -> Bool {
        var name = name
        var suffix = suffix
        return name.withUTF8 { name in
            suffix.withUTF8 { suffix in
                let headCount = name.count - suffix.count - 1
                guard headCount > 0, name[headCount] == UInt8(ascii: "."),
                    UnsafeBufferPointer(rebasing: name[(headCount + 1)...]).elementsEqual(suffix)
                else { return false }
                // No empty label before the suffix: no leading dot, no "..".
                var previous = UInt8(ascii: ".")
                for byte in name[..<headCount] {
                    if byte == UInt8(ascii: "."), previous == UInt8(ascii: ".") { return false }
                    previous = byte
                }
                return previous != UInt8(ascii: ".")
            }
        }
    }
}

/// An `allowed_hosts` entry that cannot be used, with the reason.
public struct AllowedHostError: Error, Sendable, Hashable, CustomStringConvertible {
    public let entry: String
    public let problem: String

    init(_ entry: String, _ problem: String) {
        self.entry = entry
        self.problem = problem
    }

    public var description: String { "allowed host \"\(entry)\" \(problem)" }
}

/// Multi-label public suffixes that a wildcard entry must not cover (single labels are refused anyway).
/// Not the whole Public Suffix List: the suffixes companies and attackers most often share.
enum PublicSuffixes {
    static func contains(_ suffix: String) -> Bool { list.contains(suffix) }

    private static let list: Set<String> = [
        "co.uk", "org.uk", "ac.uk", "gov.uk", "me.uk", "ltd.uk", "plc.uk", "net.uk", "sch.uk",
        "com.au", "net.au", "org.au", "edu.au", "gov.au", "co.nz", "org.nz", "net.nz",
        "co.jp", "ne.jp", "or.jp", "ac.jp", "go.jp", "co.kr", "or.kr", "com.cn", "net.cn", "org.cn",
        "com.br", "net.br", "org.br", "com.mx", "com.ar", "com.tr", "com.tw", "com.hk", "com.sg", "com.my",
        "co.in", "net.in", "org.in", "co.za", "co.il", "com.ua", "com.pl", "co.id", "com.vn", "com.ph",
        "github.io", "gitlab.io", "herokuapp.com", "appspot.com", "azurewebsites.net", "cloudfront.net",
        "amazonaws.com", "s3.amazonaws.com", "elasticbeanstalk.com", "blogspot.com", "firebaseapp.com",
        "web.app", "vercel.app", "netlify.app", "pages.dev", "workers.dev", "fly.dev", "onrender.com",
        "ngrok.io", "ngrok-free.app", "glitch.me", "repl.co", "azurestaticapps.net", "trycloudflare.com",
    ]
}
