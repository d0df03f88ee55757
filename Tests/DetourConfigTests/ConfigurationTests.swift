import DetourPolicy
import DetourRedirect
import DetourYAML
import Testing

@testable import DetourConfig

@Suite struct ConfigurationTests {
    static let secret = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="  // base64 of 32 bytes

    func load(_ text: String, environment: [String: String] = [:]) throws(ConfigError) -> Configuration {
        try Configuration.parse(text, file: "detour.yaml", environment: environment)
    }

    func diagnostics(_ text: String, environment: [String: String] = [:]) -> [String] {
        do {
            _ = try load(text, environment: environment)
            return []
        } catch {
            return error.diagnostics.map(\.description)
        }
    }

    @Test func theContractExampleLoads() throws {
        let configuration = try load(
            """
            server:
              listen: "127.0.0.1:4180"
              public_url: "https://auth.example.com"
              prefix: "/oauth2"
              trusted_proxies: []
              redirect_http_to_https: false
            oidc:
              issuer: "https://idp.example.com/realms/main"
              client_id: "detour"
              client_secret: "${DETOUR_CLIENT_SECRET}"
              scopes: ["openid", "email", "profile"]
              response_mode: "query"
              token_endpoint_auth: "client_secret_basic"
              ca_file: null
              timeout: "10s"
            session:
              cookie_name: "_detour"
              secrets: ["${DETOUR_COOKIE_SECRET}"]
              lifetime: "8h"
              refresh_before: "5m"
              cookie_domain: null
              store: "cookie"
            return_to:
              allowed_hosts: ["app.example.com", "*.corp.example", "localhost:8080"]
              logout_allowed_hosts: null
              default: "/"
              preserve_post: false
            policies: ["policies/"]
            """, environment: ["DETOUR_CLIENT_SECRET": "s3cret", "DETOUR_COOKIE_SECRET": Self.secret])
        #expect(configuration.server.publicURL?.href == "https://auth.example.com/")
        #expect(configuration.oidc?.clientSecret == "s3cret")
        #expect(configuration.oidc?.timeout == .seconds(10))
        #expect(configuration.session.lifetime == .seconds(8 * 3600))
        #expect(
            configuration.returnTo.allowedHosts.map(\.description) == [
                "app.example.com", "*.corp.example", "localhost:8080",
            ])
        #expect(configuration.returnTo.logoutAllowedHosts == nil)
        #expect(configuration.signInTargets.evaluate("https://a.corp.example/").location != nil)
    }

    @Test func unknownKeysAreErrorsWithPositionAndSuggestion() {
        #expect(
            diagnostics("return_to:\n  allowed_host: [\"a.example\"]\n")
                == ["detour.yaml:2:3: unknown key \"return_to.allowed_host\" (did you mean \"allowed_hosts\"?)"])
        #expect(
            diagnostics("sever:\n  listen: x\n") == [
                "detour.yaml:1:1: unknown key \"sever\" (did you mean \"server\"?)"
            ])
    }

    @Test func everyErrorOfAFileIsReportedAtOnce() {
        let found = diagnostics(
            """
            server:
              public_url: "https://auth.example.com/path"
              redirect_http_to_https: "yes"
            session:
              lifetime: "8 hours"
            return_to:
              allowed_hosts: ["*.com", "ok.example"]
              preserve_post: 1
            """)
        #expect(
            found == [
                "detour.yaml:2:15: server.public_url must be an origin such as https://auth.example.com, not \"https://auth.example.com/path\"",
                "detour.yaml:3:27: server.redirect_http_to_https must be true or false",
                "detour.yaml:5:13: session.lifetime must be a duration such as 30s, 5m, 8h or 1h30m, not \"8 hours\"",
                "detour.yaml:7:19: return_to.allowed_hosts: allowed host \"*.com\" matches every host under the public suffix \"com\"",
                "detour.yaml:8:18: return_to.preserve_post must be true or false",
            ])
    }

    /// Issue 14.10: a key that is accepted has its effect; a security feature not built yet is refused, never ignored.
    @Test func featuresNotBuiltYetAreRefusedNotIgnored() throws {
        #expect(
            diagnostics("session:\n  store: \"postgres://u:p@db/x?sslmode=require\"\n").first?.contains(
                "not supported yet") == true)
        let accepted = try load("session:\n  store: \"cookie\"\nreturn_to:\n  preserve_post: true\n")
        #expect(accepted.session.store == .cookie && accepted.returnTo.preservePost)
        #expect(accepted.engineSettings.preservedFormLimit == 1024 * 1024, "A2b keeps forms of up to 1 MiB")
        let capped = try load("server:\n  max_request_body: 1000\nreturn_to:\n  preserve_post: true\n")
        #expect(capped.engineSettings.preservedFormLimit == 1000, "and never more than any body may be")
    }

    @Test func claimPathsAndAuthParamsAreRead() throws {
        let oidc = "oidc:\n  issuer: https://idp.example\n  client_id: c\n"
        let loaded = try load(
            oidc + "  claims:\n    user: email\n    groups: realm_access.roles\n"
                + "  auth_params:\n    prompt: login\n    max_age: 300\n    acr_values: \"gold silver\"\n")
        #expect(loaded.oidc?.claims.user == "email" && loaded.oidc?.claims.groups == "realm_access.roles")
        #expect(loaded.oidc?.claims.email == "email", "the others keep their defaults")
        #expect(
            loaded.oidc?.authParams.map { "\($0.name)=\($0.value)" } == [
                "prompt=login", "max_age=300", "acr_values=gold silver",
            ])
        #expect(
            diagnostics(oidc + "  auth_params:\n    state: x\n    redirect_uri: y\n") == [
                "detour.yaml:5:5: oidc.auth_params.state: Detour sets state itself",
                "detour.yaml:6:5: oidc.auth_params.redirect_uri: Detour sets redirect_uri itself",
            ])
        #expect(
            diagnostics(oidc + "  claims:\n    groups: realm_access..roles\n    role: x\n") == [
                "detour.yaml:5:13: oidc.claims.groups is not a claim path such as realm_access.roles: \"realm_access..roles\"",
                "detour.yaml:6:5: unknown key \"oidc.claims.role\"",
            ])
    }

    /// With the cookie store nothing could end a session, so back-channel logout would be a promise not kept.
    @Test func backChannelLogoutNeedsAServerSideStore() throws {
        let oidc = "oidc:\n  issuer: https://idp.example\n  client_id: c\n  backchannel_logout: true\n"
        #expect(
            diagnostics(oidc) == [
                "detour.yaml:4:23: oidc.backchannel_logout needs sessions kept server-side (session.store: memory or "
                    + "a PostgreSQL URL): with the cookie store, nothing could end a signed-in browser's session"
            ])
        #expect(try load(oidc + "session:\n  store: memory\n").oidc?.backchannelLogout == true)
        #expect(try load("oidc:\n  issuer: https://idp.example\n  client_id: c\n").oidc?.backchannelLogout == false)
    }

    @Test func sessionStoresAreCookieMemoryOrAPostgreSQLURL() throws {
        #expect(try load("session:\n  store: memory\n").session.store == .memory)
        let store = try load("session:\n  store: \"postgresql://detour:p%40ss@db.internal:6432/sessions\"\n")
        let url = try #require({ if case .postgres(let url) = store.session.store { url } else { nil } }())
        #expect(url.user == "detour" && url.password == "p@ss" && url.host == "db.internal" && url.port == 6432)
        #expect(url.database == "sessions" && url.verifiedTLS, "TLS is verified off loopback unless sslmode says")
        #expect(url.description == "postgres://detour:***@db.internal:6432/sessions")
        let loopback = try DatabaseURL(parsing: "postgres://u@127.0.0.1/db")
        #expect(!loopback.verifiedTLS && loopback.port == 5432 && loopback.password == nil)
        #expect(try DatabaseURL(parsing: "postgres://u:p@[::1]:5433/db?sslmode=verify-full").verifiedTLS)
    }

    /// A bad URL is named by its place and problem; the password it holds is never printed.
    @Test func aBadDatabaseURLIsAConfigErrorWithoutThePassword() throws {
        for (url, problem) in [
            ("redis://u:secret@h/db", "is not a postgres://USER:PASS@HOST:PORT/DB URL"),
            ("postgres://:secret@h/db", "names no user"),
            ("postgres://u:secret@/db", "names no host"),
            ("postgres://u:secret@h/db?sslmode=prefer", "sslmode \"prefer\" is not supported yet"),
            ("postgres://u:secret@h/db?connect_timeout=3", "parameter \"connect_timeout\" is not supported yet"),
        ] {
            let found = diagnostics("session:\n  store: \"\(url)\"\n")
            #expect(found.count == 1 && found[0].hasPrefix("detour.yaml:2:10: session.store: "), "\(found)")
            #expect(found.first?.contains(problem) == true, "\(url): \(found)")
            #expect(found.first?.contains("secret") == false, "the password is never printed")
        }
    }

    @Test func environmentInterpolation() throws {
        let configuration = try load(
            "server:\n  public_url: \"https://${HOST}:${PORT}\"\n", environment: ["HOST": "a.example", "PORT": "8443"])
        #expect(configuration.server.publicURL?.href == "https://a.example:8443/")
        #expect(
            diagnostics("oidc:\n  issuer: x\n  client_id: y\n  client_secret: ${NOPE}\n")
                == ["detour.yaml:4:18: oidc.client_secret uses ${NOPE}, but the environment variable NOPE is not set"])
    }

    @Test func theDefaultTargetMustItselfBeAllowed() {
        #expect(
            diagnostics("return_to:\n  allowed_hosts: [\"app.example.com\"]\n  default: \"https://evil.example/\"\n")
                == [
                    "detour.yaml:3:12: return_to.default \"https://evil.example/\" is not allowed by return_to.allowed_hosts: the host is not in the allowed hosts"
                ])
    }

    @Test func syntaxErrorsHaveAPosition() {
        let found = diagnostics("server:\n  listen: [unclosed\n")
        #expect(found.count == 1)
        #expect(found.first?.hasPrefix("detour.yaml:3:") == true || found.first?.hasPrefix("detour.yaml:2:") == true)
    }

    @Test func secretsMustBeLongEnough() {
        #expect(
            diagnostics("session:\n  secrets: [\"c2hvcnQ=\"]\n") == [
                "detour.yaml:2:13: session.secrets entries must be base64 of at least 32 random bytes"
            ])
    }

    /// Endpoints are matched on the normalised path, so a prefix must already be written that way.
    @Test(arguments: ["/café", "/sso%7e", "/a//b", "/a/./b", "/a/../b", "oauth2", "/oauth2/"])
    func aPrefixNormalisationWouldChangeIsRefused(prefix: String) {
        #expect(diagnostics("server:\n  prefix: \"\(prefix)\"\n").first?.contains("server.prefix must be") == true)
    }

    @Test func anEmptyFileHasTheDefaults() throws {
        let configuration = try load("")
        #expect(configuration.baseURL.href == "http://localhost:4180/")
        #expect(configuration.server.prefix == "/oauth2")
        #expect(configuration.session.cookieName == "_detour")
    }

    @Test(arguments: [("30s", 30), ("5m", 300), ("8h", 28800), ("1h30m", 5400)])
    func durations(text: String, seconds: Int64) {
        #expect(parseDuration(text) == .seconds(seconds))
    }

    @Test(arguments: ["", "5", "m", "5x", "-5s", "5 s"])
    func badDurations(text: String) {
        #expect(parseDuration(text) == nil)
    }

    @Test(arguments: [("1048576", 1 << 20), ("512KiB", 512 << 10), ("10MB", 10 << 20), ("1GiB", 1 << 30), ("0", 0)])
    func sizes(text: String, bytes: Int) {
        #expect(parseByteSize(text) == bytes)
    }

    @Test(arguments: ["", "MiB", "10 MiB", "10mb", "-1", "1TiB", "99999999999999999999GiB"])
    func badSizes(text: String) {
        #expect(parseByteSize(text) == nil)
    }

    @Test func proxyLimitsAndTimeoutsAreRead() throws {
        let configuration = try load(
            "server:\n  max_request_body: \"10MiB\"\n  upstream_timeout: \"2s\"\n  upstream_connect_timeout: \"250ms\"\n"
        )
        #expect(configuration.server.maxRequestBody == 10 << 20)
        #expect(configuration.server.upstreamTimeout == .seconds(2))
        #expect(configuration.server.upstreamConnectTimeout == .milliseconds(250))
        #expect(throws: ConfigError.self) { try load("server:\n  max_request_body: \"lots\"\n") }
    }
}
