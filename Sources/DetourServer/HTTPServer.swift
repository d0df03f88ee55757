import Logging
public import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// An HTTP/1.1 server for Detour's endpoints on SwiftNIO, one task per connection.
///
/// Guarantees: keep-alive per RFC 9112 9.3; request bodies over ``maximumBodySize`` are answered 413
/// without being read further; a handler never runs on an event loop; ``shutdown()`` stops accepting,
/// closes idle connections at once and lets busy ones finish their request (answered with
/// `Connection: close`) before ``run()`` returns.
public final class HTTPServer: Sendable {
    /// Decides, from a request's head, whether Detour answers it or an upstream does.
    public typealias Dispatcher = @Sendable (HTTPRequestHead, ConnectionInfo) async -> Dispatch

    public static let maximumBodySize = 64 * 1024
    private let channel: NIOAsyncChannel<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never>
    private let dispatcher: Dispatcher
    private let logger: Logger
    private let connections = Mutex<(open: [ObjectIdentifier: (channel: any Channel, idle: Bool)], shuttingDown: Bool)>(
        ([:], false))

    /// The port actually bound (useful with port 0).
    public let port: Int

    public static func bind(host: String, port: Int, logger: Logger, dispatcher: @escaping Dispatcher) async throws
        -> HTTPServer
    {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(
                        wrappingChannelSynchronously: channel)
                }
            }
        return HTTPServer(channel: channel, dispatcher: dispatcher, logger: logger)
    }

    private init(
        channel: NIOAsyncChannel<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never>,
        dispatcher: @escaping Dispatcher, logger: Logger
    ) {
        self.channel = channel
        self.dispatcher = dispatcher
        self.logger = logger
        port = channel.channel.localAddress?.port ?? 0
    }

    /// Serves until ``shutdown()`` and every in-flight request is done.
    public func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            try await channel.executeThenClose { inbound in
                for try await connection in inbound {
                    group.addTask { await self.serve(connection) }
                }
            }
        }
    }

    public func shutdown() {
        let idle = connections.withLock { state -> [any Channel] in
            state.shuttingDown = true
            return state.open.values.filter(\.idle).map(\.channel)
        }
        channel.channel.close(promise: nil)
        for connection in idle { connection.close(promise: nil) }
    }

    private func setIdle(_ id: ObjectIdentifier, _ idle: Bool) -> Bool {
        connections.withLock { state in
            state.open[id]?.idle = idle
            return state.shuttingDown
        }
    }

    private func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async {
        let id = ObjectIdentifier(connection.channel)
        let shuttingDown = connections.withLock { state in
            state.open[id] = (connection.channel, true)
            return state.shuttingDown
        }
        defer { _ = connections.withLock { $0.open.removeValue(forKey: id) } }
        guard !shuttingDown else {
            connection.channel.close(promise: nil)
            return
        }
        let info = ConnectionInfo(remoteAddress: connection.channel.remoteAddress?.ipAddress)
        do {
            try await connection.executeThenClose { inbound, outbound in
                var parts = inbound.makeAsyncIterator()
                while let part = try await parts.next() {
                    // Between requests only a head may come; anything else is ignored.
                    guard case .head(let head) = part else { continue }
                    _ = setIdle(id, false)
                    let closing: Bool
                    switch await dispatcher(head, info) {
                    case .respond(let handler):
                        var body = ByteBuffer()
                        var tooLarge = false
                        reading: while let part = try await parts.next() {
                            switch part {
                            case .body(var chunk):
                                if body.readableBytes + chunk.readableBytes > Self.maximumBodySize {
                                    tooLarge = true
                                } else {
                                    body.writeBuffer(&chunk)
                                }
                            case .end: break reading
                            case .head: return
                            }
                        }
                        let response =
                            tooLarge
                            ? EndpointResponse(
                                status: 413, headers: [("Content-Type", "text/plain")], body: "request body too large\n"
                            )
                            : await handler(
                                EndpointRequest(
                                    method: head.method.rawValue, target: head.uri,
                                    headers: head.headers.map { ($0.name, $0.value) },
                                    body: Array(body.readableBytesView)))
                        closing = setIdle(id, true) || !head.isKeepAlive || tooLarge
                        try await write(response, for: head, closing: closing, to: outbound)
                    case .proxy(let plan):
                        let outcome = try await Forwarder.forward(
                            plan, requestBody: &parts, to: outbound, clientVersion: head.version)
                        closing = setIdle(id, true) || !head.isKeepAlive || outcome == .broken
                    }
                    if closing { return }
                }
            }
        } catch {
            logger.debug("connection ended", metadata: ["error": "\(error)"])
        }
    }

    private func write(
        _ response: EndpointResponse, for request: HTTPRequestHead, closing: Bool,
        to outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>
    ) async throws {
        var headers = HTTPHeaders(response.headers.map { ($0.name, $0.value) })
        headers.replaceOrAdd(name: "Content-Length", value: "\(response.body.count)")
        if closing { headers.replaceOrAdd(name: "Connection", value: "close") }
        let status = HTTPResponseStatus(statusCode: response.status)
        try await outbound.write(.head(HTTPResponseHead(version: request.version, status: status, headers: headers)))
        if request.method != .HEAD, !response.body.isEmpty {
            try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: response.body))))
        }
        try await outbound.write(.end(nil))
    }
}
