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

    /// Sets up an HTTPS connection: TLS, then, by ALPN, HTTP/2 (each stream served by its own ``RequestHandler``)
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
                    case .negotiated("http/1.1"), .fallback:
                        try serve(
                            channel, limits: limits, pool: pool, hsts: hsts, logger: logger, dispatcher: dispatcher)
                    case .negotiated:
                        channel.close(promise: nil)
                    }
                }
            })
    }

    private static func serveHTTP2(
        _ channel: any Channel, limits: Limits, pool: UpstreamPool, hsts: String?, logger: Logger,
        dispatcher: @escaping Dispatcher
    ) throws {
        let pipeline = channel.pipeline.syncOperations
        let management = NIOHTTP2ServerConnectionManagementHandler(
            eventLoop: channel.eventLoop,
            configuration: .init(maxIdleTime: limits.idleTimeout, maxAge: nil, maxGraceTime: nil, keepalive: nil))
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        connection.initialSettings = http2Settings(limits)
        _ = try pipeline.configureHTTP2Pipeline(
            mode: .server, connectionConfiguration: connection, streamConfiguration: .init(),
            streamDelegate: management.http2StreamDelegate
        ) { stream in
            stream.eventLoop.makeCompletedFuture {
                let streamPipeline = stream.pipeline.syncOperations
                try streamPipeline.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
                try streamPipeline.addHandler(HTTP2StreamGuard())
                try streamPipeline.addHandler(
                    RequestHandler<HTTP2Wire>(
                        dispatcher: dispatcher, pool: pool, limits: limits, hsts: hsts, logger: logger))
            }
        }
        try pipeline.addHandler(management)
        try pipeline.addHandler(ClosingDeadline(limits.headerTimeout) { $0 is NIOHTTP2StreamCreatedEvent })
    }
}
