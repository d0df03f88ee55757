public import DetourRedirect
public import DetourYAML

/// The findings of `detour policy check` (CONTRACT 5.3) for a loaded policy set.
///
/// Errors are mistakes that change who gets in or where requests go; warnings are likely mistakes.
/// Each finding points at the rule it is about.
public enum PolicyLint {
    /// - Parameter returnTargets: the sign-in allowlist, for 307/308 targets.
    public static func check(_ policies: PolicySet, returnTargets: ReturnTargetPolicy) -> [Diagnostic] {
        var findings: [Diagnostic] = []
        func report(_ location: SourceLocation, _ severity: Diagnostic.Severity, _ message: String) {
            findings.append(
                Diagnostic(
                    file: location.file, line: location.line, column: location.column, message: message,
                    severity: severity))
        }

        var names: [String: SourceLocation] = [:]
        for (name, location) in policies.routes.map({ ($0.name, $0.location) })
            + policies.redirects.map({ ($0.name, $0.location) })
        {
            if let first = names[name] {
                report(location, .error, "duplicate name \"\(name)\" (first used at \(first))")
            } else {
                names[name] = location
            }
        }

        for (index, rule) in policies.redirects.enumerated() {
            if !rule.status.preservesMethod, rule.status != .seeOther,
                rule.methods.map({ !$0.isSubset(of: ["GET", "HEAD"]) }) ?? true
            {
                report(
                    rule.location, .error,
                    "redirect \"\(rule.name)\" answers \(rule.status.rawValue) to \(methodList(rule.methods)): "
                        + "browsers turn a POST into a GET on 301 and 302; use 307/308, or limit methods to GET and HEAD"
                )
            }
            if rule.status.preservesMethod, case .url(let target) = rule.target,
                rule.host != .exactly(target.host.description),
                case .rejected(let reason) = returnTargets.evaluate(target.href)
            {
                report(
                    rule.location, .error,
                    "redirect \"\(rule.name)\" sends \(rule.status.rawValue) to \(target.origin), which is not in "
                        + "return_to.allowed_hosts (\(reason.code)): it would carry request bodies and credentials there"
                )
            }
            if let earlier = policies.redirects[..<index].first(where: {
                $0.host == rule.host && $0.path == rule.path && overlaps($0.methods, rule.methods)
            }) {
                report(
                    rule.location, .error,
                    "redirect \"\(rule.name)\" is shadowed by redirect \"\(earlier.name)\" (same host, path and methods)"
                )
            }
        }

        for (index, route) in policies.routes.enumerated() {
            if let earlier = policies.routes[..<index].first(where: { $0.host == route.host && $0.path == route.path })
            {
                report(
                    route.location, .error,
                    "route \"\(route.name)\" is shadowed by route \"\(earlier.name)\" (same host and path): it never matches"
                )
            }
            if let redirect = policies.redirects.first(where: {
                $0.host == route.host && $0.path == route.path && covers($0.methods, route.methods)
            }) {
                report(
                    route.location, .error,
                    "route \"\(route.name)\" is shadowed by redirect \"\(redirect.name)\", which takes all its requests"
                )
            }
            if route.upstream.scheme == .http, !route.upstream.host.isLoopback {
                report(
                    route.location, .warning,
                    "route \"\(route.name)\" sends identities and tokens to \(route.upstream.origin) over plain http")
            }
            if route.allow.isEmpty, route.publicPaths.isEmpty {
                report(
                    route.location, .warning,
                    "route \"\(route.name)\" has no allow rule and no public path: nobody gets in")
            }
            if route.allow.contains(where: { $0.conditions == [.authenticated] }) {
                for rule in route.allow where rule.conditions != [.authenticated] {
                    report(
                        rule.location, .warning,
                        "this rule of route \"\(route.name)\" grants nothing more: authenticated: true already admits everyone signed in"
                    )
                }
            }
            if route.publicPaths.contains(PathPrefix("/")) {
                report(route.location, .warning, "route \"\(route.name)\" makes \"/\" public: the whole route is open")
            }
        }
        return findings.sorted { ($0.file, $0.line, $0.column) < ($1.file, $1.line, $1.column) }
    }

    private static func methodList(_ methods: Set<String>?) -> String {
        methods.map { $0.sorted().joined(separator: ", ") } ?? "every method"
    }

    /// Whether two method sets (`nil`: all) share a method.
    private static func overlaps(_ a: Set<String>?, _ b: Set<String>?) -> Bool {
        guard let a, let b else { return true }
        return !a.isDisjoint(with: b)
    }

    /// Whether `a` (`nil`: all) includes every method of `b`.
    private static func covers(_ a: Set<String>?, _ b: Set<String>?) -> Bool {
        guard let a else { return true }
        guard let b else { return false }
        return b.isSubset(of: a)
    }
}
