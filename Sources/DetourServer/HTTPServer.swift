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
                var step = Step.readRequests
                while true {
                    switch step {
                    case .done:
                        return
                    case .readRequests:
                        var none: UpstreamLink?
                        step = try await serveRequests(
                            &parts, outbound, upstream: &none, pending: nil, id: id, info: info,
                            channel: connection.channel)
                    case .switchUpstream(let plan, let head):
                        // The client connection keeps one keep-alive upstream connection while its requests
                        // go to the same upstream; its requests are served inside that connection's scope.
                        guard let upstream = try? await Forwarder.connect(plan) else {
                            try await Forwarder.drain(&parts)
                            try await Forwarder.respond(
                                502, "The application behind Detour cannot be reached.", to: outbound,
                                version: head.version)
                            step = setIdle(id, true) || !head.isKeepAlive ? .done : .readRequests
                            continue
                        }
                        step = try await upstream.executeThenClose { responses, requests in
                            var link: UpstreamLink? = UpstreamLink(
                                host: plan.host, port: plan.port, channel: upstream.channel,
                                responses: responses.makeAsyncIterator(), requests: requests)
                            return try await serveRequests(
                                &parts, outbound, upstream: &link, pending: (plan, head), id: id, info: info,
                                channel: connection.channel)
                        }
                    }
                }
            }
        } catch {
            logger.debug("connection ended", metadata: ["error": "\(error)"])
        }
    }

    /// What a client connection does next.
    private enum Step {
        case readRequests
        case switchUpstream(ProxyPlan, HTTPRequestHead)
        case done
    }

    /// Serves requests until the connection ends or a request needs an upstream other than `upstream`.
    private func serveRequests(
        _ parts: inout NIOAsyncChannelInboundStream<HTTPServerRequestPart>.AsyncIterator,
        _ outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>, upstream: inout UpstreamLink?,
        pending: (ProxyPlan, HTTPRequestHead)?, id: ObjectIdentifier, info: ConnectionInfo, channel: any Channel
    ) async throws -> Step {
        var pending = pending
        while true {
            let head: HTTPRequestHead
            let dispatch: Dispatch
            if let (plan, pendingHead) = pending {
                (head, dispatch) = (pendingHead, .proxy(plan))
                pending = nil
            } else {
                guard let part = try await parts.next() else { return .done }
                // Between requests only a head may come; anything else is ignored.
                guard case .head(let requestHead) = part else { continue }
                _ = setIdle(id, false)
                (head, dispatch) = (requestHead, await dispatcher(requestHead, info))
            }
            let closing: Bool
            switch dispatch {
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
                    case .head: return .done
                    }
                }
                let response =
                    tooLarge
                    ? EndpointResponse(
                        status: 413, headers: [("Content-Type", "text/plain")], body: "request body too large\n")
                    : await handler(
                        EndpointRequest(
                            method: head.method.rawValue, target: head.uri,
                            headers: head.headers.map { ($0.name, $0.value) },
                            body: Array(body.readableBytesView)))
                closing = setIdle(id, true) || !head.isKeepAlive || tooLarge
                try await write(response, for: head, closing: closing, to: outbound)
            case .proxy(let plan) where WebSocketTunnel.isUpgrade(head):
                try await WebSocketTunnel.run(
                    plan, request: head, clientParts: &parts, client: channel, clientWriter: outbound)
                return .done
            case .proxy(let plan):
                guard var link = upstream, link.serves(plan) else { return .switchUpstream(plan, head) }
                let outcome = try await Forwarder.exchange(
                    plan, requestBody: &parts, over: &link, to: outbound, clientVersion: head.version)
                upstream = link
                closing = setIdle(id, true) || !head.isKeepAlive || outcome == .broken
            }
            if closing { return .done }
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
