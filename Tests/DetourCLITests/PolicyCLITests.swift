import Foundation
import Testing

@Suite struct PolicyCLITests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// A scratch copy of the example policies.
    final class Workspace {
        let folder: URL

        init() throws {
            folder = FileManager.default.temporaryDirectory.appendingPathComponent("detour-policy-\(UUID().uuidString)")
            try FileManager.default.copyItem(
                at: PolicyCLITests.repository.appendingPathComponent("policies"), to: folder)
        }

        deinit { try? FileManager.default.removeItem(at: folder) }

        func write(_ name: String, _ text: String) throws {
            try text.write(to: folder.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }

        var path: String { folder.path }
    }

    @Test func theExamplePoliciesPassAndLintClean() throws {
        let tests = try DetourProcess.run(["policy", "test", Self.repository.appendingPathComponent("policies").path])
        #expect(tests.status == 0)
        #expect(tests.lines.last?.hasSuffix(" passed, 0 failed") == true)
        let check = try DetourProcess.run(["policy", "check", Self.repository.appendingPathComponent("policies").path])
        #expect(check.status == 0, "\(check.stdout)")
        #expect(check.lines.last?.hasPrefix("0 errors, 0 warnings") == true)
    }

    @Test func aWrongExpectationFailsWithTheRightCounts() throws {
        let workspace = try Workspace()
        let baseline = try DetourProcess.run(["policy", "test", workspace.path])
        let passed = Int(baseline.lines.last?.split(separator: " ").first ?? "") ?? 0
        #expect(passed > 30)
        try workspace.write(
            "wrong.test.yaml",
            """
            tests:
              - name: "interns reach grafana"
                request: { method: GET, url: "https://grafana.example.com/", headers: { Accept: "text/html" } }
                user: { email: "intern@example.com", groups: ["interns"] }
                expect: { status: 200 }
            """)
        let result = try DetourProcess.run(["policy", "test", workspace.path])
        #expect(result.status == 1)
        #expect(result.lines.last == "\(passed) passed, 1 failed")
        #expect(
            result.lines.contains(
                "\(workspace.folder.appendingPathComponent("wrong.test.yaml").standardizedFileURL.path):2: "
                    + "test \"interns reach grafana\": expected status 200, got 403 (decided forbidden by grafana)"))
    }

    @Test func anInvalidTestFileExitsTwo() throws {
        let workspace = try Workspace()
        try workspace.write(
            "bad.test.yaml", "tests:\n  - name: x\n    request: { url: \"ftp://x\" }\n    expect: { status: 200 }\n")
        let result = try DetourProcess.run(["policy", "test", workspace.path])
        #expect(result.status == 2)
        #expect(result.stderr.contains("bad.test.yaml:3:21: tests[0].request.url must be an absolute http(s) URL"))
    }

    @Test(arguments: [
        (
            "redirects:\n  - { name: legacy, match: { host: a.example.com, path: /old }, to: /new, status: 302 }\n",
            "redirect \"legacy\" answers 302 to every method"
        ),
        (
            "redirects:\n  - { name: away, match: { host: a.example.com, path: /x }, to: \"https://evil.example/\", status: 307 }\n",
            "redirect \"away\" sends 307 to https://evil.example, which is not in return_to.allowed_hosts (host)"
        ),
        (
            "routes:\n  - { name: typo, upstream: \"http://127.0.0.1:9\", alow: [{ authenticated: true }] }\n",
            "unknown key \"routes[0].alow\" (did you mean \"allow\"?)"
        ),
    ])
    func policyCheckFindsErrors(policy: String, message: String) throws {
        let workspace = try Workspace()
        try workspace.write("extra.yaml", policy)
        let result = try DetourProcess.run(["policy", "check", workspace.path])
        #expect(result.status == 1)
        #expect(result.stdout.contains("extra.yaml:"))
        #expect(result.stdout.contains(": error: \(message)"), "\(result.stdout)")
    }

    @Test func policyCheckExitsTwoOnAnUnreadableConfiguration() throws {
        let result = try DetourProcess.run(["policy", "check", "--config", "/nonexistent/detour.yaml"])
        #expect(result.status == 2)
    }

    @Test func warningsAloneExitZero() throws {
        let workspace = try Workspace()
        try workspace.write(
            "closed.yaml",
            "routes:\n  - { name: closed, match: { host: c.example.com }, upstream: \"http://127.0.0.1:9\" }\n")
        let result = try DetourProcess.run(["policy", "check", workspace.path])
        #expect(result.status == 0)
        #expect(result.stdout.contains(": warning: route \"closed\" has no allow rule and no public path"))
    }
}
