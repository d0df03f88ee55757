import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import DetourServer

/// What an HTTP/2 stream's request looks like to the rest of Detour (issue 16): one `Cookie` field, and no body
/// that its head does not frame.
@Suite struct HTTP2StreamGuardTests {
    func stream() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(HTTP2StreamGuard())
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 443)).wait()
        return channel
    }

    func head(_ method: HTTPMethod, _ fields: [(String, String)]) -> HTTPServerRequestPart {
        .head(
            HTTPRequestHead(
                version: .init(major: 2, minor: 0), method: method, uri: "/x",
                headers: HTTPHeaders([("host", "app.example.com")] + fields)))
    }

    @Test func cookieCrumbsAreJoinedIntoOneField() throws {
        let channel = try stream()
        try channel.writeInbound(head(.GET, [("cookie", "a=1"), ("accept", "*/*"), ("cookie", "b=2; c=3")]))
        guard case .head(let passed)? = try channel.readInbound(as: HTTPServerRequestPart.self) else {
            Issue.record("the head was not passed on")
            return
        }
        #expect(passed.headers["cookie"] == ["a=1; b=2; c=3"])
    }

    @Test func dataAfterAHeadThatFramesNoBodyResetsTheStream() throws {
        let channel = try stream()
        try channel.writeInbound(head(.GET, []))
        _ = try channel.readInbound(as: HTTPServerRequestPart.self)
        try channel.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: "GET /admin HTTP/1.1\r\n\r\n")))
        #expect(try channel.readInbound(as: HTTPServerRequestPart.self) == nil)
        #expect(!channel.isActive)
    }

    @Test(arguments: [("content-length", "5"), ("transfer-encoding", "chunked")])
    func aFramedBodyPasses(field: (String, String)) throws {
        let channel = try stream()
        try channel.writeInbound(head(.POST, [field]))
        try channel.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: "hello")))
        try channel.writeInbound(HTTPServerRequestPart.end(nil))
        _ = try channel.readInbound(as: HTTPServerRequestPart.self)
        #expect(try channel.readInbound(as: HTTPServerRequestPart.self) == .body(ByteBuffer(string: "hello")))
        #expect(try channel.readInbound(as: HTTPServerRequestPart.self) == .end(nil))
        #expect(channel.isActive)
    }
}
