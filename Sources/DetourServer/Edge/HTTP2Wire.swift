import NIOCore
import NIOHTTP1

/// Responses on an HTTP/2 stream, as the parts SwiftNIO's `HTTP2FramePayloadToHTTP1ServerCodec` turns into HEADERS
/// and DATA frames. That codec lower-cases the names and drops the fields HTTP/2 forbids (`Connection`,
/// `Transfer-Encoding`, `Keep-Alive`, `Upgrade`), so the machine's HTTP/1.1 framing fields never reach the peer;
/// the length of a body is the DATA it is sent in, and its end is the stream's end.
struct HTTP2Wire: ResponseWire {
    typealias Part = HTTPServerResponsePart
    static let carriesUpgrades = false
    static let endsItself = true

    init(allocator: ByteBufferAllocator) {}

    func head(
        _ status: HTTPResponseStatus, version: HTTPVersion, fields: ((String, String) -> Void) -> Void
    ) -> HTTPServerResponsePart {
        var headers = HTTPHeaders()
        fields { headers.add(name: $0, value: $1) }
        return .head(HTTPResponseHead(version: version, status: status, headers: headers))
    }

    func whole(
        _ status: HTTPResponseStatus, version: HTTPVersion, fields: ((String, String) -> Void) -> Void,
        body: [UInt8], write: (HTTPServerResponsePart) -> Void
    ) {
        write(head(status, version: version, fields: fields))
        if !body.isEmpty { write(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
    }

    func body(_ chunk: ByteBuffer, chunked: Bool, write: (HTTPServerResponsePart) -> Void) {
        write(.body(.byteBuffer(chunk)))
    }

    func end(trailers: HTTPHeaders?, chunked: Bool) -> HTTPServerResponsePart { .end(trailers) }

    func isNothing(_ part: HTTPServerResponsePart) -> Bool { false }
}
