import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// WebSocket upgrades (RFC 6455 section 4), passed through once the policy allowed the request.
///
/// The upgrade request goes to the upstream over a raw connection; only a `101` from the upstream opens
/// the tunnel (anything else is a 502). Then, on the client connection's event loop and before the 101 is
/// written, the HTTP codec is swapped for ``RawBridge``: the client sends no frame before it has the 101
/// (RFC 6455 4.1), so no byte can be parsed as HTTP or lost. From there bytes are copied both ways until
/// either side closes.
enum WebSocketTunnel {
    /// Whether a request asks to become a WebSocket (`Connection: upgrade` and `Upgrade: websocket`).
    static func isUpgrade(_ head: HTTPRequestHead) -> Bool {
        head.headers["upgrade"].contains { $0.lowercased() == "websocket" }
            && head.headers["connection"].contains {
                $0.lowercased().split(separator: ",").contains { $0.trimmingCharacters(in: .whitespaces) == "upgrade" }
            }
    }

    /// Runs the tunnel; returns when either side has closed. The client connection is not reusable after.
    static func run<Parts: AsyncIteratorProtocol>(
        _ plan: ProxyPlan, request: HTTPRequestHead, clientParts parts: inout Parts, client channel: any Channel,
        clientWriter: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>
    ) async throws where Parts.Element == HTTPServerRequestPart {
        try await Forwarder.drain(&parts)  // an upgrade request has no body: this reads its end
        let upstream: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            upstream = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(plan.connectTimeout)
                .connect(host: plan.host, port: plan.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            try await Forwarder.respond(
                502, "The application behind Detour cannot be reached.", to: clientWriter, version: request.version)
            return
        }
        try await upstream.executeThenClose { inbound, outbound in
            var head = plan.head
            head.headers.replaceOrAdd(name: "Connection", value: "Upgrade")
            head.headers.replaceOrAdd(name: "Upgrade", value: request.headers.first(name: "upgrade") ?? "websocket")
            try await outbound.write(ByteBuffer(string: serialize(head)))
            var responses = inbound.makeAsyncIterator()
            var received = ByteBuffer()
            var headerEnd: Int?
            while headerEnd == nil, received.readableBytes < 16 * 1024, var chunk = try await responses.next() {
                received.writeBuffer(&chunk)
                headerEnd = received.readableBytesView.firstRange(of: Array("\r\n\r\n".utf8))?.upperBound
            }
            let statusLine = received.readableBytesView.prefix { $0 != UInt8(ascii: "\r") }
            guard headerEnd != nil,
                String(decoding: statusLine, as: UTF8.self).split(separator: " ").dropFirst().first == "101"
            else {
                try await Forwarder.respond(
                    502, "The application behind Detour refused the WebSocket upgrade.", to: clientWriter,
                    version: request.version)
                return
            }
            try await channel.eventLoop.submit { try swapToRaw(channel) }.get()
            // The upstream's 101, as it sent it (plus any frame that came with it), goes out through the bridge.
            try await clientWriter.write(.body(.byteBuffer(received)))
            // Handed over to the task that copies upstream -> client; this task never touches it again
            // (a stream allows one iterator only, so a fresh one is not an option).
            let upstreamBytes = HandedOver(responses)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    var iterator = upstreamBytes.value
                    while let chunk = try await iterator.next() {
                        try await clientWriter.write(.body(.byteBuffer(chunk)))
                    }
                    channel.close(promise: nil)
                }
                while let part = try await parts.next() {
                    if case .body(let bytes) = part { try await outbound.write(bytes) }
                }
                try? await upstream.channel.close()
                group.cancelAll()
            }
        }
    }

    /// The request head as HTTP/1.1 bytes.
    static func serialize(_ head: HTTPRequestHead) -> String {
        var text = "\(head.method.rawValue) \(head.uri) HTTP/1.1\r\n"
        for (name, value) in head.headers { text += "\(name): \(value)\r\n" }
        return text + "\r\n"
    }

    /// Replaces the HTTP codec with ``RawBridge``, on the channel's event loop.
    static func swapToRaw(_ channel: any Channel) throws {
        let pipeline = channel.pipeline.syncOperations
        let decoder = try pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
        try pipeline.addHandler(RawBridge(), position: .after(decoder))
        for handler in [
            try? pipeline.handler(type: HTTPServerPipelineHandler.self) as (any RemovableChannelHandler)?,
            try? pipeline.handler(type: HTTPServerProtocolErrorHandler.self),
            try? pipeline.handler(type: NIOHTTPResponseHeadersValidator.self),
            try? pipeline.handler(type: HTTPResponseEncoder.self),
        ].compactMap({ $0 }) {
            pipeline.removeHandler(handler, promise: nil)
        }
        pipeline.removeHandler(decoder, promise: nil)
    }
}

/// After an upgrade: raw bytes in become body parts for the async channel, and body parts out become raw
/// bytes, so the connection's typed channel carries the tunnel unchanged.
final class RawBridge: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(wrapInboundOut(.body(unwrapInboundIn(data))))
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .body(.byteBuffer(let bytes)) = unwrapOutboundIn(data) {
            context.write(wrapOutboundOut(bytes), promise: promise)
        } else {
            promise?.succeed()
        }
    }
}

/// A value moved to exactly one other task, which alone uses it from then on.
private final class HandedOver<Value>: @unchecked Sendable {
    let value: Value

    init(_ value: Value) { self.value = value }
}
