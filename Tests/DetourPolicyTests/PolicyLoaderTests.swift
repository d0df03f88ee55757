import DetourYAML
import Testing

@testable import DetourPolicy

@Suite struct PolicyLoaderTests {
    func diagnostics(_ yaml: String) -> [String] {
        do {
            _ = try PolicySet.parse(yaml, file: "p.yaml", environment: [:])
            return []
        } catch {
            return error.diagnostics.map(\.description)
        }
    }

    @Test func everyErrorHasItsLineAndColumn() {
        #expect(
            diagnostics(
                """
                routes:
                  - name: app
                    match: { host: "app.example.com:8080", path: "api" }
                    upstream: "http://127.0.0.1:3000/base"
                    allow:
                      - groups: ["admins"]
                    methods: ["get"]
                    bearer: "yes"
                redirects:
                  - name: hop
                    to: "ftp://x/"
                    status: 304
                """)
                == [
                    "p.yaml:3:20: routes[0].match.host must be a host name without port, optionally \"*.\"-prefixed: \"app.example.com:8080\"",
                    "p.yaml:3:50: routes[0].match.path must be a path starting with /, without query: \"api\"",
                    "p.yaml:4:15: routes[0].upstream must be an http(s) origin such as http://127.0.0.1:3000, not \"http://127.0.0.1:3000/base\"",
                    "p.yaml:6:9: unknown key \"routes[0].allow[0].groups\" (did you mean \"group\"?)",
                    "p.yaml:6:9: routes[0].allow[0] is empty: give authenticated, email, email_domain, group or claim",
                    "p.yaml:7:15: routes[0].methods: \"get\" is not an upper-case HTTP method such as GET or POST",
                    "p.yaml:8:13: routes[0].bearer must be one of \"off\", \"jwt\", \"introspect\"",
                    "p.yaml:11:9: redirects[0].to must be a path such as /v2/ or an http(s) URL, not \"ftp://x/\"",
                    "p.yaml:12:13: redirects[0].status must be 301, 302, 303, 307 or 308",
                ])
    }

    @Test func missingRequiredKeys() {
        #expect(
            diagnostics("routes:\n  - match: { path: \"/\" }\nredirects:\n  - name: r\n    to: /x\n")
                == [
                    "p.yaml:2:5: routes[0].name is required", "p.yaml:2:5: routes[0].upstream is required",
                    "p.yaml:4:5: redirects[0].status is required (307 or 308 keep the method and body)",
                ])
    }

    @Test func pathsMustBeWrittenNormalised() {
        #expect(
            diagnostics(
                "routes:\n  - { name: a, upstream: \"http://127.0.0.1:1\", public: [\"/a/../b\", \"/%2e%2e/\"] }\n")
                == [
                    "p.yaml:2:57: routes[0].public \"/a/../b\" is not normalised; write \"/b\"",
                    "p.yaml:2:68: routes[0].public \"/%2e%2e/\" is not a valid path (bad-path-encoded-dot-segment)",
                ])
    }

    @Test func aWildcardOverATopLevelDomainIsRefused() {
        #expect(
            diagnostics("routes:\n  - { name: a, match: { host: \"*.com\" }, upstream: \"http://127.0.0.1:1\" }\n")
                == ["p.yaml:2:31: routes[0].match.host \"*.com\" would match every host under a top-level domain"])
    }
}
