import DetourOIDC
import DetourSessions
import Foundation
import Logging
import NIOHTTP1
import Synchronization
import Testing

@testable import DetourServer

@Suite struct SessionRefresherTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)

    static func session(expiresIn seconds: Double, refreshToken: String? = "rt-1") -> Session {
        Session(
            subject: "alice", accessToken: "at-1", accessTokenExpiry: now.addingTimeInterval(seconds),
            refreshToken: refreshToken, signedInAt: now, expiry: now.addingTimeInterval(3600))
    }

    @Test func refreshesOnlyWithinRefreshBeforeAndWithARefreshToken() {
        let refresher = SessionRefresher(refreshBefore: .seconds(300), logger: Logger(label: "test")) {
            _, _, _ throws(OIDCError) in
            throw OIDCError(.tokenRequestRefused, "unused")
        }
        #expect(refresher.needsRefresh(Self.session(expiresIn: 299), now: Self.now))
        #expect(refresher.needsRefresh(Self.session(expiresIn: -10), now: Self.now))
        #expect(!refresher.needsRefresh(Self.session(expiresIn: 301), now: Self.now))
        #expect(!refresher.needsRefresh(Self.session(expiresIn: 10, refreshToken: nil), now: Self.now))
    }

    @Test func oneGrantPerSessionAtATimeAndTheRotatedTokensKept() async {
        let grants = Atomic<Int>(0)
        let refresher = SessionRefresher(refreshBefore: .seconds(300), logger: Logger(label: "test")) {
            token, _, now throws(OIDCError) in
            grants.add(1, ordering: .relaxed)
            try? await Task.sleep(for: .milliseconds(50))
            return Refreshed(
                accessToken: "at-2", accessTokenExpiry: now.addingTimeInterval(600), refreshToken: token + "-next")
        }
        let session = Self.session(expiresIn: 10)
        let renewed = await withTaskGroup(of: Session?.self) { group in
            for _ in 0..<8 { group.addTask { await refresher.refreshed(session, now: Self.now) } }
            return await group.reduce(into: [Session?]()) { $0.append($1) }
        }
        #expect(grants.load(ordering: .relaxed) == 1)
        #expect(renewed.allSatisfy { $0?.accessToken == "at-2" && $0?.refreshToken == "rt-1-next" })
        #expect(renewed.first??.expiry == session.expiry, "a refresh does not extend the session")
        // A request still carrying the old cookie a moment later gets the same answer, not a second grant.
        _ = await refresher.refreshed(session, now: Self.now.addingTimeInterval(5))
        #expect(grants.load(ordering: .relaxed) == 1)
    }

    @Test func aFailedGrantMeansSignedOut() async {
        let refresher = SessionRefresher(refreshBefore: .seconds(300), logger: Logger(label: "test")) {
            _, _, _ throws(OIDCError) in
            throw OIDCError(.tokenRequestRefused, "invalid_grant")
        }
        #expect(await refresher.refreshed(Self.session(expiresIn: 10), now: Self.now) == nil)
    }
}
