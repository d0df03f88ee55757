import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import Testing

@testable import DetourServer

/// An HTTP/2 response ends with its last DATA frame, not with an empty one after it (issue 16), and nothing is
/// held back past a flush.
@Suite struct EndWithLastDataTests {
    func stream() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(EndWithLastData())
        return channel
    }

    func data(_ text: String, end: Bool = false) -> HTTP2Frame.FramePayload {
        .data(.init(data: .byteBuffer(ByteBuffer(string: text)), endStream: end))
    }

    /// The frames that left, as `DATA text` (`+END` when it ends the stream) or `HEADERS`.
    func sent(_ channel: EmbeddedChannel) throws -> [String] {
        var frames: [String] = []
        while let frame = try channel.readOutbound(as: HTTP2Frame.FramePayload.self) {
            switch frame {
            case .data(let data):
                guard case .byteBuffer(let bytes) = data.data else { continue }
                frames.append("DATA \(String(buffer: bytes))" + (data.endStream ? "+END" : ""))
            case .headers(let headers):
                frames.append("HEADERS" + (headers.endStream ? "+END" : ""))
            default:
                frames.append("\(frame)")
            }
        }
        return frames
    }

    @Test func theEmptyEndIsMergedIntoTheLastDataFrame() throws {
        let channel = try stream()
        let bodyWritten = channel.eventLoop.makePromise(of: Void.self)
        let endWritten = channel.eventLoop.makePromise(of: Void.self)
        channel.write(HTTP2Frame.FramePayload.headers(.init(headers: [":status": "200"])), promise: nil)
        channel.write(data("first"), promise: nil)
        channel.write(data("last"), promise: bodyWritten)
        channel.write(data("", end: true), promise: endWritten)
        channel.flush()
        #expect(try sent(channel) == ["HEADERS", "DATA first", "DATA last+END"])
        try bodyWritten.futureResult.wait()
        try endWritten.futureResult.wait()
    }

    @Test func nothingIsHeldPastAFlush() throws {
        let channel = try stream()
        channel.write(data("chunk"), promise: nil)
        channel.flush()
        #expect(try sent(channel) == ["DATA chunk"])
        channel.write(data("", end: true), promise: nil)
        channel.flush()
        #expect(try sent(channel) == ["DATA +END"])
    }

    @Test func trailersAndNonEmptyEndsAreLeftAlone() throws {
        let channel = try stream()
        channel.write(data("body"), promise: nil)
        channel.write(
            HTTP2Frame.FramePayload.headers(.init(headers: ["x-trailer": "1"], endStream: true)), promise: nil)
        channel.flush()
        #expect(try sent(channel) == ["DATA body", "HEADERS+END"])
        channel.write(data("body"), promise: nil)
        channel.write(data("tail", end: true), promise: nil)
        channel.flush()
        #expect(try sent(channel) == ["DATA body", "DATA tail+END"])
    }
}
