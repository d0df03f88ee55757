import NIOCore

/// The socket end of an upstream connection's pipeline: what ``UpstreamHandler`` writes here goes out as it is,
/// passing no other handler.
final class UpstreamWriter: ChannelOutboundHandler {
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private var context: ChannelHandlerContext?
    private(set) var allocator = ByteBufferAllocator()

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        allocator = context.channel.allocator
    }

    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func write(_ data: IOData) { context?.write(wrapOutboundOut(data), promise: nil) }
}
