import Logging
import NIOCore
import NIOHTTP1
import NIOSSL

/// One pooled upstream connection: writes the requests of the exchange using it as bytes, passes response parts to
/// that exchange, and lets it stop and resume reading (backpressure from a slow client).
///
/// Guarantees: each request is framed as its head says (``MessageBytes``): a body announced `chunked` is written in
/// chunks, any other body as it is; and the response decoder is told of every request head before its bytes leave, so
/// that a response to a HEAD request is read without a body.
final class UpstreamHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    /// Nothing is written through this handler: requests leave through ``UpstreamWriter``.
    typealias OutboundIn = Never

    /// What an upstream connection reports to the exchange using it.
    protocol Delegate: AnyObject {
        func upstreamRead(_ part: HTTPClientResponsePart)
        func upstreamReadComplete()
        func upstreamWritabilityChanged(writable: Bool)
        func upstreamClosed()
    }

    let key: UpstreamPool.Key
    private let pool: UpstreamPool
    private let writer: UpstreamWriter
    /// The decoder behind this handler, told of each request head directly: requests leave through ``writer``, in
    /// front of it, so that no request part is boxed, passed through it and encoded by another handler.
    private let decoder: HTTPResponseDecoder
    /// Whether the request being written has a chunked body.
    private var chunkedRequest = false
    var idleSince = NIODeadline.now()
    /// The exchange using this connection; `nil` while it is pooled. A strong reference, cleared when the exchange lets
    /// the connection go and when the connection closes: a weak one would give every client handler a side table,
    /// and each of its many retains the slow path (1.7% of the proxy's samples under load).
    var delegate: (any Delegate)?
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    /// While true, the connection reads nothing more (the client is not keeping up).
    var readPaused = false {
        didSet {
            if !readPaused, pendingRead, let context {
                pendingRead = false
                context.read()
            }
        }
    }

    init(key: UpstreamPool.Key, pool: UpstreamPool, writer: UpstreamWriter, decoder: HTTPResponseDecoder) {
        self.key = key
        self.pool = pool
        self.writer = writer
        self.decoder = decoder
    }

    var isOpen: Bool { context?.channel.isActive ?? false }
    var isWritable: Bool { context?.channel.isWritable ?? false }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        closed()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let delegate else {
            // Bytes on an idle connection answer nothing that was asked: the connection is not trustworthy.
            context.close(promise: nil)
            return
        }
        delegate.upstreamRead(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) { delegate?.upstreamReadComplete() }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        delegate?.upstreamWritabilityChanged(writable: context.channel.isWritable)
    }

    func channelInactive(context: ChannelHandlerContext) { closed() }

    /// Tells the exchange using this connection that it is gone, once. A connection closed before SwiftNIO
    /// finished activating it (a request refused while the connect callback still runs) never reports
    /// `channelInactive`, but always comes to `handlerRemoved`.
    private func closed() {
        pool.remove(self)
        let delegate = self.delegate
        self.delegate = nil
        delegate?.upstreamClosed()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let tls = key.tls, error is NIOSSLError || error is BoringSSLError {
            pool.logger.warning(
                "upstream TLS failed; the request gets a 502 and is never sent in plaintext",
                metadata: [
                    "upstream": "\(key.host):\(key.port)", "server_name": "\(tls.serverName)", "error": "\(error)",
                ])
        }
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        if readPaused { pendingRead = true } else { context.read() }
    }

    /// Writes one part of a request. A head is written as it is: the gateway passes on a request's `Content-Length`,
    /// and says `chunked` for a body the client sent chunked (``ProxyHeaders/forUpstream(_:cookiePrefix:)``); a
    /// request with neither has no body.
    func send(_ part: HTTPClientRequestPart) {
        guard context != nil else { return }
        switch part {
        case .head(let head):
            decoder.write(data: part)
            chunkedRequest = head.headers.contains(name: "transfer-encoding")
            writer.write(.byteBuffer(MessageBytes.requestHead(head, allocator: writer.allocator)))
        case .body(.byteBuffer(let chunk)) where chunkedRequest:
            for piece in MessageBytes.chunk(chunk, allocator: writer.allocator) { writer.write(.byteBuffer(piece)) }
        case .body(.byteBuffer(let chunk)):
            writer.write(.byteBuffer(chunk))
        case .body(.fileRegion):
            preconditionFailure("request bodies are forwarded as the parser read them, in byte buffers")
        case .end(let trailers):
            if chunkedRequest {
                writer.write(.byteBuffer(MessageBytes.lastChunk(trailers: trailers, allocator: writer.allocator)))
            }
            chunkedRequest = false
        }
    }

    /// Sends what was written at the end of this turn of the event loop (``TickFlusher``).
    func flush() {
        if let context { pool.flusher.flushSoon(context) }
    }
    func close() { context?.close(promise: nil) }
}
