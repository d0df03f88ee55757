import NIOCore
import NIOHTTP1

/// How one client connection, or one HTTP/2 stream, meets ``RequestHandler``: the request parts it reads, and the
/// responses it writes, as HTTP/1.1 bytes Detour frames itself (``HTTP1Wire``) or as an HTTP/2 stream's frames
/// (``HTTP2Wire``). The machine's decisions are the same for both; only the framing differs.
///
/// Guarantees: a head is written with its fields in the order given; a body part is framed for the head it follows
/// (`chunked` only where the machine chose chunked framing); ``end(trailers:chunked:write:)`` always ends the
/// response (HTTP/2 needs its end-of-stream even where HTTP/1.1 needs no byte); a part the wire holds back is given
/// up by ``release()``, which the handler calls before every flush.
protocol ClientWire: SendableMetatype {
    associatedtype Part
    associatedtype InboundPart
    /// Whether this wire can carry a WebSocket upgrade (an HTTP/1.1 connection can; an HTTP/2 stream cannot).
    static var carriesUpgrades: Bool { get }
    /// Whether an exchange whose request and response have both ended ends its stream by itself (HTTP/2): closing
    /// it then could cut short a response still being flushed.
    static var endsItself: Bool { get }

    init(allocator: ByteBufferAllocator)
    /// The request parts `part` reads as, in order.
    mutating func read(_ part: InboundPart) throws(MalformedRequest) -> RequestParts
    /// A response head: the status line (for `version`) and each field `fields` passes to its argument.
    func head(
        _ status: HTTPResponseStatus, version: HTTPVersion, fields: ((String, String) -> Void) -> Void
    ) -> Part
    /// A head and whole body in as few parts as the wire allows, written through `write`.
    mutating func whole(
        _ status: HTTPResponseStatus, version: HTTPVersion, fields: ((String, String) -> Void) -> Void,
        body: [UInt8], write: (Part) -> Void)
    /// A piece of a body, framed as the head said.
    mutating func body(_ chunk: ByteBuffer, chunked: Bool, write: (Part) -> Void)
    /// The end of a body, with the trailers the upstream sent: parts still held go through `write`, and the last
    /// part is returned.
    mutating func end(trailers: HTTPHeaders?, chunked: Bool, write: (Part) -> Void) -> Part
    /// The part held back for a later merge, if any: written before a flush.
    mutating func release() -> Part?
    /// Whether `part` writes nothing (it is written only to learn when what came before it left).
    func isNothing(_ part: Part) -> Bool
}

/// What one inbound part reads as: none, one or two request parts (an HTTP/2 frame that ends its stream is also the
/// request's end).
enum RequestParts {
    case none
    case one(HTTPServerRequestPart)
    case two(HTTPServerRequestPart, HTTPServerRequestPart)
}

/// HTTP/1.1 responses as bytes (``MessageBytes``): Detour frames what it writes, and no encoder copies or scans a
/// head again.
struct HTTP1Wire: ClientWire {
    typealias Part = ByteBuffer
    typealias InboundPart = HTTPServerRequestPart
    static let carriesUpgrades = true
    static let endsItself = false
    let allocator: ByteBufferAllocator

    func read(_ part: HTTPServerRequestPart) -> RequestParts { .one(part) }

    func head(
        _ status: HTTPResponseStatus, version: HTTPVersion, fields: ((String, String) -> Void) -> Void
    ) -> ByteBuffer {
        var bytes = MessageBytes(allocator: allocator)
        bytes.statusLine(version, status)
        fields { bytes.field($0, $1) }
        bytes.endOfHead()
        return bytes.buffer
    }

    func whole(
        _ status: HTTPResponseStatus, version: HTTPVersion, fields: ((String, String) -> Void) -> Void,
        body: [UInt8], write: (ByteBuffer) -> Void
    ) {
        var bytes = MessageBytes(allocator: allocator, capacity: 1024 + body.count)
        bytes.statusLine(version, status)
        fields { bytes.field($0, $1) }
        bytes.endOfHead()
        bytes.body(body)
        write(bytes.buffer)
    }

    func body(_ chunk: ByteBuffer, chunked: Bool, write: (ByteBuffer) -> Void) {
        guard chunked else { return write(chunk) }
        for piece in MessageBytes.chunk(chunk, allocator: allocator) { write(piece) }
    }

    /// The last chunk, or, for a body of known length (which ends with its last byte), an empty buffer that only
    /// keeps a closing in order.
    func end(trailers: HTTPHeaders?, chunked: Bool, write: (ByteBuffer) -> Void) -> ByteBuffer {
        chunked ? MessageBytes.lastChunk(trailers: trailers, allocator: allocator) : ByteBuffer()
    }

    /// Nothing is held: each part is written as it is made.
    func release() -> ByteBuffer? { nil }

    func isNothing(_ part: ByteBuffer) -> Bool { part.readableBytes == 0 }
}
