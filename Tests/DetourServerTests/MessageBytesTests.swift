import NIOCore
import NIOHTTP1
import Testing

@testable import DetourServer

@Suite struct MessageBytesTests {
    private func text(_ buffers: [ByteBuffer]) -> String {
        buffers.map { String(buffer: $0) }.joined()
    }

    @Test func aRequestHeadIsItsLineItsFieldsAndAnEmptyLine() {
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/a?b=c")
        head.headers.add(name: "Host", value: "app.example.com")
        head.headers.add(name: "X-Forwarded-User", value: "zoë")  // copied by its UTF-8 length, not its characters
        head.headers.add(name: "X-Empty", value: "")
        #expect(
            text([MessageBytes.requestHead(head, allocator: ByteBufferAllocator())])
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
