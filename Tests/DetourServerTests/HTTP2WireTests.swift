import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import Testing

@testable import DetourServer

/// How an HTTP/2 stream's frames read as a request, and how answers leave as frames (issue 16): one `Cookie`
/// field, no body its head does not frame, and a response that ends with its last DATA frame.
@Suite struct HTTP2WireTests {
    func headers(_ method: String, _ fields: [(String, String)], end: Bool = false) -> HTTP2Frame.FramePayload {
        let pseudo = [(":method", method), (":scheme", "https"), (":authority", "app.example.com"), (":path", "/x")]
        return .headers(.init(headers: HPACKHeaders(pseudo + fields), endStream: end))
    }

    func data(_ text: String, end: Bool = false) -> HTTP2Frame.FramePayload {
        .data(.init(data: .byteBuffer(ByteBuffer(string: text)), endStream: end))
    }

    /// The request parts one frame reads as.
    func parts(_ wire: inout HTTP2Wire, _ frame: HTTP2Frame.FramePayload) throws -> [HTTPServerRequestPart] {
        switch try wire.read(frame) {
        case .none: []
        case .one(let part): [part]
        case .two(let part, let next): [part, next]
        }
    }

    func head(_ wire: inout HTTP2Wire, _ frame: HTTP2Frame.FramePayload) throws -> HTTPRequestHead? {
        guard case .head(let head)? = try parts(&wire, frame).first else { return nil }
        return head
    }

    /// A frame as `DATA text` (`+END` when it ends the stream) or `HEADERS name: value, ...`.
    func describe(_ frame: HTTP2Frame.FramePayload) -> String {
        switch frame {
        case .data(let data):
            guard case .byteBuffer(let bytes) = data.data else { return "DATA file" }
            return "DATA \(String(buffer: bytes))" + (data.endStream ? "+END" : "")
        case .headers(let headers):
            let fields = headers.headers.map { "\($0.name): \($0.value)" }.joined(separator: ", ")
            return "HEADERS \(fields)" + (headers.endStream ? "+END" : "")
        default:
            return "\(frame)"
        }
    }

    @Test func cookieCrumbsAreJoinedIntoOneFieldAndTheAuthorityIsTheHost() throws {
        var wire = HTTP2Wire(allocator: ByteBufferAllocator())
        let read = try head(&wire, headers("GET", [("cookie", "a=1"), ("accept", "*/*"), ("cookie", "b=2; c=3")]))
        #expect(read?.headers["cookie"] == ["a=1; b=2; c=3"])
        #expect(read?.headers["host"] == ["app.example.com"])
        #expect(read?.method == .GET && read?.uri == "/x" && read?.version == HTTPVersion(major: 2, minor: 0))
    }

    @Test func aHostFieldIsKeptOverTheAuthority() throws {
        var wire = HTTP2Wire(allocator: ByteBufferAllocator())
        let read = try head(&wire, headers("GET", [("host", "other.example.com")]))
        #expect(read?.headers["host"] == ["other.example.com"])
    }

    @Test func dataAfterAHeadThatFramesNoBodyIsMalformed() throws {
        var wire = HTTP2Wire(allocator: ByteBufferAllocator())
        _ = try parts(&wire, headers("GET", []))
        #expect(throws: MalformedRequest.unframedBody) {
            _ = try parts(&wire, data("GET /admin HTTP/1.1\r\n\r\n"))
        }
    }

    @Test func anEmptyEndAfterAGetIsItsEnd() throws {
        var wire = HTTP2Wire(allocator: ByteBufferAllocator())
        _ = try parts(&wire, headers("GET", []))
        #expect(try parts(&wire, data("", end: true)) == [.end(nil)])
    }

    @Test(arguments: [("content-length", "5"), ("transfer-encoding", "chunked")])
    func aFramedBodyPasses(field: (String, String)) throws {
        var wire = HTTP2Wire(allocator: ByteBufferAllocator())
        _ = try parts(&wire, headers("POST", [field]))
        #expect(try parts(&wire, data("hel")) == [.body(ByteBuffer(string: "hel"))])
        #expect(try parts(&wire, data("lo", end: true)) == [.body(ByteBuffer(string: "lo")), .end(nil)])
    }

    @Test func aPostWithoutALengthIsFramedChunkedOrEmpty() throws {
        var open = HTTP2Wire(allocator: ByteBufferAllocator())
        #expect(try head(&open, headers("POST", []))?.headers["transfer-encoding"] == ["chunked"])
        #expect(try parts(&open, data("x")) == [.body(ByteBuffer(string: "x"))])
        var ended = HTTP2Wire(allocator: ByteBufferAllocator())
        let read = try parts(&ended, headers("POST", [], end: true))
        guard case .head(let head)? = read.first else {
            Issue.record("no head: \(read)")
            return
        }
        #expect(head.headers["content-length"] == ["0"])
        #expect(read.count == 2 && read.last == .end(nil))
    }

    @Test func trailersEndTheRequestAndMustEndTheStream() throws {
        var wire = HTTP2Wire(allocator: ByteBufferAllocator())
        _ = try parts(&wire, headers("POST", [("content-length", "1")]))
        _ = try parts(&wire, data("x"))
        let trailers = HTTP2Frame.FramePayload.headers(.init(headers: ["x-checksum": "1"], endStream: true))
        #expect(try parts(&wire, trailers) == [.end(HTTPHeaders([("x-checksum", "1")]))])
        var open = HTTP2Wire(allocator: ByteBufferAllocator())
        _ = try parts(&open, headers("POST", [("content-length", "1")]))
        #expect(throws: MalformedRequest.trailersDoNotEnd) {
            _ = try parts(&open, .headers(.init(headers: ["x-checksum": "1"])))
        }
    }

    @Test func aHeadWithoutItsPseudoFieldsIsMalformed() throws {
        var wire = HTTP2Wire(allocator: ByteBufferAllocator())
        #expect(throws: MalformedRequest.missingPseudoField) {
            _ = try parts(&wire, .headers(.init(headers: [":method": "GET", ":scheme": "https", ":path": "/"])))
        }
    }

    @Test func responseFieldsAreLowerCasedWithoutHTTP1Framing() {
        let wire = HTTP2Wire(allocator: ByteBufferAllocator())
        let head = wire.head(.found, version: HTTPVersion(major: 2, minor: 0)) { field in
            field("Location", "https://idp.example/authorize")
            field("Connection", "close")
            field("Transfer-Encoding", "chunked")
            field("keep-alive", "timeout=5")
            field("Upgrade", "h2c")
            field("Proxy-Connection", "close")
            field("content-length", "0")
            field("X_Custom", "kept")
        }
        #expect(
            describe(head) == "HEADERS :status: 302, location: https://idp.example/authorize, content-length: 0, "
                + "x_custom: kept")
    }

    @Test func theEndIsMergedIntoTheLastDataFrame() {
        var wire = HTTP2Wire(allocator: ByteBufferAllocator())
        var sent: [String] = []
        wire.body(ByteBuffer(string: "first"), chunked: false) { sent.append(describe($0)) }
        wire.body(ByteBuffer(string: "last"), chunked: false) { sent.append(describe($0)) }
        sent.append(describe(wire.end(trailers: nil, chunked: false) { sent.append(describe($0)) }))
        #expect(sent == ["DATA first", "DATA last+END"])
    }

    @Test func aHeldPartIsReleasedOnceAndAnEmptyEndFollows() {
        var wire = HTTP2Wire(allocator: ByteBufferAllocator())
        wire.body(ByteBuffer(string: "chunk"), chunked: false) { _ in Issue.record("nothing was held before") }
        #expect(wire.release().map(describe) == "DATA chunk")
        #expect(wire.release() == nil)
        #expect(describe(wire.end(trailers: nil, chunked: false) { _ in Issue.record("nothing held") }) == "DATA +END")
    }

    @Test func trailersFollowTheLastDataFrame() {
        var wire = HTTP2Wire(allocator: ByteBufferAllocator())
        var sent: [String] = []
        wire.body(ByteBuffer(string: "body"), chunked: false) { sent.append(describe($0)) }
        let last = wire.end(trailers: HTTPHeaders([("X-Trailer", "1")]), chunked: false) { sent.append(describe($0)) }
        sent.append(describe(last))
        #expect(sent == ["DATA body", "HEADERS x-trailer: 1+END"])
    }

    @Test func aWholeAnswerIsItsHeadAndOneDataFrameThatEndsTheStream() {
        var wire = HTTP2Wire(allocator: ByteBufferAllocator())
        var sent: [String] = []
        let fields = { (field: (String, String) -> Void) in field("Content-Length", "2") }
        wire.whole(.forbidden, version: HTTPVersion(major: 2, minor: 0), fields: fields, body: Array("no".utf8)) {
            sent.append(describe($0))
        }
        sent.append(describe(wire.end(trailers: nil, chunked: false) { sent.append(describe($0)) }))
        #expect(sent == ["HEADERS :status: 403, content-length: 2", "DATA no+END"])
    }
}
