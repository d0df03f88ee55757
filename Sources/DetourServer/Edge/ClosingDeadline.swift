import NIOCore

/// Closes its channel unless an awaited event passes it in time (the TLS handshake), or it is lifted in time (the
/// first HTTP/2 stream), so that a client that connects and then sends too little, too slowly, holds nothing for
/// longer than `server.limits.header_timeout` (as a slow HTTP/1.1 request head does not).
///
/// Guarantees: the timer is armed when the handler is added and cancelled when the awaited event passes, when
/// ``lift()`` is called or when the handler is removed; the handler removes itself once satisfied, so it costs
/// nothing after.
final class ClosingDeadline: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let timeout: TimeAmount
    private let awaited: (Any) -> Bool
    private var timer: Scheduled<Void>?
    private var context: ChannelHandlerContext?

    /// - Parameter awaited: whether a user inbound event is the one that lifts the deadline.
    init(_ timeout: TimeAmount, awaiting awaited: @escaping (Any) -> Bool = { _ in false }) {
        self.timeout = timeout
        self.awaited = awaited
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let channel = context.channel
        timer = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        self.context = nil
    }

    /// The awaited thing happened (on the channel's event loop): the deadline no longer applies.
    func lift() {
        guard let timer, let context else { return }
        timer.cancel()
        self.timer = nil
        context.pipeline.syncOperations.removeHandler(self, promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // Passed on first: a context removed from the pipeline passes nothing on.
        context.fireUserInboundEventTriggered(event)
        if awaited(event) { lift() }
    }
}
