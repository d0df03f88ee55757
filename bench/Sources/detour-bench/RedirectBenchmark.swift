import DetourRedirect

/// Return targets validated per second on one core, for a realistic mix: mostly same-origin paths and
/// allowlisted absolute URLs, as `rd` values are in practice, with a share of attack payloads.
enum RedirectBenchmark {
    static func run(seconds: Double) throws {
        let mix = [
            "/", "/dashboard", "/d/abc-123/overview?orgId=1&from=now-6h&to=now", "/wiki/Main_Page#History",
            "https://app.example.com/orders?id=42", "https://grafana.corp.example/d/xyz?var-host=web-1",
            "https://app.example.com/search?next=https://other.example/&q=a%20b", "http://localhost:8080/callback",
            "//evil.example/", "/\\evil.example", "https://app.example.com@evil.example/", "javascript:alert(1)",
            "https://evilcorp.example/", "https://app.example.com:8443/", "/oauth2/start?rd=/", "/\t/evil.example",
        ]

        let policy = ReturnTargetPolicy(
            base: try BrowserURL(parsing: "https://auth.example.com/"),
            allowedHosts: try ["app.example.com", "*.corp.example", "localhost:8080"].map {
                try AllowedHost(parsing: $0)
            }
        )

        let clock = ContinuousClock()
        var evaluated = 0
        var allowed = 0
        let start = clock.now
        let deadline = start + .milliseconds(Int(seconds * 1000))
        while clock.now < deadline {
            for _ in 0..<1000 {
                for target in mix {
                    if case .allowed = policy.evaluate(target) { allowed += 1 }
                }
            }
            evaluated += 1000 * mix.count
        }
        let elapsed = clock.now - start
        print(
            "detour  targets validated per second (1 core): \(Int(Double(evaluated) / elapsed.seconds))"
                + "  (\(evaluated) in \(elapsed), \(allowed) allowed)")
    }
}
