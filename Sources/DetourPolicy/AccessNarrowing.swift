import DetourRedirect

/// oauth2-proxy's query parameters on `/oauth2/auth` (CONTRACT section 2): `allowed_groups`, `allowed_emails` and
/// `allowed_email_domains`, comma-separated, each narrowing who is let through beyond the policies.
///
/// Guarantees, as oauth2-proxy checks them: every parameter given must be met (AND), and any one value of it is
/// enough (OR); a parameter repeated adds its values; empty items are ignored, and items are trimmed of spaces.
/// Groups compare exactly. Emails and domains are compared with the identity's trusted email (lower-cased, and none
/// when the provider says it is not verified): `allowed_emails` ignoring case; `allowed_email_domains` as the exact
/// domain, ignoring case, or with a leading `.` or `*.` the domain and every subdomain of it.
public struct AccessNarrowing: Sendable, Hashable {
    public var groups: [String] = []
    public var emails: [String] = []
    public var emailDomains: [String] = []

    public init(groups: [String] = [], emails: [String] = [], emailDomains: [String] = []) {
        self.groups = groups
        self.emails = emails.map { $0.lowercased() }
        self.emailDomains = emailDomains.map { $0.lowercased() }
    }

    /// The parameters in a request target's query (`/oauth2/auth?allowed_groups=a,b`).
    public init(target: String) {
        guard let mark = target.utf8.firstIndex(of: UInt8(ascii: "?")) else { return }
        for pair in target.utf8[target.utf8.index(after: mark)...].split(separator: UInt8(ascii: "&")) {
            let parts = pair.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2 else { continue }
            let items = Self.decoded(parts[1]).split(separator: ",").map(Self.trimmed).filter { !$0.isEmpty }
            switch Self.decoded(parts[0]) {
            case "allowed_groups": groups += items
            case "allowed_emails": emails += items.map { $0.lowercased() }
            case "allowed_email_domains": emailDomains += items.map { $0.lowercased() }
            default: continue
            }
        }
    }

    /// Whether nothing narrows.
    public var isEmpty: Bool { groups.isEmpty && emails.isEmpty && emailDomains.isEmpty }

    /// Whether `identity` meets every parameter given.
    public func admits(_ identity: Identity) -> Bool {
        if !groups.isEmpty, !identity.groups.contains(where: groups.contains) { return false }
        if !emails.isEmpty, !(identity.trustedEmail.map(emails.contains) ?? false) { return false }
        if !emailDomains.isEmpty {
            guard let domain = identity.trustedEmailDomain,
                emailDomains.contains(where: { Self.domain(domain, fits: $0) })
            else { return false }
        }
        return true
    }

    private static func domain(_ domain: Substring, fits allowed: String) -> Bool {
        let parent = allowed.hasPrefix("*.") ? allowed.dropFirst(2) : allowed.hasPrefix(".") ? allowed.dropFirst() : nil
        guard let parent else { return domain == allowed }
        return domain == parent || domain.hasSuffix("." + parent)
    }

    /// A form-encoded query part: `+` is a space, `%XX` a byte (an escape that is not one is kept as written).
    private static func decoded(_ bytes: Substring.UTF8View.SubSequence) -> String {
        var output: [UInt8] = []
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            let next = bytes.index(after: index)
            if byte == UInt8(ascii: "%"), bytes.distance(from: next, to: bytes.endIndex) >= 2,
                let high = hexValue(bytes[next]), let low = hexValue(bytes[bytes.index(after: next)])
            {
                output.append(high << 4 | low)
                index = bytes.index(next, offsetBy: 2)
                continue
            }
            output.append(byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
            index = next
        }
        return String(decoding: output, as: UTF8.self)
    }

    private static func trimmed(_ item: Substring) -> String {
        String(item.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
