import NIOCore

/// Reads the upstream's answer to an upgrade request up to the end of its head (at most 16 KiB).
final class UpgradeResponseReader: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    struct Answer: Sendable {
        /// Everything received: the head, and any frame the upstream sent right behind it.
        var bytes: ByteBuffer
        var switchesProtocols: Bool
    }

    private var received = ByteBuffer()
    private var promise: EventLoopPromise<Answer>?

    var answer: EventLoopFuture<Answer> {
        guard let promise else { preconditionFailure("the answer is asked for once the handler is in a pipeline") }
        return promise.futureResult
    }

    func handlerAdded(context: ChannelHandlerContext) { promise = context.eventLoop.makePromise() }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var chunk = unwrapInboundIn(data)
        received.writeBuffer(&chunk)
        guard received.readableBytesView.firstRange(of: Array("\r\n\r\n".utf8)) != nil else {
            if received.readableBytes > 16 * 1024 { context.close(promise: nil) }
            return
        }
        let statusLine = received.readableBytesView.prefix { $0 != UInt8(ascii: "\r") }
        let status = String(decoding: statusLine, as: UTF8.self).split(separator: " ").dropFirst().first
        promise?.succeed(Answer(bytes: received, switchesProtocols: status == "101"))
        promise = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise?.fail(ChannelError.eof)
        promise = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
}
