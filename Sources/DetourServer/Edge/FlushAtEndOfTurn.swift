import NIOCore

/// Holds back an HTTP/2 connection's flushes until the end of the event loop's turn, so that the answers of all its
/// streams that were ready in one turn leave in one TLS write.
///
/// SwiftNIO's HTTP/2 handler flushes the connection for every stream that flushes, except while the connection
/// itself is being read. Proxied answers arrive from upstream connections instead, so without this handler each
/// one cost its own TLS record and `write` system call. Placed between the TLS handler and the HTTP/2 handler.
///
/// Guarantees: every flush that reaches this handler reaches the TLS handler before the loop next waits for I/O
/// (``TickFlusher``), and before a close passes it (a `GOAWAY` written just before closing is sent); writes pass at
/// once and in order.
final class FlushAtEndOfTurn: ChannelOutboundHandler {
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    private let flusher: TickFlusher

    init(flusher: TickFlusher) { self.flusher = flusher }

    func flush(context: ChannelHandlerContext) {
        flusher.flushSoon(context)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        context.flush()
        context.close(mode: mode, promise: promise)
    }
}
