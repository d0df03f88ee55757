import NIOCore
import NIOEmbedded
import Testing

@testable import DetourServer

/// An HTTP/2 connection's flushes wait for the end of the loop's turn (issue 16): the answers of several streams
/// leave in one TLS write, and none is left behind.
@Suite struct FlushAtEndOfTurnTests {
    @Test func flushesInOneTurnLeaveTogetherAtItsEnd() throws {
        let channel = EmbeddedChannel()
        let flusher = TickFlusher(eventLoop: channel.eventLoop)
        try channel.pipeline.syncOperations.addHandler(FlushAtEndOfTurn(flusher: flusher))
        for answer in ["first stream", "second stream"] {
            channel.write(ByteBuffer(string: answer), promise: nil)
            channel.flush()
        }
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil, "flushed before the turn ended")
        channel.embeddedEventLoop.run()
        #expect(try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "first stream"))
        #expect(try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "second stream"))
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
    }

    @Test func whatWasWrittenIsFlushedBeforeAClose() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(
            FlushAtEndOfTurn(flusher: TickFlusher(eventLoop: channel.eventLoop)))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 443)).wait()
        channel.write(ByteBuffer(string: "GOAWAY"), promise: nil)
        channel.flush()
        _ = channel.close()
        #expect(try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "GOAWAY"))
    }
}
