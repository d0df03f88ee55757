import DetourPolicy
import DetourRedirect
import DetourYAML
import Foundation
import Testing

@testable import DetourConfig

/// SIGHUP's rules (CONTRACT section 8): a reload changes only what a running Detour can put in effect at once, and
/// refuses anything else with the key's place in the new file.
@Suite struct ReloadTests {
    static let base = """
        server:
          listen: "127.0.0.1:4180"
          public_url: "https://auth.example.com"
          trusted_proxies: ["10.0.0.1"]
        oidc:
          issuer: "https://idp.example.com"
          client_id: "detour"
          client_secret: "s"
        session:
          secrets: ["MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="]
        return_to:
          allowed_hosts: ["app.example.com"]
        routes:
          - name: app
            match: { host: "app.example.com" }
            upstream: "http://127.0.0.1:9000"
            allow: [{ authenticated: true }]

        """

    /// The running configuration from ``base``, and the error (if any) of reloading it from `edited`.
    func reload(to edited: String) throws -> (running: Configuration, result: Result<Configuration, ConfigError>) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("reload-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("detour.yaml").path
        try Self.base.write(toFile: file, atomically: true, encoding: .utf8)
        let running = try Configuration.load(file: file, environment: [:])
        try edited.write(toFile: file, atomically: true, encoding: .utf8)
        do {
            return (running, .success(try running.reloaded(environment: [:])))
        } catch {
            return (running, .failure(error))
        }
    }

    func refusal(_ edited: String) throws -> [String] {
        guard case .failure(let error) = try reload(to: edited).result else { return [] }
        return error.diagnostics.map { "\($0.line):\($0.column): \($0.message)" }
    }

    @Test func routesReturnTargetsAndTrustedProxiesReload() throws {
        let edited = Self.base
            .replacingOccurrences(of: "[\"10.0.0.1\"]", with: "[\"10.0.0.2\"]")
            .replacingOccurrences(of: "[\"app.example.com\"]", with: "[\"app.example.com\", \"b.example.com\"]")
            .replacingOccurrences(of: "9000", with: "9001")
        guard case .success(let next) = try reload(to: edited).result else {
            Issue.record("a reloadable change was refused")
            return
        }
        #expect(next.server.trustedProxies == ["10.0.0.2"])
        #expect(next.returnTo.allowedHosts.count == 2)
        #expect(next.inlinePolicies.routes.first?.upstream.description == "http://127.0.0.1:9001/")
    }

    @Test func aRestartOnlyKeyIsRefusedWhereTheNewFileWritesIt() throws {
        let edited = Self.base.replacingOccurrences(of: "127.0.0.1:4180", with: "127.0.0.1:4181")
            .replacingOccurrences(of: "client_id: \"detour\"", with: "client_id: \"other\"")
        #expect(
            try refusal(edited) == [
                "2:3: server.listen changed: only a restart puts it in effect; the running configuration stays",
                "5:1: oidc changed: only a restart puts it in effect; the running configuration stays",
            ])
    }

    @Test func aRemovedRestartOnlyKeyPointsAtItsParent() throws {
        let edited = Self.base.replacingOccurrences(of: "  public_url: \"https://auth.example.com\"\n", with: "")
        #expect(
            try refusal(edited) == [
                "1:1: server.public_url changed: only a restart puts it in effect; the running configuration stays"
            ])
    }

    @Test func anInvalidFileIsRefusedWithItsOwnErrors() throws {
        let edited = Self.base.replacingOccurrences(of: "trusted_proxies", with: "trusted_proxy")
        let messages = try refusal(edited)
        #expect(messages.count == 1)
        #expect(messages.first?.hasPrefix("4:3: ") == true)
    }

    /// A key added to the configuration must be sorted into reloadable or restart-only, or a reload could accept a
    /// change it never puts in effect.
    @Test func everyKeyIsSortedIntoReloadableOrRestartOnly() {
        let restartOnly = Set(Configuration.restartOnlyKeys.map(\.key))
        let reloadable = Set(Configuration.reloadableKeys)
        #expect(restartOnly.isDisjoint(with: reloadable))
        let topLevel = Configuration.topKeys.filter { $0 != "server" }
        let server = Configuration.serverKeys.map { "server.\($0)" }
        for key in topLevel + server {
            #expect(restartOnly.contains(key) || reloadable.contains(key), "\(key) is neither")
        }
        // The stored properties behind those keys: one per server key, plus the file and the sections.
        #expect(Mirror(reflecting: Configuration.Server()).children.count == Configuration.serverKeys.count)
        #expect(Mirror(reflecting: Configuration(file: "x")).children.count == 7)
        #expect(Mirror(reflecting: Configuration.OIDC()).children.count == Configuration.oidcKeys.count)
    }
}

extension ReloadTests {
    /// Each restart-only key compares its own setting: changing that one setting, and nothing else, is seen.
    @Test func eachRestartOnlyKeySeesItsOwnSetting() throws {
        let running = try Configuration.parse(Self.base, file: "detour.yaml", environment: [:])
        let changes: [String: (inout Configuration) -> Void] = [
            "server.listen": { $0.server.listen = "127.0.0.1:1" },
            "server.public_url": { $0.server.publicURL = nil },
            "server.prefix": { $0.server.prefix = "/sso" },
            "server.max_request_body": { $0.server.maxRequestBody = 1 },
            "server.shutdown_grace": { $0.server.shutdownGrace = .seconds(1) },
            "server.access_log": { $0.server.accessLog = .off },
            "server.limits": { $0.server.limits.idleTimeout = .seconds(1) },
            "server.tls": {
                $0.server.tls = .init(
                    certFile: "c.pem", keyFile: "k.pem", location: SourceLocation(file: "x", line: 1, column: 1))
            },
            "server.http_listen": { $0.server.httpListen = "127.0.0.1:80" },
            "server.admin_listen": { $0.server.adminListen = "127.0.0.1:9" },
            "server.hsts": { $0.server.hsts = .seconds(1) },
            "session": { $0.session.lifetime = .seconds(1) },
        ]
        #expect(Set(changes.keys).union(["oidc"]) == Set(Configuration.restartOnlyKeys.map(\.key)))
        for key in Configuration.restartOnlyKeys where key.key != "oidc" {
            var changed = running
            changes[key.key]?(&changed)
            let seen = Configuration.restartOnlyKeys.filter { !$0.agrees(running, changed) }.map(\.key)
            #expect(seen == [key.key], "changing \(key.key) alone")
        }
    }

    /// `oidc`'s equality is written by hand: every one of its settings must count.
    @Test func everyOIDCSettingCounts() throws {
        let running = try #require(try Configuration.parse(Self.base, file: "detour.yaml", environment: [:]).oidc)
        let changes: [(inout Configuration.OIDC) -> Void] = [
            { $0.issuer = "https://other" }, { $0.clientID = "other" }, { $0.clientSecret = "other" },
            { $0.clientSecretFile = "f" }, { $0.privateKeyFile = "k" }, { $0.scopes = ["openid"] },
            { $0.responseMode = .formPost }, { $0.tokenEndpointAuth = .clientSecretPost }, { $0.caFile = "ca" },
            { $0.timeout = .seconds(1) }, { $0.bearerAudiences = ["a"] }, { $0.introspectionURL = "https://i" },
            { $0.introspectionCacheTTL = .seconds(1) }, { $0.backchannelLogout = true },
            { $0.claims.groups = "roles" }, { $0.authParams = [("prompt", "login")] },
        ]
        #expect(changes.count == Mirror(reflecting: running).children.count, "one change per setting")
        for (index, change) in changes.enumerated() {
            var changed = running
            change(&changed)
            #expect(changed != running, "setting \(index)")
        }
    }
}
