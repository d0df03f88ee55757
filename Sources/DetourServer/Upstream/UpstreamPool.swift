import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// Idle keep-alive connections to upstreams, owned by one event loop.
///
/// Guarantees: every method runs on ``eventLoop`` (asserted), so client connections on that loop share
/// upstream connections without locks and both channels of an exchange are served by one thread; a
/// connection is handed out only while open and at most ``maximumIdleTime`` after its last use (older
/// ones are closed rather than risk the upstream's own idle timeout); at most ``maximumIdlePerUpstream``
/// wait per upstream; an idle connection no request takes again (its route's upstream or TLS changed by a reload)
/// is closed, and its upstream forgotten, within two ``maximumIdleTime``s of the pool's next use.
final class UpstreamPool: @unchecked Sendable {
    struct Key: Hashable {
        let host: String
        let port: Int
        /// `nil` for plain HTTP.
        let tls: UpstreamTLSClient?
    }

    static let maximumIdlePerUpstream = 128
    static let maximumIdleTime = TimeAmount.seconds(4)
    let eventLoop: any EventLoop
    /// The loop's end-of-turn flushes, shared by its client and upstream connections.
    let flusher: TickFlusher
    let logger: Logger
    /// Per upstream, as a reference: taking and giving back change the list in place (changing an array inside a
    /// dictionary goes through an accessor that allocated three times per request).
    private var idle: [Key: IdleConnections] = [:]
    /// When ``sweep(now:)`` last closed what had waited too long.
    private var lastSweep = NIODeadline.now()

    private final class IdleConnections {
        var connections: [UpstreamHandler] = []
    }

    init(eventLoop: any EventLoop, logger: Logger) {
        self.eventLoop = eventLoop
        self.logger = logger
        flusher = TickFlusher(eventLoop: eventLoop)
    }

    /// An idle connection to `key`, most recently used first, or `nil`.
    func take(_ key: Key) -> UpstreamHandler? {
        eventLoop.assertInEventLoop()
        guard let list = idle[key] else { return nil }
        let oldest = NIODeadline.now() - Self.maximumIdleTime
        while let connection = list.connections.popLast() {
            if connection.isOpen, connection.idleSince > oldest { return connection }
            connection.close()
        }
        return nil
    }

    /// Keeps a connection whose last exchange completed with keep-alive.
    func giveBack(_ connection: UpstreamHandler) {
        eventLoop.assertInEventLoop()
        let list = idleConnections(to: connection.key)
        guard connection.isOpen, list.connections.count < Self.maximumIdlePerUpstream else {
            connection.close()
            return
        }
        let now = NIODeadline.now()
        connection.idleSince = now
        list.connections.append(connection)
        if now - lastSweep > Self.maximumIdleTime { sweep(now: now) }
    }

    /// Closes every connection idle for longer than ``maximumIdleTime`` and forgets upstreams with none left.
    private func sweep(now: NIODeadline) {
        lastSweep = now
        let oldest = now - Self.maximumIdleTime
        var expired: [UpstreamHandler] = []
        for (key, list) in idle {
            let kept = list.connections.filter { $0.isOpen && $0.idleSince > oldest }
            expired += list.connections.filter { !($0.isOpen && $0.idleSince > oldest) }
            list.connections = kept
            if kept.isEmpty { idle[key] = nil }
        }
        // Closed only now: closing may call ``remove(_:)`` at once, which must not meet a list being changed.
        for connection in expired { connection.close() }
    }

    private func idleConnections(to key: Key) -> IdleConnections {
        if let list = idle[key] { return list }
        let list = IdleConnections()
        idle[key] = list
        return list
    }

    /// Forgets a connection that closed while idle.
    func remove(_ connection: UpstreamHandler) {
        idle[connection.key]?.connections.removeAll { $0 === connection }
    }

    /// A new connection to `key`, on this pool's event loop.
    func connect(_ key: Key, timeout: TimeAmount) -> EventLoopFuture<UpstreamHandler> {
        ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture { try serve(channel, key) }
            }
            .connect(host: key.host, port: key.port)
            .flatMapThrowing { channel in try channel.pipeline.syncOperations.handler(type: UpstreamHandler.self) }
    }

    /// Sets up an upstream connection's pipeline: TLS for an `https://` upstream, the writer requests leave by, the
    /// response parser, then the ``UpstreamHandler`` that serves exchanges from this pool.
    @discardableResult
    func serve(_ channel: any Channel, _ key: Key) throws -> UpstreamHandler {
        let pipeline = channel.pipeline.syncOperations
        let writer = UpstreamWriter()
        let decoder = HTTPResponseDecoder(informationalResponseStrategy: .forward)
        if let tls = key.tls { try pipeline.addHandler(try tls.handler()) }
        try pipeline.addHandler(writer)
        try pipeline.addHandler(ByteToMessageHandler(decoder))
        let handler = UpstreamHandler(key: key, pool: self, writer: writer, decoder: decoder)
        try pipeline.addHandler(handler)
        return handler
    }
}
