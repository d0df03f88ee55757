import DetourRedirect
import Logging
import NIOHTTP1
import Testing

@testable import DetourServer

@Suite struct ProxyHeadersTests {
    @Test(arguments: [
        "X-Forwarded-User", "x-forwarded-user", "X_FORWARDED_USER", "x_forwarded-email", "X-Forwarded-Groups",
        "X-Forwarded-Preferred-Username", "X-Forwarded-Access-Token", "X-Auth-Request-User", "x_auth_request_anything",
        "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host",
    ])
    func identityHeadersAreRecognisedInEverySpelling(name: String) {
        #expect(ProxyHeaders.isIdentity(name))
    }

    @Test(arguments: ["X-Request-Id", "Authorization", "Cookie", "X-Forwarded", "Accept", "Forwarded-User"])
    func otherHeadersAreNot(name: String) {
        #expect(!ProxyHeaders.isIdentity(name))
    }

    @Test func sanitisingRemovesHopByHopIdentityAndOwnCookies() {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "app.example.com")
        headers.add(name: "Connection", value: "keep-alive, X-Secret-Hop")
        headers.add(name: "X-Secret-Hop", value: "1")
        headers.add(name: "Keep-Alive", value: "timeout=5")
        headers.add(name: "Transfer-Encoding", value: "chunked")
        headers.add(name: "Proxy-Authorization", value: "Basic x")
        headers.add(name: "X_Forwarded_User", value: "root")
        headers.add(name: "Cookie", value: "__Host-_detour=sealed; app=1; __Host-_detour_0=chunk")
        headers.add(name: "Cookie", value: "__Host-_detour_state=s")
        headers.add(name: "Authorization", value: "Bearer client-token")
        let result = HTTPHeaders(ProxyHeaders.forUpstream(headers, cookiePrefix: "__Host-_detour"))
        #expect(result.map(\.name) == ["Host", "Cookie", "Authorization", "Transfer-Encoding"])
        #expect(result["cookie"] == ["app=1"])
        #expect(result["transfer-encoding"] == ["chunked"], "a chunked body stays framed as one")
    }

    @Test func aRequestWithoutAChunkedBodyGetsNoTransferEncoding() {
        let headers = HTTPHeaders([("Host", "app.example.com"), ("Content-Length", "3"), ("Connection", "te")])
        let result = HTTPHeaders(ProxyHeaders.forUpstream(headers, cookiePrefix: "_detour"))
        #expect(result.map(\.name) == ["Host", "Content-Length"])
    }

    @Test func connectionCannotMakeTheBodysLengthHopByHop() {
        let headers = HTTPHeaders([
            ("Content-Length", "3"), ("Connection", "Content_Length, X-Hop"), ("X-Hop", "1"),
        ])
        #expect(ProxyHeaders.connectionNamed(headers) == ["x-hop"])
        let result = HTTPHeaders(ProxyHeaders.forUpstream(headers, cookiePrefix: "_detour"))
        #expect(result.map(\.name) == ["Content-Length"])
    }

    @Test func onlyTheRealTransferEncodingMeansAChunkedBody() {
        // The parser framed this body by its length: saying `chunked` too would let the two framings disagree.
        let headers = HTTPHeaders([("Content-Length", "3"), ("Transfer_Encoding", "chunked")])
        let result = HTTPHeaders(ProxyHeaders.forUpstream(headers, cookiePrefix: "_detour"))
        #expect(result.map(\.name) == ["Content-Length"])
        let chunked = HTTPHeaders([("TRANSFER-ENCODING", "chunked")])
        #expect(
            HTTPHeaders(ProxyHeaders.forUpstream(chunked, cookiePrefix: "_detour"))["transfer-encoding"] == ["chunked"])
    }

    @Test(
        arguments: [
            ("_detour=a; app=1", "app=1"),
            ("app=1;_detour_0=a;  _detour_state=b ;b=2", "app=1; b=2"),
            ("_detourX=1; _detour", "_detourX=1; _detour"),
            ("_detour=a; _detour_1=b", nil),
            ("app=1", "app=1"),
            ("; _detour=a;;app=1;", "app=1"),
            ("", ""),
            ("_detour=" + String(repeating: "x", count: 4000) + "; app=1", "app=1"),
        ] as [(String, String?)])
    func ownCookiesAreRemovedByName(header: String, kept: String?) {
        #expect(ProxyHeaders.removingOwnCookies(from: header, prefix: "_detour") == kept)
    }

    @Test func responsesKeepTheirStatusAndMoveUpstreamLocations() throws {
        var head = HTTPResponseHead(version: .http1_1, status: .temporaryRedirect)
        head.headers.add(name: "Location", value: "http://127.0.0.1:3000/next?x=1")
        head.headers.add(name: "Connection", value: "close")
        head.headers.add(name: "Set-Cookie", value: "app=1")
        let rewritten = ProxyHeaders.forClient(
            head, upstreamRequest: "http://127.0.0.1:3000/start",
            publicRequest: "https://app.example.com/start")
        #expect(rewritten.status == .temporaryRedirect)
        #expect(
            fields(of: rewritten) == [
                .init(name: "Location", value: "https://app.example.com/next?x=1"),
                .init(name: "Set-Cookie", value: "app=1"),
            ])
    }

    @Test func detoursHeadersFollowTheUpstreamsAndALocationIsMovedOnce() {
        var head = HTTPResponseHead(version: .http1_1, status: .found)
        head.headers.add(name: "X-Before", value: "1")
        head.headers.add(name: "location", value: "http://127.0.0.1:3000/a")
        head.headers.add(name: "Location", value: "/b")
        var rewritten = ProxyHeaders.forClient(
            head, upstreamRequest: "http://127.0.0.1:3000/", publicRequest: "https://app.example.com/")
        rewritten.added = [("Set-Cookie", "s=1")]
        #expect(
            fields(of: rewritten) == [
                .init(name: "X-Before", value: "1"), .init(name: "Location", value: "https://app.example.com/a"),
                .init(name: "Set-Cookie", value: "s=1"),
            ])
    }

    @Test func informationalResponsesLoseOnlyTheirHopByHopHeaders() {
        var head = HTTPResponseHead(version: .http1_1, status: .init(statusCode: 103))
        head.headers.add(name: "Link", value: "</app.css>; rel=preload")
        head.headers.add(name: "Connection", value: "X-Hop")
        head.headers.add(name: "X-Hop", value: "1")
        head.headers.add(name: "Keep-Alive", value: "timeout=5")
        #expect(
            fields(of: ClientResponseHead(passing: head)) == [.init(name: "Link", value: "</app.css>; rel=preload")])
    }

    private struct Field: Equatable {
        let name: String
        let value: String
    }

    private func fields(of head: ClientResponseHead) -> [Field] {
        var fields: [Field] = []
        head.forEachField { fields.append(Field(name: $0, value: $1)) }
        return fields
    }

    @Test func responsesLoseTheHeadersTheirConnectionHeaderNames() {
        var head = HTTPResponseHead(version: .http1_1, status: .ok)
        head.headers.add(name: "Connection", value: "Keep-Alive, X_Internal ,")
        head.headers.add(name: "connection", value: "close")
        head.headers.add(name: "X-Internal", value: "1")
        head.headers.add(name: "Keep-Alive", value: "timeout=5")
        head.headers.add(name: "X-Kept", value: "2")
        let rewritten = ProxyHeaders.forClient(head, upstreamRequest: "http://127.0.0.1/", publicRequest: "http://a/")
        #expect(fields(of: rewritten) == [.init(name: "X-Kept", value: "2")])
    }

    @Test(
        arguments: [
            (["keep-alive"], []), (["Close"], []), ([" keep-alive ,close"], []),
            (["keep-alive, X_Secret-Hop , te", "Upgrade"], ["x-secret-hop", "te", "upgrade"]), ([",,"], []),
        ] as [([String], [String])])
    func connectionTokensBeyondKeepAliveAndCloseAreNamed(values: [String], named: [String]) {
        let headers = HTTPHeaders(values.map { ("Connection", $0) } + [("X-Other", "keep-alive, a")])
        #expect(ProxyHeaders.connectionNamed(headers) == named)
    }

    @Test(
        arguments: [
            ("Transfer-Encoding", "transfer-encoding", true), ("TRANSFER_ENCODING", "transfer-encoding", true),
            ("Transfer-Encodings", "transfer-encoding", false), ("Transfer-Encodin", "transfer-encoding", false),
            ("Tränsfer", "transfer", false), ("te", "te", true), ("t-", "te", false),
        ])
    func namesAreComparedAsServersCompareThem(name: String, normalized: String, same: Bool) {
        #expect(ProxyHeaders.name(name, spells: normalized) == same)
    }

    @Test func valuesWithControlBytesAreFound() {
        #expect(ProxyHeaders.firstInvalidValue(in: ["A": "tab\tand café", "B": "ok"] as HTTPHeaders) == nil)
        #expect(
            ProxyHeaders.firstInvalidValue(
                in: ["A": "ok", "X-Forwarded-Email": "m@example.com\r\nX-Injected: yes"] as HTTPHeaders)
                == "X-Forwarded-Email")
        #expect(ProxyHeaders.firstInvalidValue(in: ["A": "nul\u{0}"] as HTTPHeaders) == "A")
        #expect(ProxyHeaders.firstInvalidValue(in: ["A": "del\u{7F}"] as HTTPHeaders) == "A")
    }
}

/// Issue 14.8: the heads two servers could read two ways, refused before any decision.
@Suite struct RequestFramingTests {
    static func head(version: HTTPVersion = .http1_1, _ fields: [(String, String)]) -> HTTPRequestHead {
        HTTPRequestHead(version: version, method: .POST, uri: "/", headers: HTTPHeaders(fields))
    }

    @Test func refusesEachAmbiguousHead() {
        let host = ("Host", "a.example")
        #expect(RequestFraming.problem(Self.head([host, ("host", "b.example")])) == .hostCount)
        #expect(RequestFraming.problem(Self.head([])) == .hostCount)
        #expect(RequestFraming.problem(Self.head(version: .http1_0, [host, host])) == .hostCount)
        let token = ("Authorization", "Bearer checked")
        #expect(RequestFraming.problem(Self.head([host, token])) == nil)
        #expect(
            RequestFraming.problem(Self.head([host, token, ("authorization", "Bearer forged")])) == .authorizationCount)
        #expect(RequestFraming.problem(Self.head(version: .http2, [host, token, token])) == .authorizationCount)
        for coding in ["gzip, chunked", "chunked, chunked", "gzip", "chunked;x=1", "", "identity"] {
            #expect(
                RequestFraming.problem(Self.head([host, ("Transfer-Encoding", coding)])) == .transferEncoding,
                "\(coding)")
        }
        #expect(
            RequestFraming.problem(
                Self.head([host, ("Transfer-Encoding", "chunked"), ("transfer-encoding", "chunked")]))
                == .transferEncoding)
        #expect(
            RequestFraming.problem(Self.head(version: .http1_0, [host, ("Transfer-Encoding", "chunked")]))
                == .transferEncoding)
        #expect(
            RequestFraming.problem(Self.head([host, ("Transfer-Encoding", "chunked"), ("Content-Length", "3")]))
                == .transferEncodingAndLength)
        for length in ["+5", "5, 5", "-0", " ", "0x5", "5 5", String(repeating: "9", count: 19)] {
            #expect(
                RequestFraming.problem(Self.head([host, ("Content-Length", length)])) == .contentLength, "\(length)")
        }
        #expect(
            RequestFraming.problem(Self.head([host, ("Content-Length", "5"), ("content-length", "5")]))
                == .contentLength)
        #expect(RequestFraming.problem(Self.head([host, ("Content_Length", "5")])) == .contentLength)
    }

    /// Issue 16: SwiftNIO's HTTP/2 codec lets control bytes other than CR, LF and NUL through to the head.
    @Test func refusesControlBytesInAnHTTP2Head() {
        let host = ("Host", "a.example")
        let http2 = HTTPVersion(major: 2, minor: 0)
        for value in ["a\u{1}b", "a\u{1F}", "\u{7F}", "a\u{8}"] {
            #expect(RequestFraming.problem(Self.head(version: http2, [host, ("x-note", value)])) == .controlByte)
        }
        #expect(RequestFraming.problem(Self.head(version: http2, [host, ("x-note", "tab\there é")])) == nil)
    }

    @Test func acceptsOrdinaryHeads() {
        let host = ("Host", "a.example")
        #expect(RequestFraming.problem(Self.head([host])) == nil)
        #expect(RequestFraming.problem(Self.head(version: .http1_0, [])) == nil)
        #expect(RequestFraming.problem(Self.head([host, ("Transfer-Encoding", " Chunked ")])) == nil)
        #expect(RequestFraming.problem(Self.head([host, ("Content-Length", "3")])) == nil)
        #expect(RequestFraming.problem(Self.head([host, ("Content-Length", "0")])) == nil)
        #expect(
            RequestFraming.problem(Self.head([host, ("Transfer_Encoding", "gzip"), ("Content-Length", "3")])) == nil)
    }
}

/// Issue 14.9: a log line is one line, whatever a client or provider sent.
