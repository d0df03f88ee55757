public import NIOCore
public import NIOHTTP1
import NIOPosix
import Synchronization

/// Where one request goes: Detour answers it (its endpoints and the matrix's answers, from a body read
/// whole) or an upstream does (streamed).
public enum Dispatch: Sendable {
    case respond(@Sendable (EndpointRequest) async -> EndpointResponse)
    case proxy(ProxyPlan)
}

/// A request on its way upstream: the rewritten head and how to rewrite the upstream's response head.
public struct ProxyPlan: Sendable {
    public var host: String
    public var port: Int
    public var head: HTTPRequestHead
    public var rewriteResponse: @Sendable (HTTPResponseHead) -> HTTPResponseHead
    public var connectTimeout: TimeAmount = .seconds(5)
    /// How long the upstream may take to start its response (504 after that).
    public var responseTimeout: TimeAmount = .seconds(60)
}

/// What the client connection learns about its peer.
public struct ConnectionInfo: Sendable {
    public let remoteAddress: String?
}

typealias UpstreamConnection = NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>

/// An open keep-alive connection to one upstream, used by one client connection at a time.
struct UpstreamLink {
    let host: String
    let port: Int
    let channel: any Channel
    var responses: NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator
    let requests: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>
    /// False once the upstream said `Connection: close` or an exchange failed.
    var reusable = true

    init(
        host: String, port: Int, channel: any Channel,
        responses: NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator,
        requests: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>
    ) {
        self.host = host
        self.port = port
        self.channel = channel
        self.responses = responses
        self.requests = requests
    }

    func serves(_ plan: ProxyPlan) -> Bool { reusable && channel.isActive && host == plan.host && port == plan.port }
}

/// Forwards requests to their upstream and responses back, both streamed with backpressure.
///
/// Guarantees: the request body is passed on part by part as it arrives and the response body likewise,
/// so memory stays flat whatever their size; an upstream that cannot be reached is a 502 page and one
/// that does not start its response within ``ProxyPlan/responseTimeout`` a 504; once the response head
/// has been passed on, an upstream failure ends the client connection (the only honest signal left);
/// an upstream connection is reused only after a complete exchange that allowed keep-alive.
enum Forwarder {
    enum Outcome {
        /// The exchange completed; the client connection may carry on.
        case completed
        /// The client connection must close (the response could not be completed).
        case broken
    }

    static func connect(_ plan: ProxyPlan) async throws -> UpstreamConnection {
        try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(plan.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connect(host: plan.host, port: plan.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try UpstreamConnection(wrappingChannelSynchronously: channel)
                }
            }
    }

    /// One request and its response over `link`.
    static func exchange<Parts: AsyncIteratorProtocol>(
        _ plan: ProxyPlan, requestBody parts: inout Parts, over link: inout UpstreamLink,
        to client: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>, clientVersion: HTTPVersion
    ) async throws -> Outcome where Parts.Element == HTTPServerRequestPart {
        do {
            // The head waits for the first part so that a request without a body leaves in one write.
            var pending: [HTTPClientRequestPart] = [.head(plan.head)]
            while let part = try await parts.next() {
                switch part {
                case .body(let chunk):
                    pending.append(.body(.byteBuffer(chunk)))
                    try await link.requests.write(contentsOf: pending)
                    pending = []
                case .end(let trailers):
                    pending.append(.end(trailers))
                    try await link.requests.write(contentsOf: pending)
                    pending = []
                case .head: return .broken
                }
                if case .end = part { break }
            }
        } catch {
            // The upstream stopped reading (an early answer, say): its response may still be there.
            link.reusable = false
        }
        let timedOut = Atomic<Bool>(false)
        let channel = link.channel
        let timeout = channel.eventLoop.scheduleTask(in: plan.responseTimeout) {
            timedOut.store(true, ordering: .relaxed)
            channel.close(promise: nil)
        }
        let first: HTTPClientResponsePart?
        do {
            first = try await link.responses.next()
        } catch {
            first = nil
        }
        timeout.cancel()
        guard case .head(let head)? = first else {
            link.reusable = false
            let status = timedOut.load(ordering: .relaxed) ? 504 : 502
            let message =
                status == 504
                ? "The application behind Detour did not answer in time."
                : "The application behind Detour failed to answer."
            try await respond(status, message, to: client, version: clientVersion)
            return .completed
        }
        link.reusable = link.reusable && head.isKeepAlive
        var responseHead = plan.rewriteResponse(head)
        responseHead.version = clientVersion
        // The head waits for the first body part (or the end), so a small response leaves in one write;
        // after that, each part is passed on as it arrives.
        var pending: [HTTPServerResponsePart] = [.head(responseHead)]
        do {
            while let part = try await link.responses.next() {
                switch part {
                case .body(let chunk):
                    pending.append(.body(.byteBuffer(chunk)))
                    try await client.write(contentsOf: pending)
                    pending = []
                case .end(let trailers):
                    pending.append(.end(trailers))
                    try await client.write(contentsOf: pending)
                    return .completed
                case .head: break
                }
            }
        } catch {}
        if !pending.isEmpty { try? await client.write(contentsOf: pending) }
        link.reusable = false
        return .broken
    }
    /// Reads the rest of a request body that will not be forwarded.
    static func drain<Parts: AsyncIteratorProtocol>(_ parts: inout Parts) async throws
    where Parts.Element == HTTPServerRequestPart {
        while let part = try await parts.next() {
            if case .end = part { return }
        }
    }

    static func respond(
        _ status: Int, _ message: String, to client: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>,
        version: HTTPVersion
    ) async throws {
        let body =
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>\(status)</title></head><body><p>\(message)</p></body></html>\n"
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "text/html; charset=utf-8")
        headers.add(name: "Cache-Control", value: "no-store")
        headers.add(name: "Content-Length", value: "\(body.utf8.count)")
        try await client.write(
            .head(HTTPResponseHead(version: version, status: HTTPResponseStatus(statusCode: status), headers: headers)))
        try await client.write(.body(.byteBuffer(ByteBuffer(string: body))))
        try await client.write(.end(nil))
    }
}
