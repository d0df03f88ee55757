import NIOCore
import NIOHTTP2

/// Ends an HTTP/2 response with its last DATA frame: the stream codec ends a body with a DATA frame of its own,
/// empty but for `END_STREAM`; when it follows the body's last DATA frame before the stream is flushed, the two
/// go out as one frame, as other servers send them. One frame less per response is one less pass through the
/// connection's frame handling, flow control and encoder, on both sides.
///
/// Guarantees: frames leave in the order written, none is held past a flush or a close, and the promises of merged
/// frames are completed with the one frame that carries both.
final class EndWithLastData: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private var held: (data: HTTP2Frame.FramePayload.Data, promise: EventLoopPromise<Void>?)?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let payload = unwrapOutboundIn(data)
        guard case .data(let frame) = payload else {
            release(context)
            return context.write(data, promise: promise)
        }
        if var last = held, frame.endStream, frame.data.readableBytes == 0, frame.paddingBytes == nil {
            held = nil
            last.data.endStream = true
            let carrier = last.promise ?? promise
            if let promise, let held = last.promise { held.futureResult.cascade(to: promise) }
            return context.write(wrapOutboundOut(.data(last.data)), promise: carrier)
        }
        release(context)
        if frame.endStream { return context.write(data, promise: promise) }
        held = (frame, promise)
    }

    func flush(context: ChannelHandlerContext) {
        release(context)
        context.flush()
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        release(context)
        context.close(mode: mode, promise: promise)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        release(context)
    }

    private func release(_ context: ChannelHandlerContext) {
        guard let last = held else { return }
        held = nil
        context.write(wrapOutboundOut(.data(last.data)), promise: last.promise)
    }
}
