import NIOCore
import NIOHTTP1

/// HTTP/1.1 messages as the bytes a peer reads (RFC 9112): Detour writes them itself, responses to clients and
/// requests to upstreams, with no SwiftNIO encoder between its handlers and the sockets.
///
/// Guarantees: a head is written exactly as given, so its framing (`Content-Length`, `Transfer-Encoding: chunked`,
/// or neither: no request body, or a response body that ends with the connection) is the caller's to choose, and the
/// body parts must follow it: ``chunk(_:allocator:)`` and ``lastChunk(trailers:allocator:)`` for a chunked body, the
/// bytes as they are otherwise. Names and values are written as they are: the caller passes only what was already
/// checked for control bytes (by SwiftNIO's parser, or by ``HeaderValue/isSendable(_:)``).
struct MessageBytes {
    private(set) var buffer: ByteBuffer

    /// A head in `allocator`'s memory, with room for about `capacity` bytes before growing (a usual head fits the
    /// default: growing copies it).
    init(allocator: ByteBufferAllocator, capacity: Int = 1024) {
        buffer = allocator.buffer(capacity: capacity)
    }

    /// A whole request head: its line, its fields as they are, the empty line.
    static func requestHead(_ head: HTTPRequestHead, allocator: ByteBufferAllocator) -> ByteBuffer {
        var bytes = MessageBytes(allocator: allocator)
        bytes.requestLine(head.method, head.uri)
        for (name, value) in head.headers { bytes.field(name, value) }
        bytes.endOfHead()
        return bytes.buffer
    }

    /// `GET /path?query HTTP/1.1`: the target as the gateway rewrote it from one the parser read (no space, no
    /// control byte).
    mutating func requestLine(_ method: HTTPMethod, _ target: String) {
        line(method.rawValue, " ", target, " HTTP/1.1\r\n")
    }

    /// `HTTP/1.1 200 OK`, for the client's version.
    mutating func statusLine(_ version: HTTPVersion, _ status: HTTPResponseStatus) {
        let code = Int(status.code)
        let digits = (100...999).contains(code) ? Self.threeDigits[code - 100] : String(code)
        line(version == .http1_0 ? "HTTP/1.0 " : "HTTP/1.1 ", digits, " ", status.reasonPhrase, "\r\n")
    }

    /// Status codes as text, made once: a status line is written for every response.
    private static let threeDigits = (100...999).map { String($0) }

    /// `Name: value` and its CRLF.
    mutating func field(_ name: String, _ value: String) { line(name, ": ", value, "\r\n") }

    /// Pieces of text in one change of the buffer: a head has a dozen lines, and each separate write checks the
    /// buffer's capacity, uniqueness and exclusive access again.
    private mutating func line(
        _ first: String, _ second: String, _ third: String, _ fourth: String, _ fifth: String = ""
    ) {
        let length = first.utf8.count + second.utf8.count + third.utf8.count + fourth.utf8.count + fifth.utf8.count
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { output in
            var at = Self.copy(first, into: output, at: 0)
            at = Self.copy(second, into: output, at: at)
            at = Self.copy(third, into: output, at: at)
            at = Self.copy(fourth, into: output, at: at)
            return Self.copy(fifth, into: output, at: at)
        }
    }

    /// Copies `text`'s bytes to `output` from `offset`; returns the offset after them.
    private static func copy(_ text: String, into output: UnsafeMutableRawBufferPointer, at offset: Int) -> Int {
        let end = offset + text.utf8.count
        let copied: Void? = text.utf8.withContiguousStorageIfAvailable { bytes in
            UnsafeMutableRawBufferPointer(rebasing: output[offset..<end]).copyMemory(
                from: UnsafeRawBufferPointer(bytes))
        }
        if copied == nil {
            for (index, byte) in zip(offset..<end, text.utf8) { output[index] = byte }
        }
        return end
    }

    /// The empty line that ends a head.
    mutating func endOfHead() { buffer.writeStaticString("\r\n") }

    /// Bytes that follow the head in the same write (Detour's own answers are small and whole).
    mutating func body(_ bytes: [UInt8]) { buffer.writeBytes(bytes) }

    /// One chunk of a chunked body (RFC 9112 7.1): its size in hex, the bytes, CRLF. An empty part writes nothing,
    /// since a zero-size chunk would end the body.
    static func chunk(_ part: ByteBuffer, allocator: ByteBufferAllocator) -> [ByteBuffer] {
        guard part.readableBytes > 0 else { return [] }
        var size = allocator.buffer(capacity: 18)
        size.writeString(String(part.readableBytes, radix: 16))
        size.writeStaticString("\r\n")
        var end = allocator.buffer(capacity: 2)
        end.writeStaticString("\r\n")
        return [size, part, end]
    }

    /// The end of a chunked body: the zero-size chunk, the trailers the peer sent, and the final CRLF.
    static func lastChunk(trailers: HTTPHeaders?, allocator: ByteBufferAllocator) -> ByteBuffer {
        var bytes = MessageBytes(allocator: allocator, capacity: 16)
        bytes.buffer.writeStaticString("0\r\n")
        for (name, value) in trailers ?? [:] { bytes.field(name, value) }
        bytes.endOfHead()
        return bytes.buffer
    }
}
