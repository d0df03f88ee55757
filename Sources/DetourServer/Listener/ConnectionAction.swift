import DetourGateway
import NIOCore
import NIOHTTP1

extension ConnectionStateMachine {
    /// Detour's answer to a request it serves itself (its endpoints, or a page saying why not).
    typealias Responder = @Sendable (EndpointRequest) async -> Answer

    /// What ``RequestHandler`` does after an event: the one effect the event calls for. Actions that start work
    /// name the event that reports its end.
    enum Action {
        case none
        /// Ask the dispatcher where this request goes, then report with ``ConnectionStateMachine/dispatched(_:now:)``.
        case dispatch(HTTPRequestHead)
        /// Run this decision off the event loop, then report with ``ConnectionStateMachine/decided(_:now:)``.
        case decide(@Sendable () async -> Dispatch)
        /// Run this endpoint off the event loop, then report with ``ConnectionStateMachine/answered(_:now:)``.
        case answer(EndpointRequest, Responder)
        /// Write Detour's own response whole.
        case respond(OwnResponse)
        /// Find an upstream connection for the exchange: an idle pooled one unless `fresh`, otherwise a new one;
        /// report with ``ConnectionStateMachine/upstreamReady(exchange:reused:writable:now:)`` or
        /// ``ConnectionStateMachine/upstreamUnreachable(exchange:timedOut:now:)``.
        case connect(UpstreamPool.Key, timeout: TimeAmount, exchange: Int, fresh: Bool)
        /// Send a request part upstream; `flush` at the request's end.
        case send(HTTPClientRequestPart, flush: Bool)
        /// Write a response head from the upstream (an informational one, or the final one).
        case writeHead(ClientResponseHead, HTTPVersion)
        /// Write a piece of the upstream's response body, in chunks when Detour frames it so.
        case writeBody(ByteBuffer, chunked: Bool)
        /// The upstream's response ended: write its end and let the upstream connection go.
        case endResponse(ResponseEnd)
        /// Close the upstream connection (it did not answer in time); its closing is reported as usual.
        case closeUpstream
        /// Ask the upstream to switch to WebSocket; report a refusal with
        /// ``ConnectionStateMachine/upgradeFailed(_:now:)``.
        case openTunnel(ProxyPlan, HTTPRequestHead)
        /// Write the status of a request the parser refused, then close.
        case refuseUnparsable(HTTPResponseStatus)
        /// Close the client connection (its upstream connection, if any, with it).
        case close(CloseReason)
    }

    /// A response Detour writes itself, whole.
    struct OwnResponse {
        var answer: Answer
        /// The request it answers: its version, and whether it was a HEAD.
        var request: HTTPRequestHead
        /// Whether the response says `Connection: close`.
        var closes: Bool
        var then: Ending
        /// Whether the exchange's upstream connection is closed first (its request was cut short).
        var closesUpstream = false
        /// What the handler logs with it, if anything.
        var note: Note?
    }

    /// The end of an upstream's response.
    struct ResponseEnd {
        var trailers: HTTPHeaders?
        /// Whether Detour wrote the body in chunks (then the last chunk is due).
        var chunked: Bool
        /// Whether the upstream connection goes back to the pool (complete exchange with keep-alive) or closes.
        var keepsUpstream: Bool
        var then: Ending
    }

    /// What happens once a response has been written.
    enum Ending: Equatable {
        /// The connection reads the next request (pipelined ones first).
        case readNext
        /// The connection closes once the response is written.
        case close
        /// The rest of the request body is read and dropped (for ``ConnectionStateMachine/discardTime`` at most),
        /// then the connection closes.
        case drain
    }

    /// Why a connection is closed without a response.
    enum CloseReason: Equatable {
        /// The server is draining and the connection is between requests.
        case quiescing
        /// The client read nothing of what it was sent for a whole body timeout.
        case clientStalled
        /// The client sent nothing for too long, between requests or after a response started.
        case clientTooSlow
        /// The request was answered before its body ended, and the body has now ended.
        case drained
        /// A closing connection whose client did not take its last response in time, or did not finish sending the
        /// body of an answered request within ``ConnectionStateMachine/discardTime``.
        case closingTimedOut
        /// A request part where none can be (behind the end of the request being served): a desync, never served.
        case outOfOrder
        /// A failure after the response head left: closing is the only signal left.
        case failedMidResponse
        /// The client's bytes cannot be parsed as HTTP.
        case unparsable
    }

    /// Something a response is worth a log line for.
    enum Note: Equatable {
        case refusedFraming(RequestFraming.Problem)
        case unsendableHeader(String)
        case clientTooSlow
    }
}
