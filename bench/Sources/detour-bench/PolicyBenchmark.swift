import DetourPolicy
import DetourRedirect
import Foundation

/// Policy decisions per second on one core for 10, 1,000 and 10,000 routes: exact hosts, wildcard
/// hosts and path prefixes, decided for a signed-in user on a mix of hits and misses.
enum PolicyBenchmark {
    static func run(seconds: Double) throws {
        for count in [10, 1000, 10_000] {
            let engine = PolicyEngine(
                policies: routes(count),
                settings: .init(publicURL: try BrowserURL(parsing: "https://auth.example.com")))
            let requests = (0..<64).map { request(for: $0 * 7919 % count, routes: count) }
            let identity = Identity(subject: "u-1", email: "ann@example.com", groups: ["team-3", "admins"])
            let clock = ContinuousClock()
            var decided = 0
            var proxied = 0
            let start = clock.now
            let deadline = start + .milliseconds(Int(seconds * 1000))
            while clock.now < deadline {
                for _ in 0..<100 {
                    for (host, target) in requests {
                        let decision = engine.decide(
                            .init(
                                method: "GET", scheme: .https, host: host, target: target, identity: identity,
                                header: { _ in nil }))
                        if case .proxy = decision.outcome { proxied += 1 }
                    }
                }
                decided += 100 * requests.count
            }
            let elapsed = clock.now - start
            let perSecond = Double(decided) / elapsed.seconds
            print(
                "detour  policy decisions per second, \(count) routes (1 core): \(Int(perSecond))"
                    + "  (\(String(format: "%.0f", 1e9 / perSecond)) ns each; \(proxied * 100 / max(decided, 1))% proxied)"
            )
        }
    }

    /// Routes spread over hosts (a tenth exact, the rest under wildcards), each with its own prefix.
    static func routes(_ count: Int) -> PolicySet {
        let yaml = (0..<count).map { index in
            let host = index % 10 == 0 ? "app\(index / 10).example.com" : "*.team\(index % 97).example.com"
            return """
                  - name: r\(index)
                    match: { host: "\(host)", path: "/svc\(index)/api" }
                    upstream: "http://127.0.0.1:\(3000 + index % 1000)"
                    allow: [{ group: ["team-\(index % 7)"] }, { email_domain: ["example.com"] }]
                    public: ["/svc\(index)/api/health"]
                """
        }.joined(separator: "\n")
        do {
            return try PolicySet.parse("routes:\n" + yaml, file: "bench.yaml", environment: [:])
        } catch {
            fatalError("benchmark policies do not parse: \(error)")
        }
    }

    /// A request for route `index`: its host and a path below its prefix (one in eight misses).
    static func request(for index: Int, routes: Int) -> (String, String) {
        let host = index % 10 == 0 ? "app\(index / 10).example.com" : "web.team\(index % 97).example.com"
        let path = index % 8 == 0 ? "/elsewhere/x" : "/svc\(index)/api/orders/\(index)?expand=items"
        return (host, path)
    }
}
