import Testing

@testable import DetourRedirect

@Suite struct BrowserURLTests {
    static let base = try! BrowserURL(parsing: "https://auth.example.com/a/b?q#f")

    @Test(arguments: [
        ("https:evil.com", "https://auth.example.com/a/evil.com"),
        ("http:/evil.com", "http://evil.com/"),
        ("/\\evil.com", "https://evil.com/"),
        ("//evil.com", "https://evil.com/"),
        ("?x", "https://auth.example.com/a/b?x"),
        ("#y", "https://auth.example.com/a/b?q#y"),
        ("", "https://auth.example.com/a/b?q"),
        ("c/../../d", "https://auth.example.com/d"),
        ("HTTP://0x7f.1:80/%2e%2E/x", "http://127.0.0.1/x"),
        ("https://[::1.2.3.4]:443/", "https://[::102:304]/"),
        ("https://MÜNCHEN.de/", "https://xn--mnchen-3ya.de/"),
        (" \t/x y?a b#c d\n", "https://auth.example.com/x%20y?a%20b#c%20d"),
        ("https://u:p@h/", "https://u:p@h/"),
    ])
    func resolvesLikeABrowser(input: String, expected: String) throws {
        #expect(try BrowserURL(parsing: input, against: Self.base).href == expected)
    }
}
