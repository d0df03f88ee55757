/// Deterministic return-target inputs built from the pieces open-redirect payloads are made of.
///
/// A fixed seed keeps every run's inputs the same, so a difference from Node is reproducible.
struct TargetGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    /// SplitMix64.
    private mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    private mutating func pick(_ options: [String]) -> String { options[Int(next() % UInt64(options.count))] }

    static let schemes = [
        "", "", "", "https:", "http:", "HTTPS:", "hTtP:", "https:", "javascript:", "data:", "ftp:", "ws:", "wss:",
        "file:", "blob:", "h:", "https+x:", "1https:", "mailto:", "view-source:",
    ]
    static let slashes = [
        "//", "//", "/", "", "\\\\", "/\\", "\\/", "///", "\\", "/ /", "//\\/", " //", "/%2f", "%2f%2f",
    ]
    static let userinfos = ["", "", "", "", "user@", "a:b@", "@", ":@", "app.example.com@", "x@y@", "%40@", "u:%40@"]
    static let hosts = [
        "app.example.com", "APP.Example.COM", "app.example.com.", "evil.com", "evil.com.", "a.corp.example",
        "x.y.corp.example", "corp.example", "evilcorp.example", "corp.example.evil.com", "localhost", "LOCALHOST",
        "127.0.0.1", "0x7f.1", "2130706433", "0177.0.0.1", "127.1", "[::1]", "[0:0::1]", "[::ffff:127.0.0.1]",
        "[::1.2.3.4]", "xn--mnchen-3ya.de", "MÜNCHEN.de", "ß.corp.example", "%61pp.example.com", "app%2eexample.com",
        "evil.com%2f", "evil.com%23", "a..corp.example", "exa mple.com", "auth.example.com", "1.2.3.4.5",
        "0x100000000", "[::1", "evil.com\\@app.example.com", "app.example.com%00", "xn--a.com", "ｅｖｉｌ.com",
        "evil。com", "app.example.com:8080", "[1:2:3:4:5:6:7:8]", "256.1.1.1", "0x.0x.0x.0x", "a.b.0x",
    ]
    static let ports = [
        "", "", "", ":", ":80", ":443", ":8080", ":0443", ":65535", ":65536", ":x", ":-1", ":99999999999",
    ]
    static let paths = [
        "", "/", "/a/b", "/a/../b", "/%2e%2e/x", "/./x", "a", "../x", "/x y", "/ü", "/{}^`|", "/%zz", "/oauth2/start",
        "/a%2fb", "/..\\..\\x", "/.%2E/x", "/%2e/", "/%00", "/a;b", "/?", "/#", "/é",
    ]
    static let queries = ["", "", "?", "?next=https://evil.com/", "?a=b&c='d'", "?q=\"<x>\"", "?ü", "?#"]
    static let fragments = ["", "", "#", "#frag", "#a b", "#<x>`", "#ü"]
    static let insertions = ["\t", "\n", " ", "\\", "/", "@", ":", "%", "%09", "%2f", "#", "?", ".", "\u{00A0}", "\0"]

    mutating func next() -> String {
        var target =
            pick(Self.schemes) + pick(Self.slashes) + pick(Self.userinfos) + pick(Self.hosts)
            + pick(Self.ports) + pick(Self.paths) + pick(Self.queries) + pick(Self.fragments)
        if target.isEmpty || next() % 2 == 0 {
            // Half the time, one more odd byte somewhere.
            var scalars = Array(target.unicodeScalars)
            let position = scalars.isEmpty ? 0 : Int(next() % UInt64(scalars.count + 1))
            scalars.insert(contentsOf: pick(Self.insertions).unicodeScalars, at: position)
            target = String(String.UnicodeScalarView(scalars))
        }
        return target
    }
}
