import DetourGateway
import DetourPolicy
import Foundation
import Testing

@testable import DetourOIDC
@testable import DetourServer

/// What a bearer token's answer becomes: mapped once, kept without the token, and handed to the gateway with the
/// token the request presented.
@Suite struct TokenVerdictTests {
    let claims = TokenClaims(
        subject: "u-7", expiry: Date(timeIntervalSince1970: 2_000_000_000),
        all: ["sub": .string("u-7"), "username": .string("bob"), "groups": .array([.string("ops")])])

    @Test func anAcceptedTokenNamesItsUserAndCarriesThePresentedToken() {
        let verdict = TokenVerdict(.success(claims))
        guard case .accepted(let identity, let token) = verdict.check(presenting: "tok-a") else {
            Issue.record("expected an accepted token, got \(verdict)")
            return
        }
        #expect(identity.subject == "u-7")
        #expect(identity.preferredUsername == "bob", "RFC 7662 names the user `username`")
        #expect(identity.groups == ["ops"])
        #expect(token == "tok-a")
    }

    @Test func refusalsAndOutagesAreToldApart() {
        func reason(_ checked: Result<TokenClaims?, OIDCError>) -> String {
            switch TokenVerdict(checked).check(presenting: "t") {
            case .accepted: "accepted"
            case .refused(let reason): reason
            case .providerUnavailable: "unavailable"
            }
        }
        #expect(reason(.success(nil)) == "inactive")
        #expect(reason(.failure(OIDCError(.providerUnavailable, "down"))) == "unavailable")
        #expect(reason(.failure(OIDCError(.providerTimedOut, "slow"))) == "unavailable")
        #expect(reason(.failure(OIDCError(.expired, "old"))) == OIDCError.Code.expired.rawValue)
    }
}
