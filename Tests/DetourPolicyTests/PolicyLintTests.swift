import DetourRedirect
import DetourYAML
import Foundation
import Testing

@testable import DetourPolicy

@Suite struct PolicyLintTests {
    static let allowlist = ReturnTargetPolicy(
        base: try! BrowserURL(parsing: "https://auth.example.com"),
        allowedHosts: [try! AllowedHost(parsing: "*.example.com")])

    func findings(_ yaml: String) throws -> [String] {
        PolicyLint.check(try PolicySet.parse(yaml, file: "p.yaml", environment: [:]), returnTargets: Self.allowlist)
            .map { "\($0.severity.rawValue): \($0.message)" }
    }

    static let route = "{ name: app, upstream: \"http://127.0.0.1:1\", allow: [{ authenticated: true }] }"

    /// Each finding: a policy that triggers it, and the nearest one that does not.
    @Test(arguments: [
        (
            "redirects:\n  - { name: r, match: { path: /a }, to: /b, status: 302 }",
            "redirects:\n  - { name: r, match: { path: /a }, methods: [GET, HEAD], to: /b, status: 302 }",
            "error: redirect \"r\" answers 302 to every method: browsers turn a POST into a GET on 301 and 302; use 307/308, or limit methods to GET and HEAD"
        ),
        (
            "redirects:\n  - { name: r, match: { path: /a }, methods: [GET, POST], to: /b, status: 301 }",
            "redirects:\n  - { name: r, match: { path: /a }, methods: [GET, POST], to: /b, status: 308 }",
            "error: redirect \"r\" answers 301 to GET, POST: browsers turn a POST into a GET on 301 and 302; use 307/308, or limit methods to GET and HEAD"
        ),
        (
            "redirects:\n  - { name: r, match: { path: /a }, to: \"https://evil.example/\", status: 307 }",
            "redirects:\n  - { name: r, match: { path: /a }, to: \"https://api.example.com/\", status: 307 }",
            "error: redirect \"r\" sends 307 to https://evil.example, which is not in return_to.allowed_hosts (host): it would carry request bodies and credentials there"
        ),
        (
            "routes:\n  - \(route)\n  - \(route.replacingOccurrences(of: "name: app", with: "name: app2"))",
            "routes:\n  - \(route)\n  - \(route.replacingOccurrences(of: "name: app", with: "name: app2, match: { path: /x }"))",
            "error: route \"app2\" is shadowed by route \"app\" (same host and path): it never matches"
        ),
        (
            "routes:\n  - \(route)\nredirects:\n  - { name: r, match: { path: / }, to: /b, status: 308 }",
            "routes:\n  - \(route)\nredirects:\n  - { name: r, match: { path: / }, methods: [GET], to: /b, status: 308 }",
            "error: route \"app\" is shadowed by redirect \"r\", which takes all its requests"
        ),
        (
            "routes:\n  - \(route)\nredirects:\n  - { name: app, match: { path: /x }, to: /b, status: 308 }",
            "routes:\n  - \(route)\nredirects:\n  - { name: r, match: { path: /x }, to: /b, status: 308 }",
            "error: duplicate name \"app\" (first used at p.yaml:2:5)"
        ),
        (
            "routes:\n  - { name: app, upstream: \"http://10.0.0.5:80\", allow: [{ authenticated: true }] }",
            "routes:\n  - { name: app, upstream: \"https://10.0.0.5\", upstream_tls: { server_name: app.internal }, allow: [{ authenticated: true }] }",
            "warning: route \"app\" sends identities and tokens to http://10.0.0.5 over plain http"
        ),
        (
            "routes:\n  - { name: app, upstream: \"http://127.0.0.1:1\" }",
            "routes:\n  - { name: app, upstream: \"http://127.0.0.1:1\", public: [/health] }",
            "warning: route \"app\" has no allow rule and no public path: nobody gets in"
        ),
        (
            "routes:\n  - { name: app, upstream: \"http://127.0.0.1:1\", allow: [{ authenticated: true }, { group: [a] }] }",
            "routes:\n  - { name: app, upstream: \"http://127.0.0.1:1\", allow: [{ email: [a@b.c] }, { group: [a] }] }",
            "warning: this rule of route \"app\" grants nothing more: authenticated: true already admits everyone signed in"
        ),
    ])
    func finding(triggering: String, notTriggering: String, message: String) throws {
        #expect(try findings(triggering) == [message])
        #expect(try findings(notTriggering).isEmpty)
    }
}
