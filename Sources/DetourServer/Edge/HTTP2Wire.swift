import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2

/// One HTTP/2 stream as ``RequestHandler`` reads and answers it: its HEADERS and DATA frames in, as the request
/// parts the machine reads for HTTP/1.1, and the machine's responses out, as frames. It stands in for SwiftNIO's
/// HTTP/1-shaped stream codec and the handlers Detour kept around it, so a stream's pipeline holds one handler.
///
/// Guarantees, reading (RFC 9113 8.1, 8.2.3, 8.3.1), beyond what SwiftNIO's HTTP/2 handler has checked of the
/// header block (pseudo-fields present once and first, names and values legal, `Content-Length` against DATA):
/// - The request reads as one an HTTP/1.1 upstream reads the same way: `:authority` becomes `Host` when there is
///   none; a method other than GET, HEAD, DELETE, CONNECT or TRACE whose head gives no length is framed
///   `Transfer-Encoding: chunked` (or `Content-Length: 0` when its HEADERS end the stream).
/// - Cookie crumbs (HTTP/2 may split `Cookie` into several fields) are joined into one field with `; `, so that
///   the session cookie is read whole and the upstream gets one `Cookie` line.
/// - A request whose head frames no body and that then sends DATA is malformed: forwarded, those bytes would reach
///   the upstream as the start of another request. So are trailers that do not end the stream.
///
/// Guarantees, writing:
/// - Names are lower-cased and hop-by-hop fields (``ProxyHeaders/hopByHop``, which hold every field HTTP/2
///   forbids: `Connection`, `Transfer-Encoding`, `Keep-Alive`, `Upgrade`, `Proxy-Connection`) are dropped, so the machine's HTTP/1.1 framing never reaches the peer; the
///   length of a body is the DATA it is sent in, and its end is the stream's end.
/// - A response ends with its last DATA frame rather than an empty one after it (one frame less through the
///   connection's frame handling, on both sides): the latest DATA frame is held until the next part or the end.
///   ``release()`` gives it up; the handler calls it before every flush, so nothing is held past one.
struct HTTP2Wire: ClientWire {
    typealias Part = HTTP2Frame.FramePayload
    typealias InboundPart = HTTP2Frame.FramePayload
    static let carriesUpgrades = false
    static let endsItself = true

    private var readHead = false
    private var framesBody = false
    private var held: HTTP2Frame.FramePayload.Data?

    init(allocator: ByteBufferAllocator) {}

    // MARK: Reading

    mutating func read(_ part: HTTP2Frame.FramePayload) throws(MalformedRequest) -> RequestParts {
        switch part {
        case .headers(let block) where !readHead:
            readHead = true
            let head = try requestHead(block.headers, endsStream: block.endStream)
            return block.endStream ? .two(.head(head), .end(nil)) : .one(.head(head))
        case .headers(let block):
            guard block.endStream else { throw MalformedRequest.trailersDoNotEnd }
            let fields = block.headers.filter { $0.name.utf8.first != UInt8(ascii: ":") }.map { ($0.name, $0.value) }
            return .one(.end(HTTPHeaders(fields)))
        case .data(let data):
            guard case .byteBuffer(let bytes) = data.data else { return .none }
            if bytes.readableBytes > 0, !framesBody { throw MalformedRequest.unframedBody }
            if !data.endStream { return .one(.body(bytes)) }
            return bytes.readableBytes == 0 ? .one(.end(nil)) : .two(.body(bytes), .end(nil))
        default:
            return .none
        }
    }

    private mutating func requestHead(
        _ block: HPACKHeaders, endsStream: Bool
    ) throws(MalformedRequest) -> HTTPRequestHead {
        var method: String?
        var path: String?
        var authority: String?
        var fields: [(String, String)] = []
        fields.reserveCapacity(block.count)
        var cookies: [String] = []
        var hasHost = false
        var hasLength = false
        for (name, value, _) in block {
            guard name.utf8.first == UInt8(ascii: ":") else {
                switch name {
                case "cookie": cookies.append(value)
                case "host": hasHost = true
                case "content-length", "transfer-encoding": hasLength = true
                default: break
                }
                if name != "cookie" { fields.append((name, value)) }
                continue
            }
            switch name {
            case ":method": method = value
            case ":path": path = value
            case ":authority": authority = value
            default: break
            }
        }
        guard let method, let path, let authority else { throw MalformedRequest.missingPseudoField }
        if !hasHost { fields.insert(("host", authority), at: 0) }
        let httpMethod = HTTPMethod(rawValue: method)
        switch httpMethod {
        case .GET, .HEAD, .DELETE, .CONNECT, .TRACE:
            break
        default:
            if !hasLength {
                fields.append(endsStream ? ("content-length", "0") : ("transfer-encoding", "chunked"))
                hasLength = true
            }
        }
        if !cookies.isEmpty {
            fields.append(("cookie", cookies.count == 1 ? cookies[0] : cookies.joined(separator: "; ")))
        }
        framesBody = hasLength
        return HTTPRequestHead(
            version: HTTPVersion(major: 2, minor: 0), method: httpMethod, uri: path, headers: HTTPHeaders(fields))
    }

    // MARK: Writing

    func head(
        _ status: HTTPResponseStatus, version: HTTPVersion, fields: ((String, String) -> Void) -> Void
    ) -> HTTP2Frame.FramePayload {
        .headers(.init(headers: Self.block(status: status, fields)))
    }

    mutating func whole(
        _ status: HTTPResponseStatus, version: HTTPVersion, fields: ((String, String) -> Void) -> Void,
        body: [UInt8], write: (HTTP2Frame.FramePayload) -> Void
    ) {
        write(head(status, version: version, fields: fields))
        if !body.isEmpty { held = .init(data: .byteBuffer(ByteBuffer(bytes: body))) }
    }

    mutating func body(_ chunk: ByteBuffer, chunked: Bool, write: (HTTP2Frame.FramePayload) -> Void) {
        if let earlier = release() { write(earlier) }
        held = .init(data: .byteBuffer(chunk))
    }

    mutating func end(
        trailers: HTTPHeaders?, chunked: Bool, write: (HTTP2Frame.FramePayload) -> Void
    ) -> HTTP2Frame.FramePayload {
        if let trailers {
            if let earlier = release() { write(earlier) }
            let block = Self.block(status: nil) { field in for (name, value) in trailers { field(name, value) } }
            return .headers(.init(headers: block, endStream: true))
        }
        var last = held ?? .init(data: .byteBuffer(ByteBuffer()))
        held = nil
        last.endStream = true
        return .data(last)
    }

    mutating func release() -> HTTP2Frame.FramePayload? {
        guard let held else { return nil }
        self.held = nil
        return .data(held)
    }

    func isNothing(_ part: HTTP2Frame.FramePayload) -> Bool { false }

    /// A header block: `:status` first when there is one, then each field lower-cased, less those HTTP/2 forbids.
    private static func block(
        status: HTTPResponseStatus?, _ fields: ((String, String) -> Void) -> Void
    ) -> HPACKHeaders {
        var block = HPACKHeaders()
        block.reserveCapacity(12)
        if let status { block.add(name: ":status", value: String(status.code)) }
        fields { name, value in
            // The fields HTTP/2 forbids are all hop-by-hop (RFC 9113 8.2.2).
            guard !ProxyHeaders.isHopByHop(name) else { return }
            block.add(name: lowercased(name), value: value)
        }
        return block
    }

    /// `name` in ASCII lower case; itself when it has no upper-case letter (the usual case: no copy).
    private static func lowercased(_ name: String) -> String {
        guard name.utf8.contains(where: { $0 &- UInt8(ascii: "A") < 26 }) else { return name }
        return String(decoding: name.utf8.map { $0 &- UInt8(ascii: "A") < 26 ? $0 | 0x20 : $0 }, as: UTF8.self)
    }
}

/// Why a stream's request cannot be read: the stream is reset.
enum MalformedRequest: Error, Equatable {
    /// No `:method`, `:path` or `:authority`.
    case missingPseudoField
    /// DATA after a head that frames no body (GET, HEAD, DELETE, CONNECT or TRACE without a length).
    case unframedBody
    /// A second HEADERS block that does not end the stream.
    case trailersDoNotEnd
}
