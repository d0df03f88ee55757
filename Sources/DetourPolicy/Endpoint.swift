/// Detour's own endpoints (CONTRACT section 2), named by a normalised path in one table.
///
/// Guarantees: the gateway and `detour policy test` recognise endpoints here and nowhere else, on the path after
/// ``RequestPath`` normalisation, so `//oauth2/start`, `/oauth2/./start` and `/oauth2/start` are one endpoint. A path
/// under the prefix that names none is ``unknown`` (404), never a route: no path that normalises to one under the prefix
/// reaches an upstream (the prefix itself is refused by the configuration unless already normal).
public enum Endpoint: String, Sendable, Hashable, CaseIterable {
    case ping
    case ready
    case metrics
    case start
    /// oauth2-proxy's entry for nginx `error_page 401`: `/oauth2/start` for a browser, 401 for an API client.
    case signIn = "sign_in"
    case callback
    case signOut = "sign_out"
    case userinfo
    /// `/oauth2/auth`: forward-auth (rows F1-F3).
    case forwardAuth = "auth"
    /// OpenID Connect Back-Channel Logout: the provider ends sessions (404 unless `oidc.backchannel_logout`).
    case backchannelLogout = "backchannel_logout"
    /// Row A2b: the page that asks before a form kept across sign-in is sent again (404 unless
    /// `return_to.preserve_post`).
    case resubmit
    /// Under the prefix, but no endpoint: 404.
    case unknown

    /// `/ping`, `/ready` or `/metrics`, by a normalised `path`: all the admin listener serves.
    public static func health(_ path: String) -> Endpoint? {
        // Most paths are longer than these, and a length is cheaper to compare than the bytes.
        guard (5...8).contains(path.utf8.count) else { return nil }
        return switch path {
        case "/ping": .ping
        case "/ready": .ready
        case "/metrics": .metrics
        default: nil
        }
    }

    /// Every endpoint but the root's three, under the prefix by its raw value.
    private static let underPrefix: [String: Endpoint] = Dictionary(
        uniqueKeysWithValues: allCases.filter { health("/" + $0.rawValue) == nil && $0 != .unknown }.map {
            ($0.rawValue, $0)
        })

    /// The endpoint a normalised `path` names, or `nil` when the path is not Detour's. With `health` false
    /// (`server.admin_listen` is set), `/ping`, `/ready` and `/metrics` are not Detour's on this listener.
    public static func named(by path: String, prefix: String, health: Bool = true) -> Endpoint? {
        if health, let endpoint = Self.health(path) { return endpoint }
        guard bytes(of: path, startWith: prefix) else { return nil }
        let rest = path.utf8.dropFirst(prefix.utf8.count)
        if rest.isEmpty { return .unknown }
        guard rest.first == UInt8(ascii: "/") else { return nil }
        return underPrefix[String(Substring(rest.dropFirst()))] ?? .unknown
    }

    /// Whether `path` starts with the bytes of `prefix`, compared in place.
    private static func bytes(of path: String, startWith prefix: String) -> Bool {
        var (path, prefix) = (path, prefix)
        return path.withUTF8 { path in
            prefix.withUTF8 { prefix in
                path.count >= prefix.count && UnsafeBufferPointer(rebasing: path[..<prefix.count]).elementsEqual(prefix)
            }
        }
    }
}
