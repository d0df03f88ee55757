import NIOCore

/// Closes its channel unless an awaited event passes it in time: the TLS handshake, or the first HTTP/2 stream, so
/// that a client that connects and then sends too little, too slowly, holds nothing for longer than
/// `server.limits.header_timeout` (as a slow HTTP/1.1 request head does not).
///
/// Guarantees: the timer is armed when the handler is added and cancelled when the awaited event passes or the
/// handler is removed; the handler removes itself once satisfied, so it costs nothing after.
final class ClosingDeadline: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let timeout: TimeAmount
    private let awaited: (Any) -> Bool
    private var timer: Scheduled<Void>?

    /// - Parameter awaited: whether a user inbound event is the one that lifts the deadline.
    init(_ timeout: TimeAmount, awaiting awaited: @escaping (Any) -> Bool) {
        self.timeout = timeout
        self.awaited = awaited
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        timer = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // Passed on first: a context removed from the pipeline passes nothing on.
        context.fireUserInboundEventTriggered(event)
        if awaited(event), timer != nil {
            timer?.cancel()
            timer = nil
            context.pipeline.syncOperations.removeHandler(self, promise: nil)
        }
    }
}
