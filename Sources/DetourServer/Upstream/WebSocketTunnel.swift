import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// The handler that serves an HTTP/1.1 connection and asked for a tunnel: removed when the tunnel opens, told when
/// it does not.
protocol TunnelOwner: RemovableChannelHandler {
    func upgradeFailed(_ head: HTTPRequestHead, _ error: ConnectionError)
}

/// WebSocket upgrades (RFC 6455 section 4), passed through once the policy allowed the request.
///
/// The upgrade request goes to the upstream over a raw connection on the client connection's event loop;
/// only a `101` from the upstream opens the tunnel (anything else is a 502). Then the client connection's
/// HTTP handlers are replaced by a ``TunnelHandler`` before the 101 is written: the client sends no frame
/// before it has the 101 (RFC 6455 4.1), so no byte can be parsed as HTTP or lost. From there bytes are
/// copied both ways, with backpressure, until either side closes.
enum WebSocketTunnel {
    /// Whether a request asks to become a WebSocket (`Connection: upgrade` and `Upgrade: websocket`).
    static func isUpgrade(_ head: HTTPRequestHead) -> Bool {
        head.headers["upgrade"].contains { $0.lowercased() == "websocket" }
            && head.headers["connection"].contains {
                $0.lowercased().split(separator: ",").contains { $0.trimmingCharacters(in: .whitespaces) == "upgrade" }
            }
    }

    /// Asks the upstream to upgrade; on its 101, turns the client connection into one end of a tunnel.
    static func open(
        _ plan: ProxyPlan, request: HTTPRequestHead, client: ChannelHandlerContext, owner: some TunnelOwner
    ) {
        var upgrade = plan.head
        upgrade.headers.replaceOrAdd(name: "Connection", value: "Upgrade")
        upgrade.headers.replaceOrAdd(name: "Upgrade", value: request.headers.first(name: "upgrade") ?? "websocket")
        let head = upgrade
        let eventLoop = client.eventLoop
        ClientBootstrap(group: eventLoop)
            .connectTimeout(plan.timeouts.connect)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls = plan.tls { try channel.pipeline.syncOperations.addHandler(try tls.handler()) }
                    try channel.pipeline.syncOperations.addHandler(UpgradeResponseReader())
                }
            }
            .connect(host: plan.host, port: plan.port)
            .flatMap { upstream in
                upstream.writeAndFlush(MessageBytes.requestHead(head, allocator: upstream.allocator))
                    .flatMapThrowing {
                        try upstream.pipeline.syncOperations.handler(type: UpgradeResponseReader.self).answer
                    }
                    .flatMap { $0 }
                    .map { (upstream, $0) }
            }
            .assumeIsolated()
            .whenComplete { result in
                switch result {
                case .success(let (upstream, answer)) where answer.switchesProtocols:
                    do {
                        try joinTunnel(client: client, upstream: upstream, answer: answer.bytes, owner: owner)
                    } catch {
                        upstream.close(promise: nil)
                        client.close(promise: nil)
                    }
                case .success(let (upstream, _)):
                    upstream.close(promise: nil)
                    owner.upgradeFailed(request, .upgradeRefused)
                case .failure:
                    owner.upgradeFailed(request, .upstreamFailed)
                }
            }
    }

    /// Replaces both channels' handlers by the two ends of a tunnel and passes the upstream's 101 on.
    private static func joinTunnel(
        client: ChannelHandlerContext, upstream: any Channel, answer: ByteBuffer, owner: some TunnelOwner
    ) throws {
        let (clientEnd, upstreamEnd) = TunnelHandler.pair()
        let clientPipeline = client.pipeline.syncOperations
        let upstreamPipeline = upstream.pipeline.syncOperations
        try clientPipeline.addHandler(clientEnd)
        try upstreamPipeline.addHandler(upstreamEnd)
        try upstreamPipeline.removeHandler(upstreamPipeline.handler(type: UpgradeResponseReader.self), promise: nil)
        clientPipeline.removeHandler(owner, promise: nil)
        if let parser = try? clientPipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self) {
            clientPipeline.removeHandler(parser, promise: nil)
        }
        clientEnd.deliver(answer)
    }
}
