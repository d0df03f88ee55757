public import DetourGateway
import DetourPolicy
import DetourSessions
import Logging
public import NIOCore
public import NIOHTTP1
import NIOPosix
import NIOSSL

/// Where one request goes: Detour answers it (its endpoints and the matrix's answers, from a body read
/// whole) or an upstream does (streamed).
public enum Dispatch: Sendable {
    case respond(@Sendable (EndpointRequest) async -> Answer)
    case proxy(ProxyPlan)
    /// Decided after an asynchronous step (validating a bearer token, refreshing a session), which runs
    /// off the event loop while the request's body waits.
    case later(@Sendable () async -> Dispatch)
}

/// A request on its way upstream: the rewritten head and how to rewrite the upstream's response head.
public struct ProxyPlan: Sendable {
    public var host: String
    public var port: Int
    public var head: HTTPRequestHead
    var rewriteResponse: @Sendable (HTTPResponseHead) -> ClientResponseHead
    public var timeouts = UpstreamTimeouts()
    /// For an `https://` upstream, how to speak TLS to it; `nil` for `http://`.
    var tls: UpstreamTLSClient?

    /// Which pooled connections can carry this request.
    var upstream: UpstreamPool.Key { UpstreamPool.Key(host: host, port: port, tls: tls) }
}

/// How long Detour waits for an upstream: to connect (502 after that), and from the end of the request
/// to the start of the response (504 after that).
public struct UpstreamTimeouts: Sendable {
    public var connect: TimeAmount = .seconds(5)
    public var response: TimeAmount = .seconds(60)

    public init(connect: TimeAmount = .seconds(5), response: TimeAmount = .seconds(60)) {
        self.connect = connect
        self.response = response
    }
}

/// What Detour knows about one client connection, kept from one request to the next.
///
/// Guarantees: ``remoteAddress`` never changes, so it may be read anywhere; the memos are read and changed
/// only on the connection's event loop, one request at a time (decisions made off the loop are handed no
/// memo), so they need no lock.
public final class ConnectionInfo: @unchecked Sendable {
    public let remoteAddress: String?
    /// Whether the peer is a trusted proxy, decided at the first request.
    private var trusted: Bool?
    /// The last `Cookie` headers seen and what they opened to (the gateway's memo).
    var lastSession: OpenedCookies?
    /// The last upstream origin and where it connects (the gateway's memo).
    var lastUpstream: (origin: String, host: String, port: Int)?

    public init(remoteAddress: String?) { self.remoteAddress = remoteAddress }

    func trustsPeer(_ proxies: TrustedProxies) -> Bool {
        if let trusted { return trusted }
        let decided = proxies.trusts(remoteAddress)
        trusted = decided
        return decided
    }
}

/// `Cookie` headers and the session they opened to, if any: a class, so that reading the memo on each request
/// costs one retain rather than one per string of the session.
final class OpenedCookies {
    let cookieHeaders: [String]
    let session: Session?
    let identity: Identity?

    init(cookieHeaders: [String], session: Session?, identity: Identity?) {
        self.cookieHeaders = cookieHeaders
        self.session = session
        self.identity = identity
    }
}

/// Idle keep-alive connections to upstreams, owned by one event loop.
///
/// Guarantees: every method runs on ``eventLoop`` (asserted), so client connections on that loop share
/// upstream connections without locks and both channels of an exchange are served by one thread; a
/// connection is handed out only while open and at most ``maximumIdleTime`` after its last use (older
/// ones are closed rather than risk the upstream's own idle timeout); at most ``maximumIdlePerUpstream``
/// wait per upstream.
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
        connection.idleSince = .now()
        list.connections.append(connection)
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
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    let writer = UpstreamWriter()
                    let decoder = HTTPResponseDecoder(informationalResponseStrategy: .forward)
                    if let tls = key.tls { try pipeline.addHandler(try tls.handler()) }
                    try pipeline.addHandler(writer)
                    try pipeline.addHandler(ByteToMessageHandler(decoder))
                    try pipeline.addHandler(UpstreamHandler(key: key, pool: self, writer: writer, decoder: decoder))
                }
            }
            .connect(host: key.host, port: key.port)
            .flatMapThrowing { channel in try channel.pipeline.syncOperations.handler(type: UpstreamHandler.self) }
    }
}

/// One pooled upstream connection: writes the requests of the exchange using it as bytes, passes response parts to
/// that exchange, and lets it stop and resume reading (backpressure from a slow client).
///
/// Guarantees: each request is framed as its head says (``MessageBytes``): a body announced `chunked` is written in
/// chunks, any other body as it is; and the response decoder is told of every request head before its bytes leave, so
/// that a response to a HEAD request is read without a body.
final class UpstreamHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    /// Nothing is written through this handler: requests leave through ``UpstreamWriter``.
    typealias OutboundIn = Never

    /// What an upstream connection reports to the exchange using it.
    protocol Delegate: AnyObject {
        func upstreamRead(_ part: HTTPClientResponsePart)
        func upstreamReadComplete()
        func upstreamWritabilityChanged(writable: Bool)
        func upstreamClosed()
    }

    let key: UpstreamPool.Key
    private let pool: UpstreamPool
    private let writer: UpstreamWriter
    /// The decoder behind this handler, told of each request head directly: requests leave through ``writer``, in
    /// front of it, so that no request part is boxed, passed through it and encoded by another handler.
    private let decoder: HTTPResponseDecoder
    /// Whether the request being written has a chunked body.
    private var chunkedRequest = false
    var idleSince = NIODeadline.now()
    /// The exchange using this connection; `nil` while it is pooled.
    weak var delegate: (any Delegate)?
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    /// While true, the connection reads nothing more (the client is not keeping up).
    var readPaused = false {
        didSet {
            if !readPaused, pendingRead, let context {
                pendingRead = false
                context.read()
            }
        }
    }

    init(key: UpstreamPool.Key, pool: UpstreamPool, writer: UpstreamWriter, decoder: HTTPResponseDecoder) {
        self.key = key
        self.pool = pool
        self.writer = writer
        self.decoder = decoder
    }

    var isOpen: Bool { context?.channel.isActive ?? false }
    var isWritable: Bool { context?.channel.isWritable ?? false }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        closed()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let delegate else {
            // Bytes on an idle connection answer nothing that was asked: the connection is not trustworthy.
            context.close(promise: nil)
            return
        }
        delegate.upstreamRead(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) { delegate?.upstreamReadComplete() }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        delegate?.upstreamWritabilityChanged(writable: context.channel.isWritable)
    }

    func channelInactive(context: ChannelHandlerContext) { closed() }

    /// Tells the exchange using this connection that it is gone, once. A connection closed before SwiftNIO
    /// finished activating it (a request refused while the connect callback still runs) never reports
    /// `channelInactive`, but always comes to `handlerRemoved`.
    private func closed() {
        pool.remove(self)
        let delegate = self.delegate
        self.delegate = nil
        delegate?.upstreamClosed()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let tls = key.tls, error is NIOSSLError || error is BoringSSLError {
            pool.logger.warning(
                "upstream TLS failed; the request gets a 502 and is never sent in plaintext",
                metadata: [
                    "upstream": "\(key.host):\(key.port)", "server_name": "\(tls.serverName)", "error": "\(error)",
                ])
        }
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        if readPaused { pendingRead = true } else { context.read() }
    }

    /// Writes one part of a request. A head is written as it is: the gateway passes on a request's `Content-Length`,
    /// and says `chunked` for a body the client sent chunked (``ProxyHeaders/forUpstream(_:cookiePrefix:)``); a
    /// request with neither has no body.
    func send(_ part: HTTPClientRequestPart) {
        guard context != nil else { return }
        switch part {
        case .head(let head):
            decoder.write(data: part)
            chunkedRequest = head.headers.contains(name: "transfer-encoding")
            writer.write(.byteBuffer(MessageBytes.requestHead(head, allocator: writer.allocator)))
        case .body(.byteBuffer(let chunk)) where chunkedRequest:
            for piece in MessageBytes.chunk(chunk, allocator: writer.allocator) { writer.write(.byteBuffer(piece)) }
        case .body(.byteBuffer(let chunk)):
            writer.write(.byteBuffer(chunk))
        case .body(.fileRegion):
            preconditionFailure("request bodies are forwarded as the parser read them, in byte buffers")
        case .end(let trailers):
            if chunkedRequest {
                writer.write(.byteBuffer(MessageBytes.lastChunk(trailers: trailers, allocator: writer.allocator)))
            }
            chunkedRequest = false
        }
    }

    /// Sends what was written at the end of this turn of the event loop (``TickFlusher``).
    func flush() {
        if let context { pool.flusher.flushSoon(context) }
    }
    func close() { context?.close(promise: nil) }
}

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
