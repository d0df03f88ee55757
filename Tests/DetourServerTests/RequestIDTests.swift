import NIOHTTP1
import Testing

@testable import DetourServer

/// Request ids Detour makes: 32 lower-case hex digits, the process's random half, then a count (CONTRACT section 8).
@Suite struct RequestIDTests {
    @Test func madeIdsAreThirtyTwoHexDigitsCountingUpFromOneProcessPart() throws {
        let first = RequestID.of(HTTPHeaders(), trusted: false)
        let second = RequestID.of(HTTPHeaders([("X-Request-Id", "from-a-client")]), trusted: false)
        for id in [first, second] {
            #expect(id.utf8.count == 32 && id.utf8.allSatisfy { Array("0123456789abcdef".utf8).contains($0) })
        }
        #expect(first.prefix(16) == second.prefix(16))
        let count = try #require(UInt64(first.suffix(16), radix: 16))
        // Other tests make ids at the same time: the second is later, not necessarily the next.
        #expect(try #require(UInt64(second.suffix(16), radix: 16)) > count)
    }

    @Test func aTrustedProxysOneUsableIdIsKept() {
        #expect(RequestID.of(HTTPHeaders([("X-Request-Id", "abc-123")]), trusted: true) == "abc-123")
        #expect(RequestID.of(HTTPHeaders([("X-Request-Id", "forged\tid")]), trusted: true).utf8.count == 32)
    }
}
