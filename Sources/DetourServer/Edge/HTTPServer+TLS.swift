import Logging
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOSSL
import NIOTLS

extension HTTPServer {
    /// What an HTTP/2 connection allows one peer (RFC 9113 6.5.2), beside SwiftNIO's own flood limits: at most
    /// 100 streams open at once (more is refused), header lists no larger than `max_header_bytes`.
    static func http2Settings(_ limits: Limits) -> HTTP2Settings {
        [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: maximumConcurrentStreams),
            HTTP2Setting(parameter: .maxHeaderListSize, value: limits.maximumHeaderBytes),
        ]
    }

    static let maximumConcurrentStreams = 100

    /// Sets up an HTTPS connection: TLS, then, by ALPN, HTTP/2 (each stream served by its own ``RequestHandler``,
    /// through an ``HTTP2Wire``)
    /// or HTTP/1.1 (the same pipeline ``serve(_:limits:pool:hsts:logger:dispatcher:)`` builds, under TLS).
    ///
    /// A client has `header_timeout` to finish the handshake, and an HTTP/2 client as long again to open its first
    /// stream; an HTTP/2 connection with no stream open for `idle_timeout` is closed with GOAWAY, and so is every
    /// HTTP/2 connection when the server drains (``ChannelShouldQuiesceEvent``).
    static func serveSecure(
        _ channel: any Channel, tls: ListenerTLS, limits: Limits, pool: UpstreamPool, hsts: String?, logger: Logger,
        dispatcher: @escaping Dispatcher
    ) throws {
        let pipeline = channel.pipeline.syncOperations
        try pipeline.addHandler(NIOSSLServerHandler(context: tls.context))
        try pipeline.addHandler(
            ClosingDeadline(limits.headerTimeout) {
                if case .handshakeCompleted? = $0 as? TLSUserEvent { true } else { false }
            })
        try pipeline.addHandler(
            ApplicationProtocolNegotiationHandler { result, channel in
                channel.eventLoop.makeCompletedFuture {
                    switch result {
                    case .negotiated("h2"):
                        try serveHTTP2(channel, limits: limits, pool: pool, hsts: hsts, logger: logger) {
                            dispatcher($0, $1)
                        }
                    default:
                        // `http/1.1`, or a client that offered no protocol Detour knows (ALPN is optional; the server
                        // never selects one it did not list).
                        try serve(
                            channel, limits: limits, pool: pool, hsts: hsts, logger: logger, dispatcher: dispatcher)
                    }
                }
            })
    }

    private static func serveHTTP2(
        _ channel: any Channel, limits: Limits, pool: UpstreamPool, hsts: String?, logger: Logger,
        dispatcher: @escaping Dispatcher
    ) throws {
        let pipeline = channel.pipeline.syncOperations
        try pipeline.addHandler(FlushAtEndOfTurn(flusher: pool.flusher))
        let management = NIOHTTP2ServerConnectionManagementHandler(
            eventLoop: channel.eventLoop,
            configuration: .init(maxIdleTime: limits.idleTimeout, maxAge: nil, maxGraceTime: nil, keepalive: nil))
        let firstStream = ClosingDeadline(limits.headerTimeout)
        // One peer, one session cookie: the streams share the connection's memos, as HTTP/1.1 requests do.
        let shared = ConnectionInfo(remoteAddress: channel.remoteAddress?.ipAddress)
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        connection.initialSettings = http2Settings(limits)
        _ = try pipeline.configureHTTP2Pipeline(
            mode: .server, connectionConfiguration: connection, streamConfiguration: .init(),
            streamDelegate: StreamWatch(
                management: management.http2StreamDelegate,
                firstStream: NIOLoopBound(firstStream, eventLoop: channel.eventLoop))
        ) { stream in
            stream.eventLoop.makeCompletedFuture {
                // One handler a stream: its wire reads the frames as HTTP/1.1 request parts and frames the answers.
                try stream.pipeline.syncOperations.addHandler(
                    RequestHandler<HTTP2Wire>(
                        dispatcher: dispatcher, pool: pool, limits: limits, hsts: hsts, logger: logger,
                        connection: shared))
            }
        }
        try pipeline.addHandler(management)
        try pipeline.addHandler(firstStream)
        try pipeline.addHandler(ConnectionErrorCloser(logger: logger))
    }
}

/// Tells the connection manager of each stream, and lifts the first-stream deadline at the first one. (SwiftNIO's
/// multiplexer reports streams to its delegate, not down the pipeline.)
private struct StreamWatch: NIOHTTP2StreamDelegate {
    let management: NIOHTTP2ServerConnectionManagementHandler.HTTP2StreamDelegate
    let firstStream: NIOLoopBound<ClosingDeadline>

    func streamCreated(_ id: HTTP2StreamID, channel: any Channel) {
        management.streamCreated(id, channel: channel)
        firstStream.value.lift()
    }

    func streamClosed(_ id: HTTP2StreamID, channel: any Channel) {
        management.streamClosed(id, channel: channel)
    }
}

/// Closes an HTTP/2 connection when an error reaches the end of its pipeline: SwiftNIO's HTTP/2 handler has then
/// sent GOAWAY for a connection error (a flood, a protocol violation: RFC 9113 5.4.1 says the connection MUST then
/// close) or RST_STREAM for a stream error, and reports it here without closing. A stream error closes the
/// connection too: clients that follow the protocol cause none, and one that does not loses only its own streams.
private final class ConnectionErrorCloser: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    let logger: Logger

    init(logger: Logger) { self.logger = logger }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("HTTP/2 connection closed on an error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }
}
