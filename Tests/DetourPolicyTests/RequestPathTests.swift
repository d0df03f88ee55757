import Testing

@testable import DetourPolicy

@Suite struct RequestPathTests {
    @Test(arguments: [
        ("/", "/"),
        ("/a/b", "/a/b"),
        ("/a/b/", "/a/b/"),
        ("//admin", "/admin"),
        ("/a//b///c", "/a/b/c"),
        ("/a/./b", "/a/b"),
        ("/a/../b", "/b"),
        ("/../../etc/passwd", "/etc/passwd"),
        ("/a/b/..", "/a/"),
        ("/a/b/.", "/a/b/"),
        ("/%61dmin", "/admin"),
        ("/%7euser/%41", "/~user/A"),
        ("/a%20b", "/a%20b"),
        ("/a%3fb", "/a%3Fb"),
        ("/ü", "/%C3%BC"),
        ("/a%3Bb", "/a%3Bb"),
        ("/a%23b", "/a%23b"),
        ("/x?q=%2f&r=../", "/x?q=%2f&r=../"),
        ("/a//b/../c?x=ü", "/a/c?x=ü"),
        ("/é?", "/%C3%A9?"),
    ])
    func normalises(target: String, expected: String) throws {
        #expect(try RequestPath(normalizing: target).description == expected)
    }

    @Test func theQueryIsSplitOffAtTheFirstQuestionMark() throws {
        let parts =
            [
                "/": ("/", nil), "/a?": ("/a", ""), "/a?b?c": ("/a", "b?c"), "/a/./b?q=%41": ("/a/b", "q=%41"),
                "/ü?é": ("/%C3%BC", "é"),
            ] as [String: (String, String?)]
        for (target, (path, query)) in parts {
            let normalised = try RequestPath(normalizing: target)
            #expect(normalised.path == path, "\(target)")
            #expect(normalised.query == query, "\(target)")
        }
        #expect(throws: RequestPath.Rejection.notOriginForm) { try RequestPath(normalizing: "?a") }
        #expect(throws: RequestPath.Rejection.notOriginForm) { try RequestPath(normalizing: "") }
    }

    /// Spellings that must never reach a protected path as a public one (CONTRACT section 7).
    @Test(arguments: [
        ("/public/%2e%2e/admin", RequestPath.Rejection.encodedDotSegment),
        ("/public/%2E./admin", .encodedDotSegment),
        ("/public/.%2e/admin", .encodedDotSegment),
        ("/public/%2e/admin", .encodedDotSegment),
        ("/public%2f..%2fadmin", .encodedSlash),
        ("/public%2F..%2Fadmin", .encodedSlash),
        ("/public/..;/admin", .pathParameters),
        ("/public/.;x=1/admin", .pathParameters),
        ("/admin;x/users", .pathParameters),
        ("/admin;jsessionid=1", .pathParameters),
        ("/a;b=c", .pathParameters),
        ("/admin#/x", .fragment),
        ("/admin/#", .fragment),
        ("/public?x#/admin", .fragment),
        ("/public\\..\\admin", .backslash),
        ("/public%5c..%5cadmin", .encodedBackslash),
        ("/public/%00/admin", .controlCharacter),
        ("/public/\u{0}/admin", .controlCharacter),
        ("/a\tb", .controlCharacter),
        ("/a?b\r\nX: y", .controlCharacter),
        ("/a%zz", .malformedPercentEncoding),
        ("/a%2", .malformedPercentEncoding),
        ("admin", .notOriginForm),
        ("http://evil.example/", .notOriginForm),
        ("*", .notOriginForm),
    ])
    func refusesAmbiguousSpellings(target: String, rejection: RequestPath.Rejection) {
        #expect(throws: rejection) { try RequestPath(normalizing: target) }
    }

    @Test func prefixesMatchOnSegmentBoundaries() {
        #expect(PathPrefix("/api").matches("/api"))
        #expect(PathPrefix("/api").matches("/api/x"))
        #expect(!PathPrefix("/api").matches("/apix"))
        #expect(PathPrefix("/static/").matches("/static/app.css"))
        #expect(!PathPrefix("/static/").matches("/static"))
        #expect(PathPrefix("/").matches("/anything"))
        #expect(!PathPrefix("/public/").matches("/PUBLIC/x"))
    }

    /// The fast path (a target already normal, copied as it is) agrees with the full normalisation: every target
    /// made of these pieces, up to five of them, reads the same with a dot segment in front that forces the full
    /// one.
    @Test func theFastPathAgreesWithTheFullNormalisation() {
        let pieces = ["/", ".", "a", "B", "%2e", "%41", "%2F", ";", "?", "#", "%", "\\", "é", " ", "~", "q=1"]
        var targets: [String] = [""]
        for _ in 0..<5 { targets += targets.flatMap { target in pieces.map { target + $0 } }.suffix(40_000) }
        for rest in Set(targets) {
            let target = "/" + rest
            let direct = try? RequestPath(normalizing: target)
            let full = try? RequestPath(normalizing: "/x/.." + target)
            #expect(direct == full, "\(target)")
        }
    }
}
