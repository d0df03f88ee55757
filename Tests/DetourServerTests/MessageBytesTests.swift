import NIOCore
import NIOHTTP1
import Testing

@testable import DetourServer

@Suite struct MessageBytesTests {
    private func text(_ buffers: [ByteBuffer]) -> String {
        buffers.map { String(buffer: $0) }.joined()
    }

    @Test func aRequestHeadIsItsLineItsFieldsAndAnEmptyLine() {
        var bytes = MessageBytes(allocator: ByteBufferAllocator(), capacity: 8)
        bytes.requestLine(.POST, "/a?b=c")
        bytes.field("Host", "app.example.com")
        bytes.field("X-Forwarded-User", "zoë")  // non-ASCII: copied by its UTF-8 length, not its character count
        bytes.field("X-Empty", "")
        bytes.endOfHead()
        #expect(
            text([bytes.buffer])
                == "POST /a?b=c HTTP/1.1\r\nHost: app.example.com\r\nX-Forwarded-User: zoë\r\nX-Empty: \r\n\r\n")
    }

    @Test func aStatusLineSpeaksTheClientsVersion() {
        var bytes = MessageBytes(allocator: ByteBufferAllocator())
        bytes.statusLine(.http1_0, .notFound)
        bytes.statusLine(.http1_1, .init(statusCode: 299, reasonPhrase: "Custom"))
        #expect(text([bytes.buffer]) == "HTTP/1.0 404 Not Found\r\nHTTP/1.1 299 Custom\r\n")
    }

    @Test func aFieldLongerThanTheCapacityGrowsTheBuffer() {
        var bytes = MessageBytes(allocator: ByteBufferAllocator(), capacity: 4)
        let value = String(repeating: "v", count: 5000)
        bytes.field("X-Long", value)
        #expect(text([bytes.buffer]) == "X-Long: \(value)\r\n")
    }

    @Test func chunksCarryTheirSizeInHexAndAnEmptyPartWritesNothing() {
        let allocator = ByteBufferAllocator()
        #expect(
            text(MessageBytes.chunk(ByteBuffer(string: String(repeating: "x", count: 26)), allocator: allocator))
                == "1a\r\n\(String(repeating: "x", count: 26))\r\n")
        #expect(MessageBytes.chunk(ByteBuffer(), allocator: allocator).isEmpty)
    }

    @Test func theLastChunkCarriesTheTrailers() {
        let allocator = ByteBufferAllocator()
        #expect(text([MessageBytes.lastChunk(trailers: nil, allocator: allocator)]) == "0\r\n\r\n")
        #expect(
            text([MessageBytes.lastChunk(trailers: ["X-Checksum": "42"], allocator: allocator)])
                == "0\r\nX-Checksum: 42\r\n\r\n")
    }
}
