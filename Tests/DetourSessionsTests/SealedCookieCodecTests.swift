import Foundation
import Testing

@testable import DetourSessions

@Suite struct SealedCookieCodecTests {
    static let secretA = Data((0..<32).map { UInt8($0) }).base64EncodedString()
    static let secretB = Data((0..<32).map { UInt8(200 - $0) }).base64EncodedString()
    static let now = Date(timeIntervalSince1970: 1_800_000_000)
    static let later = now.addingTimeInterval(3600)

    @Test func roundTrips() throws {
        let codec = try SealedCookieCodec(secrets: [Self.secretA])
        let sealed = codec.seal(Array("hello".utf8), purpose: "session", expiry: Self.later)
        #expect(codec.open(sealed, purpose: "session", now: Self.now) == Array("hello".utf8))
        #expect(!sealed.contains("hello"))
        #expect(sealed.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
    }

    /// AES-GCM loses its secrecy and its integrity when a key seals twice under one nonce.
    @Test func everySealHasItsOwnNonce() throws {
        let codec = try SealedCookieCodec(secrets: [Self.secretA])
        let nonces = (0..<1000).map { _ in
            let bytes = Base64URL.decode(codec.seal(Array("same".utf8), purpose: "session", expiry: Self.later))
            return bytes.map { Array($0[5..<17]) } ?? []  // after the version and the key id
        }
        #expect(Set(nonces).count == 1000)
        #expect(nonces.allSatisfy { $0.count == 12 && $0 != Array(repeating: 0, count: 12) })
    }

    @Test func everyTamperedByteIsRefused() throws {
        let codec = try SealedCookieCodec(secrets: [Self.secretA])
        let sealed = Base64URL.decode(codec.seal(Array("alice".utf8), purpose: "session", expiry: Self.later))!
        for index in sealed.indices {
            var tampered = sealed
            tampered[index] ^= 0x01
            #expect(codec.open(Base64URL.encode(tampered), purpose: "session", now: Self.now) == nil, "byte \(index)")
        }
    }

    @Test func truncatedAndMalformedValuesAreRefused() throws {
        let codec = try SealedCookieCodec(secrets: [Self.secretA])
        let sealed = codec.seal(Array("alice".utf8), purpose: "session", expiry: Self.later)
        for length in 0..<sealed.count {
            #expect(codec.open(sealed.prefix(length), purpose: "session", now: Self.now) == nil)
        }
        for junk in ["", "%%%", "a b", String(repeating: "A", count: 70_000), sealed + "=", "\u{0}"] {
            #expect(codec.open(junk, purpose: "session", now: Self.now) == nil)
        }
    }

    @Test func aValueOpensOnlyForItsPurpose() throws {
        let codec = try SealedCookieCodec(secrets: [Self.secretA])
        let sealed = codec.seal([1, 2, 3], purpose: "login-state", expiry: Self.later)
        #expect(codec.open(sealed, purpose: "session", now: Self.now) == nil)
        #expect(codec.open(sealed, purpose: "login-state", now: Self.now) == [1, 2, 3])
    }

    @Test func expiredValuesAreRefused() throws {
        let codec = try SealedCookieCodec(secrets: [Self.secretA])
        let sealed = codec.seal([1], purpose: "session", expiry: Self.later)
        #expect(codec.open(sealed, purpose: "session", now: Self.later.addingTimeInterval(-1)) == [1])
        #expect(codec.open(sealed, purpose: "session", now: Self.later) == nil)
    }

    @Test func rotationSealsWithTheFirstKeyAndOpensWithAll() throws {
        let old = try SealedCookieCodec(secrets: [Self.secretA])
        let rotated = try SealedCookieCodec(secrets: [Self.secretB, Self.secretA])
        let retired = try SealedCookieCodec(secrets: [Self.secretB])
        let fromOld = old.seal([7], purpose: "session", expiry: Self.later)
        #expect(rotated.open(fromOld, purpose: "session", now: Self.now) == [7])
        #expect(retired.open(fromOld, purpose: "session", now: Self.now) == nil)
        let fromRotated = rotated.seal([8], purpose: "session", expiry: Self.later)
        #expect(retired.open(fromRotated, purpose: "session", now: Self.now) == [8])
        #expect(old.open(fromRotated, purpose: "session", now: Self.now) == nil)
    }

    @Test(arguments: [[], ["c2hvcnQ="], ["not base64!"]])
    func unusableSecretsAreRefused(secrets: [String]) {
        #expect(throws: SessionKeyError.self) { try SealedCookieCodec(secrets: secrets) }
    }
}

@Suite struct SessionCookiesTests {
    static let now = SealedCookieCodecTests.now

    static func cookies(secure: Bool = true, domain: String? = nil) throws -> SessionCookies {
        SessionCookies(
            codec: try SealedCookieCodec(secrets: [SealedCookieCodecTests.secretA]),
            policy: CookiePolicy(cookieName: "_detour", domain: domain, secure: secure), lifetime: .seconds(8 * 3600),
            store: CookieSessionStore(codec: try SealedCookieCodec(secrets: [SealedCookieCodecTests.secretA])))
    }

    static func request(_ setCookies: [SetCookie]) -> RequestCookies {
        RequestCookies(headers: [
            setCookies.filter { $0.maxAge != 0 }.map { "\($0.name)=\($0.value)" }.joined(separator: "; ")
        ])
    }

    static let session = Session(
        subject: "u-1", email: "ann@example.com", groups: ["admins"], accessToken: "at",
        signedInAt: now, expiry: now.addingTimeInterval(8 * 3600))

    @Test func aSessionCookieHasTheContractsAttributes() async throws {
        let cookies = try Self.cookies()
        let set = try await cookies.store(Self.session, existing: RequestCookies(headers: []), now: Self.now)
        #expect(set.count == 1)
        let header = try #require(set.first).headerValue
        #expect(header.hasPrefix("__Host-_detour="))
        for attribute in ["Path=/", "Max-Age=28800", "Secure", "HttpOnly", "SameSite=Lax"] {
            #expect(header.contains("; \(attribute)"), "\(attribute)")
        }
        #expect(!header.contains("Domain="))
        #expect(try await cookies.session(in: Self.request(set), now: Self.now) == Self.session)
    }

    @Test func onHTTPLoopbackTheCookieIsNotSecureAndNotPrefixed() async throws {
        let set = try await Self.cookies(secure: false).store(
            Self.session, existing: RequestCookies(headers: []), now: Self.now)
        let header = try #require(set.first).headerValue
        #expect(header.hasPrefix("_detour="))
        #expect(!header.contains("Secure"))
    }

    @Test func aSharedDomainDropsThePrefix() async throws {
        let set = try await Self.cookies(domain: "example.com").store(
            Self.session, existing: RequestCookies(headers: []), now: Self.now)
        #expect(try #require(set.first).headerValue.hasPrefix("_detour="))
        #expect(try #require(set.first).headerValue.contains("; Domain=example.com"))
    }

    @Test func formPostStateCookieIsSameSiteNoneAndSecure() throws {
        let state = LoginState(
            state: "s", nonce: "n", codeVerifier: "v", returnTo: "https://app.example.com/", startedAt: Self.now)
        let secure = try Self.cookies().store(state, formPost: true, existing: RequestCookies(headers: []))
        #expect(try #require(secure.first).headerValue.contains("; Secure; HttpOnly; SameSite=None"))
        let loopback = try Self.cookies(secure: false).store(
            state, formPost: true, existing: RequestCookies(headers: []))
        let header = try #require(loopback.first).headerValue
        #expect(header.contains("SameSite=Lax"))
        #expect(!header.contains("Secure"))
        let query = try Self.cookies().store(state, formPost: false, existing: RequestCookies(headers: []))
        #expect(try #require(query.first).headerValue.contains("SameSite=Lax"))
        #expect(try Self.cookies().loginState(in: Self.request(secure), now: Self.now) == state)
    }

    @Test func largeSessionsAreChunkedAndStaleChunksDeleted() async throws {
        let cookies = try Self.cookies()
        var big = Self.session
        big.groups = (0..<250).map { "group-with-a-long-name-\($0)" }
        let set = try await cookies.store(big, existing: RequestCookies(headers: []), now: Self.now)
        #expect(set.count > 1)
        #expect(set.allSatisfy { $0.value.utf8.count <= CookiePolicy.chunkSize })
        #expect(set.map(\.name).first == "__Host-_detour_0")
        let request = Self.request(set)
        #expect(try await cookies.session(in: request, now: Self.now) == big)
        let smaller = try await cookies.store(Self.session, existing: request, now: Self.now)
        #expect(smaller.first?.name == "__Host-_detour")
        #expect(Set(smaller.dropFirst().map(\.name)) == Set(set.map(\.name)))
        #expect(smaller.dropFirst().allSatisfy { $0.maxAge == 0 })
    }

    /// Issue 14.1: a session over the budget (hundreds of groups) trapped on an invalid range and took the process
    /// down; it is now refused whole, and the largest session that fits still round-trips.
    @Test func aSessionOverTheBudgetIsRefusedNeverCutOrATrap() async throws {
        let cookies = try Self.cookies()
        var huge = Self.session
        huge.groups = (0..<1000).map { "group-with-a-long-name-\($0)" }
        await #expect(throws: SessionStoreError.self) {
            try await cookies.store(huge, existing: RequestCookies(headers: []), now: Self.now)
        }
        var fits = Self.session
        while let set = try? await cookies.store(fits, existing: RequestCookies(headers: []), now: Self.now) {
            #expect(set.count <= CookiePolicy.maximumChunks)
            #expect(try await cookies.session(in: Self.request(set), now: Self.now) == fits)
            fits.groups.append("group-\(fits.groups.count)")
            if fits.groups.count > 2000 { break }
        }
        #expect(fits.groups.count < 2000, "the budget ends somewhere")
        let exact = String(repeating: "a", count: CookiePolicy.budget)
        let policy = CookiePolicy(cookieName: "_detour", domain: nil, secure: true)
        let stored = try policy.store(
            exact, name: "n", maxAge: 1, sameSite: .lax, existing: RequestCookies(headers: []))
        #expect(stored.count == CookiePolicy.maximumChunks)
        #expect(throws: CookieBudgetExceeded.self) {
            try policy.store(exact + "a", name: "n", maxAge: 1, sameSite: .lax, existing: RequestCookies(headers: []))
        }
    }

    @Test func aBadCookieIsNotSignedInNeverAnError() async throws {
        let cookies = try Self.cookies()
        for header in [
            "__Host-_detour=garbage", "__Host-_detour=", "__Host-_detour_0=abc; __Host-_detour_1=def", "=; ;;", "",
        ] {
            #expect(try await cookies.session(in: RequestCookies(headers: [header]), now: Self.now) == nil)
        }
        let sessionSealedAsState = try #require(
            try await cookies.store(Self.session, existing: RequestCookies(headers: []), now: Self.now).first)
        #expect(
            cookies.loginState(
                in: RequestCookies(headers: ["__Host-_detour_state=\(sessionSealedAsState.value)"]), now: Self.now)
                == nil)
    }

    @Test func ownCookiesAreRecognisedForStripping() {
        let policy = CookiePolicy(cookieName: "_detour", domain: nil, secure: true)
        for name in [
            "__Host-_detour", "__Host-_detour_state", "__Host-_detour_0", "__Host-_detour_7", policy.browserName,
        ] {
            #expect(policy.isOwnCookie(name))
        }
        for name in ["_detour", "session", "__Host-_detourx"] { #expect(!policy.isOwnCookie(name)) }
    }

    @Test func requestCookieParsingIsLenient() {
        let cookies = RequestCookies(headers: ["a=1; b = 2 ;junk; =x; c=3=4", "a=ignored; d="])
        #expect(cookies["a"] == "1")
        #expect(cookies["b"] == "2")
        #expect(cookies["c"] == "3=4")
        #expect(cookies["d"] == "")
        #expect(cookies["junk"] == nil)
    }
}

@Suite struct ReplayGuardTests {
    @Test func aStateIsAcceptedOnce() {
        let guardian = ReplayGuard()
        let now = Date(timeIntervalSince1970: 1_000)
        #expect(guardian.firstUse(of: "s1", expiry: now.addingTimeInterval(600), now: now))
        #expect(!guardian.firstUse(of: "s1", expiry: now.addingTimeInterval(600), now: now.addingTimeInterval(1)))
        #expect(guardian.firstUse(of: "s2", expiry: now.addingTimeInterval(600), now: now))
    }

    @Test func expiredValuesAreForgottenAndMayBeUsedAgain() {
        let guardian = ReplayGuard(capacity: 2)
        let now = Date(timeIntervalSince1970: 1_000)
        #expect(guardian.firstUse(of: "a", expiry: now.addingTimeInterval(10), now: now))
        #expect(guardian.firstUse(of: "a", expiry: now.addingTimeInterval(30), now: now.addingTimeInterval(20)))
        #expect(!guardian.firstUse(of: "a", expiry: now.addingTimeInterval(40), now: now.addingTimeInterval(21)))
        #expect(guardian.count == 1)
    }

    /// Issue 14.4: 110,000 abandoned sign-ins filled the table and every real sign-in after them was refused as
    /// "already completed". Now 200,000 of them leave the table at its bound, the newest still guarded, and the
    /// next real sign-in accepted once.
    @Test func noAmountOfAbandonedSignInsMakesALegitimateOneFail() {
        let guardian = ReplayGuard(capacity: 100_000)
        let now = Date(timeIntervalSince1970: 1_000)
        let expiry = now.addingTimeInterval(600)
        let accepted = (0..<200_000).filter { guardian.firstUse(of: "abandoned-\($0)", expiry: expiry, now: now) }
        #expect(accepted.count == 200_000)
        #expect(guardian.count == 100_000)
        #expect(!guardian.firstUse(of: "abandoned-199999", expiry: expiry, now: now), "the newest are still held")
        #expect(guardian.firstUse(of: "legitimate", expiry: expiry, now: now))
        #expect(!guardian.firstUse(of: "legitimate", expiry: expiry, now: now.addingTimeInterval(1)))
        #expect(guardian.count == 100_000)
    }
}

@Suite struct Base64URLTests {
    @Test func roundTripsEveryLength() {
        for length in 0..<70 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 * 37 + 11) }
            let encoded = Base64URL.encode(bytes)
            #expect(Base64URL.decode(encoded) == bytes)
            let standard = Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
                .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
            #expect(encoded == standard)
        }
    }

    @Test(arguments: ["A", "AB=", "A+B/", "ab c", "AB\u{0}", "AR", "AAB"])
    func refusesNonCanonicalInput(text: String) {
        #expect(Base64URL.decode(text) == nil)
    }
}

@Suite struct SessionEncodingTests {
    static let full = Session(
        subject: "u-1", email: "ann@example.com", emailVerified: true, groups: ["a", "b"], preferredUsername: "ann",
        claims: ["department": ["eng"], "roles": ["x", "y"]], accessToken: "at",
        accessTokenExpiry: Date(timeIntervalSince1970: 1_800_000_123.456), refreshToken: "rt",
        signedInAt: Date(timeIntervalSince1970: 1_800_000_000), expiry: Date(timeIntervalSince1970: 1_800_028_800),
        providerSession: "sid-1", keptForm: "tag-1", user: "ann@example.com")

    @Test func roundTripsEveryField() {
        #expect(Session(encoded: Self.full.encoded()) == Self.full)
        let minimal = Session(subject: "s", signedInAt: Self.full.signedInAt, expiry: Self.full.expiry)
        #expect(Session(encoded: minimal.encoded()) == minimal)
    }

    /// A session without a provider session id is written as version 2, which the previous release reads (replicas
    /// of both share a store during a rolling upgrade); with one, as version 3.
    @Test func writesVersionTwoWithoutAProviderSession() {
        var earlier = Self.full
        earlier.providerSession = nil
        earlier.keptForm = nil
        earlier.user = nil
        let bytes = earlier.encoded()
        #expect(bytes[0] == 2 && Self.full.encoded()[0] == 3)
        #expect(Array(Self.full.encoded().prefix(bytes.count).dropFirst()) == Array(bytes.dropFirst()))
        #expect(Session(encoded: bytes) == earlier)
        #expect(Session(encoded: bytes + [0]) == nil)
    }

    @Test func malformedBytesDecodeToNil() {
        let bytes = Self.full.encoded()
        for length in 0..<bytes.count { #expect(Session(encoded: Array(bytes.prefix(length))) == nil) }
        #expect(Session(encoded: bytes + [0]) == nil)
        var version = bytes
        version[0] = 9
        #expect(Session(encoded: version) == nil)
        var hugeCount = bytes
        hugeCount.replaceSubrange(1..<5, with: [0xFF, 0xFF, 0xFF, 0xFF])
        #expect(Session(encoded: hugeCount) == nil)
    }
}
