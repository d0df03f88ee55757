import DetourSessions
import Foundation

/// The cost of opening a session cookie on a request: parse the Cookie header, join chunks, AES-GCM
/// open, decode the session. A typical session (a few groups, ID and access tokens) and a large one.
enum SessionBenchmark {
    static func run(seconds: Double) throws {
        let secret = Data((0..<32).map { UInt8($0) }).base64EncodedString()
        let store = CookieSessionStore(codec: try SealedCookieCodec(secrets: [secret]))
        let policy = CookiePolicy(cookieName: "_detour", domain: nil, secure: true)
        let now = Date()
        let token = String(repeating: "x", count: 900)
        for (label, groups) in [("typical", 5), ("large, chunked", 300)] {
            let session = Session(
                subject: "u-1", email: "ann@example.com", groups: (0..<groups).map { "group-\($0)" },
                accessToken: token, signedInAt: now, expiry: now.addingTimeInterval(28_800))
            let setCookies = try policy.store(
                store.save(session, replacing: nil, now: now), name: policy.sessionName, maxAge: 28_800, sameSite: .lax,
                existing: RequestCookies(headers: []))
            let header = setCookies.map { "\($0.name)=\($0.value)" }.joined(separator: "; ") + "; other=1"
            let clock = ContinuousClock()
            var opened = 0
            let start = clock.now
            let deadline = start + .milliseconds(Int(seconds * 1000))
            while clock.now < deadline {
                for _ in 0..<1000
                where policy.load(name: policy.sessionName, from: RequestCookies(headers: [header])).flatMap({
                    store.session($0, now: now)
                }) != nil {
                    opened += 1
                }
            }
            let microseconds = (clock.now - start).seconds * 1e6 / Double(opened)
            print(
                "detour  session cookie opened per request, \(label) (\(header.utf8.count) bytes, "
                    + "\(setCookies.count) cookie(s)): \(String(format: "%.1f", microseconds)) µs")
        }
    }
}
