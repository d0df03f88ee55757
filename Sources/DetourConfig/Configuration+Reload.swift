public import DetourYAML
public import Foundation
import Yams

/// What SIGHUP may change (CONTRACT section 8).
///
/// Guarantees: a reloaded configuration differs from the running one only in keys a running Detour can put in
/// effect at once (routes and policies, return targets, trusted proxies, the upstream timeouts). A change to any
/// other key refuses the whole reload, naming the key where the new file writes it; nothing is half-applied.
extension Configuration {
    /// A key that only a restart puts in effect, and whether two configurations agree on it.
    struct RestartOnlyKey: Sendable {
        let key: String
        let agrees: @Sendable (Configuration, Configuration) -> Bool

        init<Value: Equatable & Sendable>(_ key: String, _ value: @escaping @Sendable (Configuration) -> Value) {
            self.key = key
            agrees = { value($0) == value($1) }
        }
    }

    /// The keys a reload may change: the decision path's inputs, rebuilt whole for requests that start after it.
    public static let reloadableKeys = [
        "policies", "routes", "redirects", "return_to", "server.trusted_proxies", "server.redirect_http_to_https",
        "server.upstream_connect_timeout", "server.upstream_timeout",
    ]

    /// Every other key: the listeners and their limits, the provider registration, and the sessions (their cookie,
    /// secrets and store) are made once at start. (`server.tls`'s files are re-read on SIGHUP; their paths are not.)
    static let restartOnlyKeys: [RestartOnlyKey] = [
        RestartOnlyKey("server.listen") { $0.server.listen },
        RestartOnlyKey("server.public_url") { $0.server.publicURL },
        RestartOnlyKey("server.prefix") { $0.server.prefix },
        RestartOnlyKey("server.max_request_body") { $0.server.maxRequestBody },
        RestartOnlyKey("server.shutdown_grace") { $0.server.shutdownGrace },
        RestartOnlyKey("server.access_log") { $0.server.accessLog },
        RestartOnlyKey("server.limits") { $0.server.limits },
        RestartOnlyKey("server.tls") { $0.server.tls.map { [$0.certFile, $0.keyFile] } },
        RestartOnlyKey("server.http_listen") { $0.server.httpListen },
        RestartOnlyKey("server.admin_listen") { $0.server.adminListen },
        RestartOnlyKey("server.hsts") { $0.server.hsts },
        RestartOnlyKey("oidc") { $0.oidc },
        RestartOnlyKey("session") { $0.session },
    ]

    /// This configuration's file read again, to replace this configuration in a running Detour.
    ///
    /// - Throws: ``ConfigError`` with the new file's own errors, or, when it is valid but changes a key only a
    ///   restart puts in effect, one diagnostic per such key at the place the new file writes it.
    public func reloaded(environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigError)
        -> Configuration
    {
        let text = try YAMLReader.readFile(file)
        let new = try Self.parse(text, file: file, environment: environment)
        let changed = Self.restartOnlyKeys.filter { !$0.agrees(self, new) }.map(\.key)
        guard !changed.isEmpty else { return new }
        let root = try? YAMLReader.compose(text, file: file)
        throw ConfigError(
            diagnostics: changed.map { key in
                let mark = root.flatMap { Self.nearestMark(of: key, in: $0) }
                return Diagnostic(
                    file: file, line: mark?.line ?? 1, column: mark?.column ?? 1,
                    message: "\(key) changed: only a restart puts it in effect; the running configuration stays")
            })
    }

    /// Where `key` (dotted) is written under `root`, or its nearest written parent when it was removed.
    static func nearestMark(of key: String, in root: Node) -> Mark? {
        var mapping = root.mapping
        var written: Mark?
        for part in key.split(separator: ".") {
            guard let entry = mapping?.first(where: { $0.key.string == String(part) }) else { break }
            written = entry.key.mark
            mapping = entry.value.mapping
        }
        return written
    }
}

extension Configuration.OIDC: Equatable {
    public static func == (a: Self, b: Self) -> Bool {
        a.issuer == b.issuer && a.clientID == b.clientID && a.clientSecret == b.clientSecret
            && a.clientSecretFile == b.clientSecretFile && a.privateKeyFile == b.privateKeyFile && a.scopes == b.scopes
            && a.responseMode == b.responseMode && a.tokenEndpointAuth == b.tokenEndpointAuth && a.caFile == b.caFile
            && a.timeout == b.timeout && a.bearerAudiences == b.bearerAudiences
            && a.introspectionURL == b.introspectionURL && a.introspectionCacheTTL == b.introspectionCacheTTL
            && a.backchannelLogout == b.backchannelLogout && a.claims == b.claims
            && a.authParams.map { [$0.name, $0.value] } == b.authParams.map { [$0.name, $0.value] }
    }
}
