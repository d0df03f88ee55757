import Foundation
public import Logging
import Metrics
import NIOCore
public import NIOHTTP1
import NIOPosix
public import ServiceLifecycle
import Synchronization

/// An HTTP/1.1 server for Detour on plain SwiftNIO channel handlers: each connection is served on its
/// event loop by a ``RequestHandler``, and proxied requests use upstream connections pooled on that
/// same loop.
///
/// Guarantees: keep-alive and pipelining per RFC 9112 9.3; request heads over
/// ``Limits/maximumHeaderBytes`` are answered 431 (RFC 6585 5) and malformed requests 400, then the
/// connection closes;
/// ``shutdown()`` stops accepting, closes idle connections at once and lets busy ones finish their
/// request (answered with `Connection: close`) before ``run()`` returns.
public final class HTTPServer: Service {
    /// Decides, from a request's head, whether Detour answers it or an upstream does. It runs on the
    /// connection's event loop, so it must not block.
    public typealias Dispatcher = @Sendable (HTTPRequestHead, ConnectionInfo) -> Dispatch

    /// What a client may send and hold (`server.limits`).
    public struct Limits: Sendable {
        /// All header names and values of one request together (431 above).
        public var maximumHeaderBytes = 32 * 1024
        /// Open client connections; past this many, new ones wait in the kernel's backlog.
        public var maximumConnections = 10_000
        /// How long a new connection has to send its first request head whole.
        public var headerTimeout = TimeAmount.seconds(10)
        /// The longest pause in a request body Detour is reading.
        public var bodyTimeout = TimeAmount.seconds(60)
        /// How long a kept-alive connection has to send its next request head whole.
        public var idleTimeout = TimeAmount.seconds(75)
        /// A body for Detour's own endpoints (413 above).
        public var maximumEndpointBody = 64 * 1024
        /// A proxied body (413 above); `nil` for no limit.
        public var maximumRequestBody: Int?
        /// How long a shutdown waits for requests in flight before it closes their connections
        /// (`server.shutdown_grace`).
        public var shutdownGrace = TimeAmount.seconds(30)
        /// `server.access_log`: where each request's line goes; `nil` for `off`.
        public var accessLog: AccessLog?

        public init(maximumRequestBody: Int? = nil) { self.maximumRequestBody = maximumRequestBody }
    }

    private let channel: any Channel
    private let connections: Connections
    private let grace: TimeAmount
    private let logger: Logger

    /// The address listened on, as given.
    public let host: String
    /// The port actually bound (useful with port 0).
    public let port: Int

    /// - Parameters:
    ///   - tls: when given, the listener serves HTTPS (HTTP/2 and HTTP/1.1 by ALPN) with its current pair.
    ///   - hsts: the `Strict-Transport-Security` value every response carries (only ever given with `tls`).
    public static func bind(
        host: String, port: Int, limits: Limits = Limits(), tls: ListenerTLS? = nil, hsts: String? = nil,
        logger: Logger, dispatcher: @escaping Dispatcher
    ) async throws -> HTTPServer {
        let group = MultiThreadedEventLoopGroup.singleton
        let pools = UpstreamPools(group, logger: logger)
        let connections = Connections(limit: limits.maximumConnections)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard connections.open(channel) else { throw ChannelError.ioOnClosedChannel }
                    let pool = pools.pool(for: channel.eventLoop)
                    if let tls {
                        try serveSecure(
                            channel, tls: tls, limits: limits, pool: pool, hsts: hsts, logger: logger,
                            dispatcher: dispatcher)
                    } else {
                        try serve(channel, limits: limits, pool: pool, logger: logger, dispatcher: dispatcher)
                    }
                }
            }
        do {
            let channel = try await bootstrap.bind(host: host, port: port).get()
            connections.listening(on: channel)
            return HTTPServer(
                host: host, channel: channel, connections: connections, grace: limits.shutdownGrace, logger: logger)
        } catch let error as IOError {
            throw ListenError(address: "\(host):\(port)", reason: String(cString: strerror(error.errnoCode)))
        }
    }

    /// Sets up a client connection's pipeline: SwiftNIO's request parser, then a ``RequestHandler``.
    ///
    /// The handler serves pipelined requests itself, pausing reads only when one arrives, checks the header values it
    /// writes itself and writes each response as bytes, framing included, so no handler scans or copies every
    /// response's headers again.
    static func serve(
        _ channel: any Channel, limits: Limits, pool: UpstreamPool, hsts: String? = nil, logger: Logger,
        dispatcher: @escaping Dispatcher
    ) throws {
        var decoderLimits = NIOHTTPDecoderLimitConfiguration()
        decoderLimits.maxHeaderListSize = limits.maximumHeaderBytes
        decoderLimits.maxHeaderFieldSize = limits.maximumHeaderBytes
        let pipeline = channel.pipeline.syncOperations
        try pipeline.addHandler(
            ByteToMessageHandler(
                HTTPRequestDecoder(
                    leftOverBytesStrategy: .dropBytes, informationalResponseStrategy: .drop,
                    limitConfiguration: decoderLimits)))
        try pipeline.addHandler(
            RequestHandler<HTTP1Wire>(
                dispatcher: dispatcher, pool: pool, limits: limits, hsts: hsts, logger: logger))
    }

    private init(host: String, channel: any Channel, connections: Connections, grace: TimeAmount, logger: Logger) {
        self.host = host
        self.channel = channel
        self.connections = connections
        self.grace = grace
        self.logger = logger
        port = channel.localAddress?.port ?? 0
    }

    /// Serves until ``shutdown()`` (or the service group's graceful shutdown, SIGTERM in `detour serve`) and every
    /// in-flight request is done.
    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await channel.closeFuture.get()
            await connections.allClosed()
        } onGracefulShutdown: {
            self.shutdown()
        }
    }

    /// Stops accepting and asks every connection to finish (``ChannelShouldQuiesceEvent``): an idle one closes at
    /// once, a busy one after its response. Whatever is still open after the grace period is closed.
    public func shutdown() {
        channel.close(promise: nil)
        for connection in connections.startShutdown() {
            connection.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
        let (connections, logger, grace) = (self.connections, self.logger, self.grace)
        channel.eventLoop.scheduleTask(in: grace) {
            let remaining = connections.remaining()
            guard !remaining.isEmpty else { return }
            logger.warning(
                "shutdown grace is over: closing connections still busy",
                metadata: ["connections": "\(remaining.count)", "grace": "\(grace)"])
            for connection in remaining { connection.close(promise: nil) }
        }
    }
}

/// The address could not be listened on (in use, not local, not permitted).
public struct ListenError: Error, CustomStringConvertible {
    public let address: String
    public let reason: String
    public var description: String { "cannot listen on \(address): \(reason)" }
}

/// The open client connections, so that a shutdown can ask each to finish and wait for the last, and so
/// that no more than ``limit`` are open: at the limit the listener stops accepting (new connections wait
/// in the kernel's backlog) until one closes.
///
/// It holds no promise: a server whose bind failed, or that is dropped without running, leaves nothing
/// incomplete behind.
private final class Connections: Sendable {
    private struct State {
        var open: [ObjectIdentifier: any Channel] = [:]
        var shuttingDown = false
        var waiting: [CheckedContinuation<Void, Never>] = []
        var listener: (any Channel)?
        var done: Bool { shuttingDown && open.isEmpty }
    }

    private let state = Mutex(State())
    let limit: Int
    /// Client connections open on every listener of the process: `detour_open_connections`.
    private static let open = Atomic<Int>(0)
    private static let gauge = Gauge(label: "detour_open_connections")

    init(limit: Int) { self.limit = limit }

    /// The listening channel, whose accepting is paused at the limit.
    func listening(on channel: any Channel) {
        state.withLock { $0.listener = channel }
        adjustAccepting()
    }

    /// Pauses or resumes accepting to match the count now. Run on the listener's event loop, one adjustment at a
    /// time, each reading the count afresh: adjustments computed elsewhere and applied out of order could leave the
    /// listener paused for good.
    private func adjustAccepting() {
        guard let listener = state.withLock({ $0.listener }) else { return }
        listener.eventLoop.execute {
            let accepting = self.state.withLock { $0.open.count < self.limit }
            listener.setOption(.autoRead, value: accepting).whenSuccess { if accepting { listener.read() } }
        }
    }

    /// Returns once shutdown has begun and every connection has closed.
    func allClosed() async {
        await withCheckedContinuation { continuation in
            let done = state.withLock { state in
                if !state.done { state.waiting.append(continuation) }
                return state.done
            }
            if done { continuation.resume() }
        }
    }

    /// Records a new connection; false once shutting down.
    func open(_ channel: any Channel) -> Bool {
        let id = ObjectIdentifier(channel)
        let (accepted, count) = state.withLock { state -> (Bool, Int) in
            guard !state.shuttingDown else { return (false, state.open.count) }
            state.open[id] = channel
            return (true, state.open.count)
        }
        if count >= limit { adjustAccepting() }
        if accepted {
            Self.gauge.record(Self.open.add(1, ordering: .relaxed).newValue)
            channel.closeFuture.whenComplete { _ in
                Self.gauge.record(Self.open.subtract(1, ordering: .relaxed).newValue)
                var count = 0
                self.release { state in
                    state.open.removeValue(forKey: id)
                    count = state.open.count
                }
                if count == self.limit - 1 { self.adjustAccepting() }
            }
        }
        return accepted
    }

    /// The connections open now; from here on, the last one to close ends the wait.
    func startShutdown() -> [any Channel] {
        var open: [any Channel] = []
        release { state in
            state.shuttingDown = true
            open = Array(state.open.values)
        }
        return open
    }

    /// The connections still open.
    func remaining() -> [any Channel] { state.withLock { Array($0.open.values) } }

    /// Applies `change`, then resumes the waiters if that finished the shutdown.
    private func release(_ change: (inout State) -> Void) {
        let waiting = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            change(&state)
            guard state.done else { return [] }
            defer { state.waiting = [] }
            return state.waiting
        }
        for continuation in waiting { continuation.resume() }
    }
}

/// One ``UpstreamPool`` per event loop of the group, fixed at start-up.
private struct UpstreamPools: Sendable {
    private let pools: [ObjectIdentifier: UpstreamPool]

    init(_ group: MultiThreadedEventLoopGroup, logger: Logger) {
        var pools: [ObjectIdentifier: UpstreamPool] = [:]
        for loop in group.makeIterator() {
            pools[ObjectIdentifier(loop)] = UpstreamPool(eventLoop: loop, logger: logger)
        }
        self.pools = pools
    }

    func pool(for loop: any EventLoop) -> UpstreamPool {
        guard let pool = pools[ObjectIdentifier(loop)] else {
            preconditionFailure("a connection on an event loop outside the server's group")
        }
        return pool
    }
}
