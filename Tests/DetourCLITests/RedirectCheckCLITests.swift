import Foundation
import Testing

@Suite struct RedirectCheckCLITests {
    @Test func theREADMEExampleIsRejectedWithItsReason() throws {
        let result = try DetourProcess.run(
            ["redirect", "check", "--allow", "app.example.com", "--json"], stdin: "/\\evil.com\n")
        #expect(result.status == 1)
        #expect(result.lines == [#"{"input":"/\\evil.com","allowed":false,"location":null,"reason":"host"}"#])
    }

    @Test func stdinLinesAreVerbatimAndAnswersKeepInputOrder() throws {
        let result = try DetourProcess.run(
            ["redirect", "check", "--allow", "app.example.com", "--base", "https://auth.example.com", "--json"],
            stdin: "/ok\nhttps://app.example.com/x?next=https://evil.example/\n/b\r\n\t//evil.example\n")
        #expect(result.status == 1)
        #expect(
            result.lines == [
                #"{"input":"/ok","allowed":true,"location":"https://auth.example.com/ok","reason":null}"#,
                #"{"input":"https://app.example.com/x?next=https://evil.example/","allowed":true,"location":"https://app.example.com/x?next=https://evil.example/","reason":null}"#,
                #"{"input":"/b\r","allowed":false,"location":null,"reason":"control-character"}"#,
                #"{"input":"\t//evil.example","allowed":false,"location":null,"reason":"control-character"}"#,
            ])
    }

    @Test func allAllowedExitsZero() throws {
        let result = try DetourProcess.run([
            "redirect", "check", "--allow", "*.corp.example,localhost:8080", "/a", "https://x.corp.example/",
            "http://localhost:8080/",
        ])
        #expect(result.status == 0)
        #expect(
            result.lines == [
                #"allowed  "/a" -> http://localhost:4180/a"#,
                #"allowed  "https://x.corp.example/" -> https://x.corp.example/"#,
                #"allowed  "http://localhost:8080/" -> http://localhost:8080/"#,
            ])
    }

    @Test func configSuppliesBaseAllowlistAndPrefix() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("detour-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let config = folder.appendingPathComponent("detour.yaml")
        try """
        server:
          public_url: "https://sso.example.org"
          prefix: "/_sso"
        return_to:
          allowed_hosts: ["wiki.example.org"]
        """.write(to: config, atomically: true, encoding: .utf8)
        let result = try DetourProcess.run(
            [
                "redirect", "check", "--config", config.path, "--json", "/x", "https://wiki.example.org/p",
                "/_sso/start", "//evil.example",
            ])
        #expect(result.status == 1)
        #expect(
            result.lines.map { $0.components(separatedBy: "\"reason\":").last ?? "" } == [
                "null}", "null}", "\"loop\"}", "\"host\"}",
            ])
        #expect(result.lines.first?.contains("https://sso.example.org/x") == true)
    }

    @Test func configErrorsAreFileLineColumnAndExitTwo() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("detour-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let config = folder.appendingPathComponent("detour.yaml")
        try "return_to:\n  allowed_hosts: [\"*\"]\n  defualt: /\n".write(to: config, atomically: true, encoding: .utf8)
        let result = try DetourProcess.run(["redirect", "check", "--config", config.path, "/x"])
        #expect(result.status == 2)
        #expect(result.stdout.isEmpty)
        #expect(
            result.stderr == """
                \(config.path):2:19: return_to.allowed_hosts: allowed host "*" matches every host
                \(config.path):3:3: unknown key "return_to.defualt" (did you mean "default"?)

                """)
    }

    @Test(arguments: [
        ["redirect", "check", "--allow", "*.com", "/x"],
        ["redirect", "check", "--base", "ftp://x/", "/x"],
        ["redirect", "check", "--no-such-flag"],
        ["redirect", "check", "--config", "/nonexistent/detour.yaml", "/x"],
    ])
    func usageErrorsExitTwo(arguments: [String]) throws {
        let result = try DetourProcess.run(arguments)
        #expect(result.status == 2)
        #expect(result.stdout.isEmpty)
        #expect(!result.stderr.isEmpty)
    }

    @Test func version() throws {
        let result = try DetourProcess.run(["version"])
        #expect(result.status == 0)
        #expect(result.stdout.hasPrefix("detour "))
    }
}
