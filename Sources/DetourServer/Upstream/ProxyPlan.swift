public import DetourGateway
public import NIOCore
public import NIOHTTP1

/// A request on its way upstream: the rewritten head and how to rewrite the upstream's response head.
public struct ProxyPlan: Sendable {
    public var host: String
    public var port: Int
    public var head: HTTPRequestHead
    var rewriteResponse: @Sendable (HTTPResponseHead) -> ClientResponseHead
    public var timeouts = UpstreamTimeouts()
    /// For an `https://` upstream, how to speak TLS to it; `nil` for `http://`.
    var tls: UpstreamTLSClient?
    /// A body Detour holds whole and sends in place of the client's (a kept form re-submitted, row A2b); the client's
    /// own body is read and dropped.
    public var body: ByteBuffer?
    /// How the access log records the request.
    public var note: AccessNote?

    /// Which pooled connections can carry this request.
    var upstream: UpstreamPool.Key { UpstreamPool.Key(host: host, port: port, tls: tls) }
}
