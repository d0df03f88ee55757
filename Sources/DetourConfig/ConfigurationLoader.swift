import DetourPolicy
import DetourRedirect
public import DetourYAML
public import Foundation
import Yams

extension Configuration {
    static let topKeys = ["server", "oidc", "session", "return_to", "policies", "routes", "redirects"]
    static let serverKeys = [
        "listen", "public_url", "prefix", "trusted_proxies", "redirect_http_to_https", "upstream_connect_timeout",
        "upstream_timeout", "max_request_body", "limits", "tls", "http_listen", "hsts", "shutdown_grace",
        "admin_listen", "access_log",
    ]
    static let tlsKeys = ["cert_file", "key_file"]
    static let limitsKeys = [
        "max_connections", "header_timeout", "body_timeout", "idle_timeout", "max_header_bytes", "max_body_bytes",
    ]
    static let oidcKeys = [
        "issuer", "client_id", "client_secret", "client_secret_file", "scopes", "response_mode", "token_endpoint_auth",
        "ca_file", "timeout", "bearer_audiences", "introspection_url", "introspection_cache_ttl", "backchannel_logout",
        "claims", "auth_params", "private_key_file",
    ]
    static let claimKeys = ["user", "email", "groups", "preferred_username"]
    /// The authorization-request parameters Detour sets itself, which `oidc.auth_params` may not replace.
    static let reservedAuthParams: Set<String> = [
        "response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "code_challenge",
        "code_challenge_method", "response_mode", "request", "request_uri",
    ]
    static let sessionKeys = ["cookie_name", "secrets", "lifetime", "refresh_before", "cookie_domain", "store"]
    static let returnToKeys = ["allowed_hosts", "logout_allowed_hosts", "default", "preserve_post"]

    /// Every key a configuration file may hold, dotted (`server.public_url`): what the reference documents.
    public static var allKeys: [String] {
        topKeys + serverKeys.map { "server.\($0)" } + oidcKeys.map { "oidc.\($0)" }
            + limitsKeys.map { "server.limits.\($0)" } + sessionKeys.map { "session.\($0)" }
            + returnToKeys.map { "return_to.\($0)" } + tlsKeys.map { "server.tls.\($0)" }
            + claimKeys.map { "oidc.claims.\($0)" }
    }

    /// Loads and validates a configuration file; reads nothing but the file and `environment`.
    ///
    /// - Throws: ``ConfigError`` listing every problem, each as `FILE:LINE:COLUMN: message`.
    public static func load(file: String, environment: [String: String] = ProcessInfo.processInfo.environment)
        throws(ConfigError) -> Configuration
    {
        try parse(YAMLReader.readFile(file), file: file, environment: environment)
    }

    /// Validates configuration text as if it were the contents of `file`.
    public static func parse(_ text: String, file: String, environment: [String: String]) throws(ConfigError)
        -> Configuration
    {
        let root = try YAMLReader.compose(text, file: file)
        var reader = YAMLReader(file: file, environment: environment)
        var configuration = Configuration(file: file)
        if let root {
            configuration.read(root, with: &reader)
        }
        if let error = reader.error { throw error }
        return configuration
    }

    private mutating func read(_ root: Node, with reader: inout YAMLReader) {
        guard let top = reader.mapping(root, "", keys: Self.topKeys) else { return }
        if let node = top["server"] { readServer(node, &reader) }
        if let node = top["oidc"] { readOIDC(node, &reader) }
        if let node = top["session"] { readSession(node, &reader) }
        if let node = top["return_to"] { readReturnTo(node, &reader) }
        if let node = top["policies"], let list = reader.strings(node, "policies") { policies = list.map(\.0) }
        inlinePolicies = PolicySet.read(routes: top["routes"], redirects: top["redirects"], with: &reader)
        checkDefaultTarget(top["return_to"] ?? root, &reader)
        if oidc?.backchannelLogout == true, case .cookie = session.store, let node = top["oidc"]?["backchannel_logout"]
        {
            reader.report(
                node,
                "oidc.backchannel_logout needs sessions kept server-side (session.store: memory or a PostgreSQL URL): "
                    + "with the cookie store, nothing could end a signed-in browser's session")
        }
    }

    private mutating func readServer(_ node: Node, _ reader: inout YAMLReader) {
        guard let entries = reader.mapping(node, "server", keys: Self.serverKeys) else { return }
        if let value = entries["listen"], let text = reader.string(value, "server.listen") { server.listen = text }
        if let value = entries["public_url"], let text = reader.string(value, "server.public_url") {
            do {
                let url = try BrowserURL(parsing: text)
                if url.path != "/" || url.query != nil || url.fragment != nil || url.hasCredentials {
                    reader.report(
                        value, "server.public_url must be an origin such as https://auth.example.com, not \"\(text)\"")
                } else {
                    server.publicURL = url
                }
            } catch {
                reader.report(value, "server.public_url is not an http(s) URL (\(error)): \"\(text)\"")
            }
        }
        if let value = entries["prefix"], let text = reader.string(value, "server.prefix") {
            // Endpoints are matched on the normalised path: a prefix normalisation would change could never match.
            if text.hasPrefix("/"), text.count > 1, !text.hasSuffix("/"),
                !text.contains(where: { "?#\\ ".contains($0) }), (try? RequestPath(normalizing: text))?.path == text
            {
                server.prefix = text
            } else {
                reader.report(
                    value,
                    "server.prefix must be a path such as /oauth2 (a leading slash, no trailing one, written as "
                        + "Detour normalises paths: no //, no dot segments, ASCII or percent-encoded)")
            }
        }
        if let value = entries["trusted_proxies"], let list = reader.strings(value, "server.trusted_proxies") {
            server.trustedProxies = list.map(\.0)
        }
        if let value = entries["redirect_http_to_https"], let flag = reader.bool(value, "server.redirect_http_to_https")
        {
            server.redirectHTTPToHTTPS = flag
        }
        if let value = entries["upstream_connect_timeout"],
            let duration = reader.duration(value, "server.upstream_connect_timeout")
        {
            server.upstreamConnectTimeout = duration
        }
        if let value = entries["upstream_timeout"], let duration = reader.duration(value, "server.upstream_timeout") {
            server.upstreamTimeout = duration
        }
        if let value = entries["shutdown_grace"], let duration = reader.duration(value, "server.shutdown_grace") {
            server.shutdownGrace = duration
        }
        if let value = entries["access_log"] {
            // YAML 1.1 reads a bare `off` as false: it means what it says.
            if case .scalar = value, value.tag.rawValue == Tag.Name.bool.rawValue, value.bool == false {
                server.accessLog = .off
            } else if let format = reader.choice(value, "server.access_log", as: AccessLogFormat.self) {
                server.accessLog = format
            }
        }
        if let value = entries["admin_listen"], !reader.isNull(value),
            let text = reader.string(value, "server.admin_listen")
        {
            server.adminListen = text
        }
        if let value = entries["max_request_body"], !reader.isNull(value),
            let size = reader.byteSize(value, "server.max_request_body")
        {
            server.maxRequestBody = size
        }
        if let value = entries["limits"] {
            readLimits(value, maxRequestBodyGiven: entries["max_request_body"] != nil, &reader)
        }
        readEdge(entries, &reader)
    }

    private mutating func readLimits(_ node: Node, maxRequestBodyGiven: Bool, _ reader: inout YAMLReader) {
        guard let entries = reader.mapping(node, "server.limits", keys: Self.limitsKeys) else { return }
        if let value = entries["max_connections"], let count = reader.int(value, "server.limits.max_connections") {
            if count < 1 {
                reader.report(value, "server.limits.max_connections must be at least 1")
            } else {
                server.limits.maxConnections = count
            }
        }
        let timeouts: [(String, WritableKeyPath<Limits, Duration>)] = [
            ("header_timeout", \.headerTimeout), ("body_timeout", \.bodyTimeout), ("idle_timeout", \.idleTimeout),
        ]
        for (key, field) in timeouts {
            if let value = entries[key], let duration = reader.duration(value, "server.limits.\(key)") {
                if duration <= .zero {
                    reader.report(value, "server.limits.\(key) must be longer than 0s")
                } else {
                    server.limits[keyPath: field] = duration
                }
            }
        }
        if let value = entries["max_header_bytes"], let size = reader.byteSize(value, "server.limits.max_header_bytes")
        {
            if size < 1024 {
                reader.report(value, "server.limits.max_header_bytes must be at least 1KiB")
            } else {
                server.limits.maxHeaderBytes = size
            }
        }
        if let value = entries["max_body_bytes"] {
            if maxRequestBodyGiven {
                reader.report(
                    value, "server.limits.max_body_bytes and server.max_request_body are the same limit: keep one")
            } else if !reader.isNull(value), let size = reader.byteSize(value, "server.limits.max_body_bytes") {
                server.maxRequestBody = size
            }
        }
    }

    private mutating func readOIDC(_ node: Node, _ reader: inout YAMLReader) {
        guard let entries = reader.mapping(node, "oidc", keys: Self.oidcKeys) else { return }
        var oidc = OIDC()
        for required in ["issuer", "client_id"] where entries[required] == nil {
            reader.report(node, "oidc.\(required) is required")
        }
        if let value = entries["issuer"], let text = reader.string(value, "oidc.issuer") { oidc.issuer = text }
        if let value = entries["client_id"], let text = reader.string(value, "oidc.client_id") { oidc.clientID = text }
        if let value = entries["client_secret"], let text = reader.string(value, "oidc.client_secret") {
            oidc.clientSecret = text
        }
        if let value = entries["client_secret_file"], let text = reader.string(value, "oidc.client_secret_file") {
            oidc.clientSecretFile = text
        }
        if entries["client_secret"] != nil, let value = entries["client_secret_file"] {
            reader.report(value, "oidc.client_secret and oidc.client_secret_file are exclusive: keep one")
        }
        if let value = entries["private_key_file"], let text = reader.string(value, "oidc.private_key_file") {
            oidc.privateKeyFile = reader.path(text)
        }
        if let value = entries["scopes"], let list = reader.strings(value, "oidc.scopes") {
            oidc.scopes = list.map(\.0)
        }
        if let value = entries["response_mode"],
            let mode = reader.choice(value, "oidc.response_mode", as: OIDC.ResponseMode.self)
        {
            oidc.responseMode = mode
        }
        if let value = entries["token_endpoint_auth"],
            let auth = reader.choice(value, "oidc.token_endpoint_auth", as: OIDC.TokenEndpointAuth.self)
        {
            oidc.tokenEndpointAuth = auth
        }
        // A key or a secret that would not be used is refused: an operator reading the file must see what is sent.
        let signsAssertions = oidc.tokenEndpointAuth == .privateKeyJWT
        if signsAssertions, entries["private_key_file"] == nil, let value = entries["token_endpoint_auth"] {
            reader.report(value, "oidc.token_endpoint_auth: private_key_jwt needs oidc.private_key_file")
        }
        if !signsAssertions, let value = entries["private_key_file"] {
            reader.report(value, "oidc.private_key_file is used only with token_endpoint_auth: private_key_jwt")
        }
        for key in ["client_secret", "client_secret_file"] where signsAssertions {
            if let value = entries[key] {
                reader.report(value, "oidc.\(key) is not used with token_endpoint_auth: private_key_jwt")
            }
        }
        if let value = entries["ca_file"], !reader.isNull(value), let text = reader.string(value, "oidc.ca_file") {
            oidc.caFile = text
        }
        if let value = entries["timeout"], let duration = reader.duration(value, "oidc.timeout") {
            oidc.timeout = duration
        }
        if let value = entries["bearer_audiences"], let list = reader.strings(value, "oidc.bearer_audiences") {
            oidc.bearerAudiences = list.map(\.0)
        }
        if let value = entries["introspection_url"], !reader.isNull(value),
            let text = reader.string(value, "oidc.introspection_url")
        {
            if (try? BrowserURL(parsing: text)) == nil {
                reader.report(value, "oidc.introspection_url is not an http(s) URL: \"\(text)\"")
            } else {
                oidc.introspectionURL = text
            }
        }
        if let value = entries["introspection_cache_ttl"],
            let duration = reader.duration(value, "oidc.introspection_cache_ttl")
        {
            oidc.introspectionCacheTTL = duration
        }
        if let value = entries["backchannel_logout"], let flag = reader.bool(value, "oidc.backchannel_logout") {
            oidc.backchannelLogout = flag
        }
        if let value = entries["claims"], let claims = reader.mapping(value, "oidc.claims", keys: Self.claimKeys) {
            func path(_ key: String) -> String? {
                guard let node = claims[key], let text = reader.string(node, "oidc.claims.\(key)") else { return nil }
                if text.isEmpty || text.hasPrefix(".") || text.hasSuffix(".") || text.contains("..") {
                    reader.report(
                        node, "oidc.claims.\(key) is not a claim path such as realm_access.roles: \"\(text)\"")
                    return nil
                }
                return text
            }
            oidc.claims.user = path("user") ?? oidc.claims.user
            oidc.claims.email = path("email") ?? oidc.claims.email
            oidc.claims.groups = path("groups") ?? oidc.claims.groups
            oidc.claims.preferredUsername = path("preferred_username") ?? oidc.claims.preferredUsername
        }
        if let value = entries["auth_params"] { oidc.authParams = Self.authParams(value, &reader) }
        self.oidc = oidc
    }

    /// `oidc.auth_params`: names to string (or number) values, none of them a parameter Detour sets itself.
    private static func authParams(_ node: Node, _ reader: inout YAMLReader) -> [(name: String, value: String)] {
        if reader.isNull(node) { return [] }
        guard case .mapping(let mapping) = node else {
            reader.report(node, "oidc.auth_params must be a mapping of parameter names to values")
            return []
        }
        var parameters: [(name: String, value: String)] = []
        for (keyNode, valueNode) in mapping {
            guard let name = keyNode.string, !name.isEmpty else {
                reader.report(keyNode, "oidc.auth_params has a key that is not a parameter name")
                continue
            }
            guard !reservedAuthParams.contains(name) else {
                reader.report(keyNode, "oidc.auth_params.\(name): Detour sets \(name) itself")
                continue
            }
            let value: String?
            if case .scalar(let scalar) = valueNode, valueNode.tag.rawValue == Tag.Name.int.rawValue {
                value = scalar.string
            } else {
                value = reader.string(valueNode, "oidc.auth_params.\(name)")
            }
            if let value { parameters.append((name, value)) }
        }
        return parameters
    }

    private mutating func readSession(_ node: Node, _ reader: inout YAMLReader) {
        guard let entries = reader.mapping(node, "session", keys: Self.sessionKeys) else { return }
        if let value = entries["cookie_name"], let text = reader.string(value, "session.cookie_name") {
            session.cookieName = text
        }
        if let value = entries["secrets"], let list = reader.strings(value, "session.secrets") {
            for (secret, item) in list where (Data(base64Encoded: secret)?.count ?? 0) < 32 {
                reader.report(item, "session.secrets entries must be base64 of at least 32 random bytes")
            }
            session.secrets = list.map(\.0)
        }
        if let value = entries["lifetime"], let duration = reader.duration(value, "session.lifetime") {
            session.lifetime = duration
        }
        if let value = entries["refresh_before"], let duration = reader.duration(value, "session.refresh_before") {
            session.refreshBefore = duration
        }
        if let value = entries["cookie_domain"], !reader.isNull(value),
            let text = reader.string(value, "session.cookie_domain")
        {
            session.cookieDomain = text
        }
        if let value = entries["store"], let text = reader.string(value, "session.store") {
            switch text {
            case "cookie": session.store = .cookie
            case "memory": session.store = .memory
            default:
                do {
                    session.store = .postgres(try DatabaseURL(parsing: text))
                } catch {
                    // The message never repeats the URL: it holds the password.
                    reader.report(
                        value, "session.store: not \"cookie\", \"memory\" or a usable PostgreSQL URL: the URL \(error)")
                }
            }
        }
    }

    private mutating func readReturnTo(_ node: Node, _ reader: inout YAMLReader) {
        guard let entries = reader.mapping(node, "return_to", keys: Self.returnToKeys) else { return }
        if let value = entries["allowed_hosts"] {
            returnTo.allowedHosts = Self.allowedHosts(value, "return_to.allowed_hosts", &reader)
        }
        if let value = entries["logout_allowed_hosts"], !reader.isNull(value) {
            returnTo.logoutAllowedHosts = Self.allowedHosts(value, "return_to.logout_allowed_hosts", &reader)
        }
        if let value = entries["default"], let text = reader.string(value, "return_to.default") {
            returnTo.defaultTarget = text
        }
        if let value = entries["preserve_post"], let flag = reader.bool(value, "return_to.preserve_post") {
            returnTo.preservePost = flag
        }
    }

    private static func allowedHosts(_ node: Node, _ path: String, _ reader: inout YAMLReader) -> [AllowedHost] {
        guard let list = reader.strings(node, path) else { return [] }
        return list.compactMap { text, item in
            do {
                return try AllowedHost(parsing: text)
            } catch {
                reader.report(item, "\(path): \(error)")
                return nil
            }
        }
    }

    /// `return_to.default` is where every rejected target goes, so it must itself be allowed.
    private func checkDefaultTarget(_ node: Node, _ reader: inout YAMLReader) {
        let defaultNode: Node =
            if case .mapping(let mapping) = node, let value = mapping["default"] { value } else { node }
        for (name, policy) in [("allowed_hosts", signInTargets), ("logout_allowed_hosts", signOutTargets)] {
            if case .rejected(let reason) = policy.evaluate(returnTo.defaultTarget) {
                reader.report(
                    defaultNode,
                    "return_to.default \"\(returnTo.defaultTarget)\" is not allowed by return_to.\(name): "
                        + reason.explanation)
                return
            }
        }
    }
}

extension Configuration {
    /// Every route and redirect rule: those written inline, then those of `policies` (files, or folders
    /// searched recursively for `*.yaml` and `*.yml` other than `*.test.yaml`), in path order.
    ///
    /// - Throws: ``ConfigError`` with every problem of every file.
    public func loadPolicies(environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigError)
        -> PolicySet
    {
        let folder = URL(fileURLWithPath: file).deletingLastPathComponent()
        var policySet = inlinePolicies
        var diagnostics: [Diagnostic] = []
        var unreadable = false
        for entry in policies {
            let root = entry.hasPrefix("/") ? URL(fileURLWithPath: entry) : folder.appendingPathComponent(entry)
            let configuration = URL(fileURLWithPath: file).standardizedFileURL.path
            for path in PolicyWorkspace.files(in: [root.path], where: PolicyWorkspace.isPolicyFile)
            where path != configuration {
                do {
                    policySet.append(
                        try PolicySet.parse(YAMLReader.readFile(path), file: path, environment: environment))
                } catch {
                    diagnostics += error.diagnostics
                    unreadable = unreadable || error.isUnreadable
                }
            }
        }
        guard diagnostics.isEmpty else { throw ConfigError(diagnostics: diagnostics, isUnreadable: unreadable) }
        return policySet
    }
}
