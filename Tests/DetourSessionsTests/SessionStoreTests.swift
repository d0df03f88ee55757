import DetourSessions
import Foundation
import Testing

@Suite struct SessionStoreTests {
    static let now = SealedCookieCodecTests.now
    static func codec() throws -> SealedCookieCodec {
        try SealedCookieCodec(secrets: [SealedCookieCodecTests.secretA])
    }

    static func session(_ subject: String = "u-1", lasting seconds: TimeInterval = 3600) -> Session {
        Session(
            subject: subject, groups: ["admins"], accessToken: "at", signedInAt: now,
            expiry: now.addingTimeInterval(seconds))
    }

    /// Section 7: after sign-out a copied cookie no longer works when the store is server-side.
    @Test func theMemoryStoreEndsASessionForEveryCopyOfItsCookie() throws {
        let store = MemorySessionStore(codec: try Self.codec())
        let cookie = store.save(Self.session(), replacing: nil, now: Self.now)
        let copy = String(cookie)
        #expect(store.cached(copy, now: Self.now) == .known(Self.session()))
        let before = store.changes
        store.end(cookie, now: Self.now)
        #expect(store.cached(copy, now: Self.now) == .known(nil))
        #expect(store.changes != before, "memos of the ended session are looked up again")
        #expect(cookie.utf8.count < 200, "the cookie holds a sealed handle, not the session")
        #expect(!cookie.contains("admins"), "nor its contents (a short token could appear in base64 by chance)")
    }

    /// Back-channel logout: by `sid` only that provider session (of the subject, when named); by `sub` alone every
    /// session of the subject; with neither, nothing.
    @Test func backChannelLogoutEndsTheSessionsItNames() throws {
        let store = MemorySessionStore(codec: try Self.codec())
        func save(_ subject: String, _ sid: String?) -> String {
            var session = Self.session(subject)
            session.providerSession = sid
            return store.save(session, replacing: nil, now: Self.now)
        }
        let (first, second, other) = (save("u-1", "s-1"), save("u-1", "s-2"), save("u-2", "s-3"))
        func signedIn() -> [Bool] {
            [first, second, other].map { store.cached($0, now: Self.now) != .known(nil) }
        }
        var tokens = 0
        func end(_ subject: String?, _ sid: String?) -> Int? {
            tokens += 1
            return store.endSessions(
                of: subject, providerSession: sid, once: "t-\(tokens)", expiry: Self.now + 60, now: Self.now)
        }
        #expect(end(nil, nil) == 0)
        #expect(end("u-2", "s-1") == 0, "s-1 is not u-2's")
        #expect(signedIn() == [true, true, true])
        let before = store.changes
        #expect(end(nil, "s-1") == 1)
        #expect(signedIn() == [false, true, true])
        #expect(store.changes != before, "memos of the ended session are looked up again")
        #expect(end("u-1", nil) == 1)
        #expect(signedIn() == [false, false, true])
        let replayed = store.endSessions(
            of: "u-2", providerSession: nil, once: "t-\(tokens)", expiry: Self.now + 60, now: Self.now)
        #expect(replayed == nil, "a token used once ends nothing again")
        #expect(signedIn() == [false, false, true])
    }

    /// `detour_sessions`: the live sessions a store holds; none for the cookie store.
    @Test func storesCountTheirLiveSessions() throws {
        let store = MemorySessionStore(codec: try Self.codec())
        #expect(store.sessionCount(now: Self.now) == 0)
        _ = store.save(Self.session(), replacing: nil, now: Self.now)
        _ = store.save(Self.session("u-2", lasting: 10), replacing: nil, now: Self.now)
        #expect(store.sessionCount(now: Self.now) == 2)
        #expect(store.sessionCount(now: Self.now + 60) == 1, "an expired one is not counted")
        #expect(CookieSessionStore(codec: try Self.codec()).sessionCount(now: Self.now) == nil)
    }

    @Test func aRefreshReplacesTheSessionUnderTheSameCookieButNeverRevivesAnEndedOne() throws {
        let store = MemorySessionStore(codec: try Self.codec())
        let cookie = store.save(Self.session(), replacing: nil, now: Self.now)
        var renewed = Self.session()
        renewed.accessToken = "fresh"
        #expect(store.save(renewed, replacing: cookie, now: Self.now) == cookie)
        #expect(store.session(cookie, now: Self.now)?.accessToken == "fresh")
        store.end(cookie, now: Self.now)
        _ = store.save(renewed, replacing: cookie, now: Self.now)
        #expect(store.session(cookie, now: Self.now) == nil)
        #expect(store.count == 0)
    }

    @Test func forgedExpiredOrForeignHandlesOpenToNothing() throws {
        let store = MemorySessionStore(codec: try Self.codec())
        let cookie = store.save(Self.session(lasting: 60), replacing: nil, now: Self.now)
        #expect(store.session(cookie, now: Self.now.addingTimeInterval(61)) == nil, "expired with the session")
        let other = MemorySessionStore(codec: try SealedCookieCodec(secrets: [SealedCookieCodecTests.secretB]))
        #expect(other.session(cookie, now: Self.now) == nil, "sealed by another key")
        for forged in ["", "garbage", String(cookie.dropLast(2)), cookie + "AA"] {
            #expect(store.session(forged, now: Self.now) == nil)
        }
        let sealedSession = CookieSessionStore(codec: try Self.codec()).save(
            Self.session(), replacing: nil, now: Self.now)
        #expect(store.session(sealedSession, now: Self.now) == nil, "a cookie-store session is no handle")
        #expect(CookieSessionStore(codec: try Self.codec()).session(cookie, now: Self.now) == nil, "nor the reverse")
    }

    @Test func theMemoryStoreIsBoundedDroppingExpiredThenSoonestToExpire() throws {
        let store = MemorySessionStore(codec: try Self.codec(), capacity: 3)
        let short = store.save(Self.session("short", lasting: 10), replacing: nil, now: Self.now)
        let cookies = (0..<3).map {
            store.save(Self.session("u-\($0)", lasting: 3600 + Double($0)), replacing: nil, now: Self.now)
        }
        #expect(store.count == 3)
        #expect(store.session(short, now: Self.now) == nil, "the session closest to its expiry made room")
        #expect(cookies.allSatisfy { store.session($0, now: Self.now) != nil })
        let later = Self.now.addingTimeInterval(3601)
        _ = store.save(Self.session("new", lasting: 3600 * 2), replacing: nil, now: later)
        #expect(store.count == 2, "expired sessions go first when the store is full")
    }

    @Test func theCookieStoreCannotRevokeAndSaysSo() throws {
        let store = CookieSessionStore(codec: try Self.codec())
        let cookie = store.save(Self.session(), replacing: nil, now: Self.now)
        store.end(cookie, now: Self.now)
        #expect(store.session(cookie, now: Self.now) == Self.session())
        let memory = MemorySessionStore(codec: try Self.codec())
        #expect(!store.isServerSide && memory.isServerSide)
        #expect(store.firstUse(of: "s", expiry: Self.now.addingTimeInterval(60), now: Self.now))
        #expect(!store.firstUse(of: "s", expiry: Self.now.addingTimeInterval(60), now: Self.now))
    }
}

@Suite struct SignInCounterTests {
    static let now = SealedCookieCodecTests.now

    @Test func startsAreCountedWithinTheWindowThenAfresh() {
        let counter = SignInCounter()
        let counts = (0..<6).map { counter.count("b a", window: .seconds(120), now: Self.now + Double($0)) }
        #expect(counts == [1, 2, 3, 4, 5, 6])
        #expect(counter.count("other a", window: .seconds(120), now: Self.now) == 1, "each browser on its own")
        #expect(counter.count("b a", window: .seconds(120), now: Self.now + 120) == 1, "a window later: no loop")
    }

    @Test func aFloodOfStartsStaysWithinCapacityAndForgetsTheOldest() {
        let counter = SignInCounter(capacity: 100)
        for index in 0..<10_000 { _ = counter.count("flood \(index)", window: .seconds(120), now: Self.now) }
        #expect(counter.count == 100)
        #expect(counter.count("flood 9999", window: .seconds(120), now: Self.now) == 2, "the newest are kept")
        #expect(counter.count("flood 0", window: .seconds(120), now: Self.now) == 1, "the oldest forgotten")
    }
}

@Suite struct KeptFormTests {
    static let now = SealedCookieCodecTests.now

    @Test func aFormEncodesItsURLTypeAndBodyByteForByte() {
        let form = KeptForm(
            url: "https://app.example.com/f?x=1", contentType: "multipart/form-data; boundary=b",
            body: Array(0...255))
        #expect(KeptForm(encoded: form.encoded()) == form)
        let bytes = form.encoded()
        for length in 0..<8 { #expect(KeptForm(encoded: Array(bytes.prefix(length))) == nil) }
        #expect(KeptForm(encoded: [0xFF, 0xFF, 0xFF, 0xFF]) == nil, "a length past the end")
    }

    @Test func aFormIsTakenOnceAndNeverAfterItsExpiry() {
        let table = KeptFormTable()
        #expect(table.keep("sealed", under: "k", expiry: Self.now + 600, now: Self.now))
        #expect(table.peek("k", now: Self.now) == "sealed")
        #expect(table.peek("k", now: Self.now) == "sealed", "looking leaves it")
        #expect(table.take("k", now: Self.now) == "sealed")
        #expect(table.take("k", now: Self.now) == nil)
        #expect(table.peek("k", now: Self.now) == nil)
        #expect(table.keep("old", under: "o", expiry: Self.now + 1, now: Self.now))
        #expect(table.take("o", now: Self.now + 2) == nil, "expired")
        #expect(table.bytes == 0)
    }

    /// A flood of anonymous forms cannot fill memory: past the bytes or the count, forms are refused until the
    /// expired ones go.
    @Test func theTableIsBoundedInBytesAndForms() {
        let table = KeptFormTable(capacity: 10, count: 3)
        #expect(table.keep("12345678", under: "a", expiry: Self.now + 1, now: Self.now))
        #expect(!table.keep("123", under: "b", expiry: Self.now + 600, now: Self.now), "past 10 bytes")
        #expect(table.keep("12", under: "b", expiry: Self.now + 600, now: Self.now))
        #expect(table.keep("123", under: "c", expiry: Self.now + 600, now: Self.now + 2), "a's room, a expired")
        #expect(table.keep("1", under: "d", expiry: Self.now + 600, now: Self.now + 4))
        #expect(!table.keep("1", under: "e", expiry: Self.now + 600, now: Self.now + 6), "three forms at most")
        #expect(table.bytes == 6)
    }
}
