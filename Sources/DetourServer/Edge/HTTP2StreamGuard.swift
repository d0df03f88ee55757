import NIOCore
import NIOHTTP1

/// Sits between an HTTP/2 stream's codec and its ``RequestHandler``, and makes the request the codec gives read as
/// one an HTTP/1.1 upstream reads the same way (RFC 9113 8.2.3 and 8.1.1).
///
/// Guarantees:
/// - Cookie crumbs (HTTP/2 may split `Cookie` into several fields) are joined into one field with `; `, so that
///   the session cookie is read whole and the upstream gets one `Cookie` line.
/// - A request whose head frames no body (no `Content-Length`, no `Transfer-Encoding`: a GET, HEAD, DELETE or TRACE
///   whose HEADERS frame did not end the stream) and that then sends DATA is reset: forwarded, those bytes would
///   reach the upstream as the start of another request. (The codec adds `Transfer-Encoding: chunked` to other
///   methods' heads without a length, and SwiftNIO's HTTP/2 handler checks DATA against a `Content-Length`.)
final class HTTP2StreamGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    private var framesBody = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(var head):
            framesBody =
                head.headers.contains(name: "content-length") || head.headers.contains(name: "transfer-encoding")
            let crumbs = head.headers["cookie"]
            if crumbs.count > 1 {
                head.headers.remove(name: "cookie")
                head.headers.add(name: "cookie", value: crumbs.joined(separator: "; "))
            }
            context.fireChannelRead(wrapInboundOut(.head(head)))
        case .body(let bytes) where !framesBody && bytes.readableBytes > 0:
            context.close(promise: nil)
        case .body, .end:
            context.fireChannelRead(data)
        }
    }
}
