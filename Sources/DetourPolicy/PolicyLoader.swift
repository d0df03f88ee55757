import DetourRedirect
public import DetourYAML
public import Yams

extension PolicySet {
    static let routeKeys = [
        "name", "match", "upstream", "upstream_tls", "allow", "public", "methods", "bearer", "preflight",
        "pass_access_token",
    ]
    static let upstreamTLSKeys = ["ca_file", "server_name", "cert_file", "key_file"]
    static let redirectKeys = ["name", "match", "methods", "to", "status"]
    static let matchKeys = ["host", "path"]
    static let allowKeys = ["authenticated", "email", "email_domain", "group", "claim"]

    /// Every key a route, redirect rule, `match` or allow item may hold: what the reference documents.
    public static var allKeys: [String] {
        routeKeys + redirectKeys + matchKeys.map { "match.\($0)" } + upstreamTLSKeys.map { "upstream_tls.\($0)" }
            + allowKeys
    }

    /// Parses a policy file's text (`routes:` and `redirects:`).
    public static func parse(_ text: String, file: String, environment: [String: String]) throws(ConfigError)
        -> PolicySet
    {
        var reader = YAMLReader(file: file, environment: environment)
        var policies = PolicySet()
        if let root = try YAMLReader.compose(text, file: file),
            let entries = reader.mapping(root, "", keys: ["routes", "redirects"])
        {
            policies = read(routes: entries["routes"], redirects: entries["redirects"], with: &reader)
        }
        if let error = reader.error { throw error }
        return policies
    }

    /// Reads `routes:` and `redirects:` nodes, from a policy file or inline in `detour.yaml`.
    public static func read(routes: Node?, redirects: Node?, with reader: inout YAMLReader) -> PolicySet {
        var policies = PolicySet()
        if let routes, let items = reader.sequence(routes, "routes") {
            for (index, item) in items.enumerated() {
                if let route = readRoute(item, "routes[\(index)]", &reader) { policies.routes.append(route) }
            }
        }
        if let redirects, let items = reader.sequence(redirects, "redirects") {
            for (index, item) in items.enumerated() {
                if let rule = readRedirect(item, "redirects[\(index)]", &reader) { policies.redirects.append(rule) }
            }
        }
        return policies
    }

    private static func location(_ node: Node, _ reader: YAMLReader) -> SourceLocation {
        SourceLocation(file: reader.file, line: node.mark?.line ?? 1, column: node.mark?.column ?? 1)
    }

    private static func readRoute(_ node: Node, _ path: String, _ reader: inout YAMLReader) -> Route? {
        guard let entries = reader.mapping(node, path, keys: routeKeys) else { return nil }
        let before = reader.diagnostics.count
        let name = readName(entries["name"], node, path, &reader)
        let (host, prefix) = readMatch(entries["match"], path, &reader)
        var upstream: BrowserURL?
        if let value = entries["upstream"] {
            upstream = readUpstream(value, "\(path).upstream", &reader)
        } else {
            reader.report(node, "\(path).upstream is required")
        }
        var allow: [AllowRule] = []
        if let value = entries["allow"], let items = reader.sequence(value, "\(path).allow") {
            allow = items.enumerated().compactMap { readAllowRule($1, "\(path).allow[\($0)]", &reader) }
        }
        var publicPaths: [PathPrefix] = []
        if let value = entries["public"], let items = reader.strings(value, "\(path).public") {
            publicPaths = items.compactMap { readPathPrefix($0.0, $0.1, "\(path).public", &reader) }
        }
        let methods = entries["methods"].flatMap { readMethods($0, "\(path).methods", &reader) }
        let bearer = entries["bearer"].flatMap { reader.choice($0, "\(path).bearer", as: BearerMode.self) } ?? .off
        let preflight =
            entries["preflight"].flatMap { reader.choice($0, "\(path).preflight", as: PreflightMode.self) } ?? .pass
        let passAccessToken = entries["pass_access_token"].flatMap { reader.bool($0, "\(path).pass_access_token") }
        var tls = UpstreamTLS()
        if let upstream {
            tls = readUpstreamTLS(entries["upstream_tls"], for: upstream, node, "\(path).upstream_tls", &reader)
        }
        guard reader.diagnostics.count == before, let upstream else { return nil }
        return Route(
            name: name, host: host, path: prefix, upstream: upstream, allow: allow, publicPaths: publicPaths,
            methods: methods, bearer: bearer, preflight: preflight, passAccessToken: passAccessToken ?? false,
            upstreamTLS: tls, location: location(node, reader))
    }

    /// `upstream_tls`, for `https://` upstreams only. An upstream addressed by IP needs `server_name`: a certificate
    /// is verified against a name.
    private static func readUpstreamTLS(
        _ node: Node?, for upstream: BrowserURL, _ route: Node, _ path: String, _ reader: inout YAMLReader
    ) -> UpstreamTLS {
        var tls = UpstreamTLS()
        if let node {
            guard upstream.scheme == .https else {
                reader.report(node, "\(path) applies to https:// upstreams only")
                return tls
            }
            guard let entries = reader.mapping(node, path, keys: upstreamTLSKeys) else { return tls }
            func file(_ key: String) -> String? {
                guard let value = entries[key], !reader.isNull(value), let text = reader.string(value, "\(path).\(key)")
                else { return nil }
                return reader.path(text)
            }
            tls.caFile = file("ca_file")
            tls.certFile = file("cert_file")
            tls.keyFile = file("key_file")
            if (tls.certFile == nil) != (tls.keyFile == nil) {
                reader.report(
                    node, "\(path).cert_file and \(path).key_file go together (a client certificate and its key)")
            }
            if let value = entries["server_name"], !reader.isNull(value),
                let text = reader.string(value, "\(path).server_name")
            {
                if let url = try? BrowserURL(parsing: "https://\(text)/"), case .domain(let name) = url.host,
                    url.port == nil, name == text.lowercased()
                {
                    tls.serverName = name
                } else {
                    reader.report(value, "\(path).server_name must be a host name such as app.internal: \"\(text)\"")
                }
            }
        }
        let addressedByName = if case .domain = upstream.host { true } else { false }
        if upstream.scheme == .https, tls.serverName == nil, !addressedByName {
            reader.report(
                node ?? route,
                "\(path).server_name is required for an https:// upstream addressed by IP: the name its certificate is "
                    + "verified against")
        }
        return tls
    }

    private static func readRedirect(_ node: Node, _ path: String, _ reader: inout YAMLReader) -> RedirectRule? {
        guard let entries = reader.mapping(node, path, keys: redirectKeys) else {
            return nil
        }
        let before = reader.diagnostics.count
        let name = readName(entries["name"], node, path, &reader)
        let (host, prefix) = readMatch(entries["match"], path, &reader)
        let methods = entries["methods"].flatMap { readMethods($0, "\(path).methods", &reader) }
        var target: RedirectTarget?
        if let value = entries["to"], let text = reader.string(value, "\(path).to") {
            if text.hasPrefix("/") {
                target = readPathPrefix(text, value, "\(path).to", &reader).map { .path($0.value) }
            } else if let url = try? BrowserURL(parsing: text), !url.hasCredentials {
                target = .url(url)
            } else {
                reader.report(value, "\(path).to must be a path such as /v2/ or an http(s) URL, not \"\(text)\"")
            }
        } else if entries["to"] == nil {
            reader.report(node, "\(path).to is required")
        }
        var status: RedirectStatus?
        if let value = entries["status"] {
            if let code = reader.int(value, "\(path).status") {
                status = RedirectStatus(rawValue: code)
                if status == nil { reader.report(value, "\(path).status must be 301, 302, 303, 307 or 308") }
            }
        } else {
            reader.report(node, "\(path).status is required (307 or 308 keep the method and body)")
        }
        guard reader.diagnostics.count == before, let target, let status else { return nil }
        return RedirectRule(
            name: name, host: host, path: prefix, methods: methods, target: target, status: status,
            location: location(node, reader))
    }

    private static func readName(_ node: Node?, _ parent: Node, _ path: String, _ reader: inout YAMLReader) -> String {
        guard let node else {
            reader.report(parent, "\(path).name is required")
            return ""
        }
        guard let name = reader.string(node, "\(path).name"), !name.isEmpty else {
            reader.report(node, "\(path).name must not be empty")
            return ""
        }
        return name
    }

    private static func readMatch(_ node: Node?, _ path: String, _ reader: inout YAMLReader) -> (
        HostPattern, PathPrefix
    ) {
        guard let node, let entries = reader.mapping(node, "\(path).match", keys: matchKeys) else {
            return (.any, PathPrefix("/"))
        }
        var host = HostPattern.any
        if let value = entries["host"], let text = reader.string(value, "\(path).match.host") {
            host = readHostPattern(text, value, "\(path).match.host", &reader) ?? .any
        }
        var prefix = PathPrefix("/")
        if let value = entries["path"], let text = reader.string(value, "\(path).match.path") {
            prefix = readPathPrefix(text, value, "\(path).match.path", &reader) ?? prefix
        }
        return (host, prefix)
    }

    static func readHostPattern(_ text: String, _ node: Node, _ path: String, _ reader: inout YAMLReader)
        -> HostPattern?
    {
        let wildcard = text.hasPrefix("*.")
        let name = wildcard ? String(text.dropFirst(2)) : text
        guard !name.contains(where: { "*:/@ ".contains($0) }),
            let url = try? BrowserURL(parsing: "http://\(name)/"), case .domain(let normalized) = url.host,
            !normalized.hasSuffix(".")
        else {
            reader.report(node, "\(path) must be a host name without port, optionally \"*.\"-prefixed: \"\(text)\"")
            return nil
        }
        if wildcard, !normalized.contains(".") {
            reader.report(node, "\(path) \"\(text)\" would match every host under a top-level domain")
            return nil
        }
        return wildcard ? .subdomains(of: normalized) : .exactly(normalized)
    }

    static func readPathPrefix(_ text: String, _ node: Node, _ path: String, _ reader: inout YAMLReader) -> PathPrefix?
    {
        guard text.hasPrefix("/"), !text.contains("?"), !text.contains("#") else {
            reader.report(node, "\(path) must be a path starting with /, without query: \"\(text)\"")
            return nil
        }
        do {
            let normalized = try RequestPath(normalizing: text).path
            guard normalized == text else {
                reader.report(node, "\(path) \"\(text)\" is not normalised; write \"\(normalized)\"")
                return nil
            }
            return PathPrefix(text)
        } catch {
            reader.report(node, "\(path) \"\(text)\" is not a valid path (\(error.rawValue))")
            return nil
        }
    }

    private static func readUpstream(_ node: Node, _ path: String, _ reader: inout YAMLReader) -> BrowserURL? {
        guard let text = reader.string(node, path) else { return nil }
        guard let url = try? BrowserURL(parsing: text), url.path == "/", url.query == nil, url.fragment == nil,
            !url.hasCredentials
        else {
            reader.report(node, "\(path) must be an http(s) origin such as http://127.0.0.1:3000, not \"\(text)\"")
            return nil
        }
        return url
    }

    private static func readMethods(_ node: Node, _ path: String, _ reader: inout YAMLReader) -> Set<String>? {
        guard let items = reader.strings(node, path) else { return nil }
        var methods: Set<String> = []
        for (method, item) in items {
            guard !method.isEmpty, method.allSatisfy({ $0.isASCII && ($0.isUppercase || $0 == "-") }) else {
                reader.report(item, "\(path): \"\(method)\" is not an upper-case HTTP method such as GET or POST")
                continue
            }
            methods.insert(method)
        }
        return methods
    }

    private static func readAllowRule(_ node: Node, _ path: String, _ reader: inout YAMLReader) -> AllowRule? {
        guard let entries = reader.mapping(node, path, keys: allowKeys) else { return nil }
        guard !entries.isEmpty else {
            reader.report(node, "\(path) is empty: give authenticated, email, email_domain, group or claim")
            return nil
        }
        var conditions: [AllowCondition] = []
        for key in allowKeys {
            guard let value = entries[key] else { continue }
            switch key {
            case "authenticated":
                guard let flag = reader.bool(value, "\(path).authenticated") else { continue }
                if flag {
                    conditions.append(.authenticated)
                } else {
                    reader.report(value, "\(path).authenticated: false grants nothing; remove the rule")
                }
            case "email":
                conditions.append(.email(nonEmptyList(value, "\(path).email", &reader).map { $0.lowercased() }))
            case "email_domain":
                let domains = nonEmptyList(value, "\(path).email_domain", &reader)
                for domain in domains where domain.contains("@") || domain.hasSuffix(".") || domain.isEmpty {
                    reader.report(value, "\(path).email_domain: \"\(domain)\" is not a domain")
                }
                conditions.append(.emailDomain(domains.map { $0.lowercased() }))
            case "group":
                conditions.append(.group(nonEmptyList(value, "\(path).group", &reader)))
            default:
                guard case .mapping(let claims) = value else {
                    reader.report(value, "\(path).claim must map claim names to lists of values")
                    continue
                }
                var required: [String: [String]] = [:]
                for (nameNode, valuesNode) in claims {
                    guard let name = reader.string(nameNode, "\(path).claim") else { continue }
                    required[name] =
                        if case .scalar = valuesNode {
                            reader.string(valuesNode, "\(path).claim.\(name)").map { [$0] } ?? []
                        } else { nonEmptyList(valuesNode, "\(path).claim.\(name)", &reader) }
                }
                conditions.append(.claim(required))
            }
        }
        return AllowRule(conditions: conditions, location: location(node, reader))
    }

    private static func nonEmptyList(_ node: Node, _ path: String, _ reader: inout YAMLReader) -> [String] {
        guard let items = reader.strings(node, path) else { return [] }
        if items.isEmpty { reader.report(node, "\(path) is empty and would match nobody") }
        return items.map(\.0)
    }
}
