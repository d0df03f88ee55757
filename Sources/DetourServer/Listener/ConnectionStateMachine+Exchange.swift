import DetourGateway
import NIOCore
import NIOHTTP1

extension ConnectionStateMachine {
    /// One proxied request and its response.
    struct Exchange {
        /// Where the exchange's upstream connection is.
        enum Upstream: Equatable {
            /// Being taken from the pool or connected; request parts wait unread, as pipelined ones do.
            case connecting
            /// Carrying the request; `writable` while it takes more of the body.
            case attached(writable: Bool)
            /// Closed or handed back.
            case gone
        }

        /// The start of a response on its way to the client.
        struct StartedResponse {
            /// Whether Detour writes the body in chunks (the upstream gave no length).
            var chunked: Bool
        }

        /// What the exchange was opened with, shared: copying an exchange costs one reference, not one per field.
        final class Terms: Sendable {
            let id: Int
            let plan: ProxyPlan
            let request: HTTPRequestHead

            init(id: Int, plan: ProxyPlan, request: HTTPRequestHead) {
                self.id = id
                self.plan = plan
                self.request = request
            }
        }

        let terms: Terms
        var id: Int { terms.id }
        var plan: ProxyPlan { terms.plan }
        var request: HTTPRequestHead { terms.request }
        var upstream = Upstream.connecting
        var bodyBytes = 0
        var requestEnded = false
        /// Set once the final response head is on its way.
        var response: StartedResponse?
        var reusedConnection = false
        var retried = false
        var timedOut = false
        var upstreamKeepAlive = false
        var closeClient: Bool

        init(id: Int, plan: ProxyPlan, request: HTTPRequestHead) {
            terms = Terms(id: id, plan: plan, request: request)
            closeClient = !request.keepsConnection
        }
    }

    /// What a ready upstream connection is sent first: the request's head, the body Detour holds in place of the
    /// client's, if any, and the request's end when it has ended already (a request without a body, as a retried one
    /// is, or one whose body Detour holds). The parts that waited for it follow as they are served.
    struct UpstreamStart {
        let head: HTTPRequestHead
        let body: ByteBuffer?
        let ended: Bool
    }

    /// A part of a proxied request, sent on (parts wait unread while the upstream connection is not ready).
    mutating func forward(
        _ part: HTTPServerRequestPart, _ exchange: inout Exchange, now: @autoclosure () -> NIODeadline
    ) -> Action {
        let outgoing: HTTPClientRequestPart
        switch part {
        case .head:
            return .none
        case .body(let chunk):
            exchange.bodyBytes += chunk.readableBytes
            if let limit = limits.maximumRequestBody, exchange.bodyBytes > limit {
                return bodyTooLarge(&exchange, now: now())
            }
            // Read and dropped when Detour holds the body the upstream gets.
            if exchange.plan.body != nil { return .none }
            outgoing = .body(.byteBuffer(chunk))
        case .end:
            // A client's trailers never reach the upstream (CONTRACT section 7): fields after the body are where a
            // check made on the head would not look.
            exchange.requestEnded = true
            // With a body Detour holds, the upstream's request ended when it was sent.
            if exchange.plan.body != nil { return .none }
            outgoing = .end(nil)
        }
        guard case .attached = exchange.upstream else { return .none }
        if exchange.requestEnded { startResponseClock(exchange, now: now()) }
        return .send(outgoing, flush: exchange.requestEnded)
    }

    /// A streamed body went over the limit: a 413 unless the response has started (then only closing is left).
    private mutating func bodyTooLarge(_ exchange: inout Exchange, now: @autoclosure () -> NIODeadline) -> Action {
        deadlines.response = nil
        if exchange.response != nil { return .close(.failedMidResponse) }
        state = .discarding
        return refuse(ConnectionError.bodyTooLarge, for: exchange.request, now: now(), closesUpstream: true)
    }

    private mutating func startResponseClock(_ exchange: Exchange, now: @autoclosure () -> NIODeadline) {
        guard deadlines.response == nil, exchange.response == nil, case .attached = exchange.upstream else { return }
        deadlines.response = now() + exchange.plan.timeouts.response
    }

    // MARK: Upstream events

    /// A connection for exchange `id` is ready: what to send it, or `nil` when the exchange no longer wants it (it
    /// ended meanwhile: the connection is closed).
    mutating func upstreamReady(exchange id: Int, reused: Bool, writable: Bool, now: @autoclosure () -> NIODeadline)
        -> UpstreamStart?
    {
        guard case .forwarding(var exchange) = state, exchange.id == id, exchange.upstream == .connecting else {
            return nil
        }
        exchange.upstream = .attached(writable: writable)
        exchange.reusedConnection = reused
        let held = exchange.plan.body
        let start = UpstreamStart(head: exchange.plan.head, body: held, ended: exchange.requestEnded || held != nil)
        if start.ended { startResponseClock(exchange, now: now()) }
        state = .forwarding(exchange)
        return start
    }

    /// No connection could be made for exchange `id`: a 502, or a 504 when connecting timed out.
    mutating func upstreamUnreachable(exchange id: Int, timedOut: Bool, now: @autoclosure () -> NIODeadline) -> Action {
        guard case .forwarding(let exchange) = state, exchange.id == id, exchange.upstream == .connecting else {
            return .none
        }
        return fail(exchange, timedOut ? .upstreamTimedOut : .upstreamFailed, now: now())
    }

    mutating func upstreamWritabilityChanged(writable: Bool) {
        guard case .forwarding(var exchange) = state, case .attached = exchange.upstream else { return }
        exchange.upstream = .attached(writable: writable)
        state = .forwarding(exchange)
    }

    /// A part of the upstream's response arrived.
    mutating func upstreamReceived(_ part: HTTPClientResponsePart, now: @autoclosure () -> NIODeadline) -> Action {
        guard case .forwarding(var exchange) = state else { return .none }
        let version = exchange.request.version
        switch part {
        case .head(let head) where head.status.code < 200:
            // 100 Continue and friends go to clients that can read them; a 101 without an upgrade is dropped.
            guard version != .http1_0, head.status != .switchingProtocols else { return .none }
            return .writeHead(ClientResponseHead(passing: head), version)
        case .head(let head):
            deadlines.response = nil
            exchange.upstreamKeepAlive = head.isKeepAlive
            // An answer before the request's end (an early 401 or 413): the rest of the body is not wanted.
            if !exchange.requestEnded { exchange.closeClient = true }
            var response = exchange.plan.rewriteResponse(head)
            // Detour frames what it writes: a body whose length the upstream did not give goes chunked, or, HTTP/1.0
            // having no chunked coding, ends with the connection.
            var chunked = false
            if Self.hasBodyOfUnknownLength(response, exchange.request) {
                if version == .http1_0 {
                    exchange.closeClient = true
                } else {
                    chunked = true
                    response.added.append(("Transfer-Encoding", "chunked"))
                }
            }
            if quiescing { exchange.closeClient = true }
            if exchange.closeClient {
                response.added.append(("Connection", "close"))
            } else if version == .http1_0 {
                response.added.append(("Connection", "keep-alive"))
            }
            exchange.response = Exchange.StartedResponse(chunked: chunked)
            state = .forwarding(exchange)
            return .writeHead(response, version)
        case .body(let chunk):
            return .writeBody(chunk, chunked: exchange.response?.chunked ?? false)
        case .end(let trailers):
            let keep = exchange.upstreamKeepAlive && exchange.requestEnded
            let chunked = exchange.response?.chunked ?? false
            exchange.upstream = .gone
            state = exchange.requestEnded ? .forwarding(exchange) : .discarding
            let end = ResponseEnd(
                trailers: trailers, chunked: chunked, keepsUpstream: keep,
                then: finish(closing: exchange.closeClient, now: now()))
            return .endResponse(end)
        }
    }

    /// The exchange's upstream connection closed: once the response started, the client's closes too; before, a
    /// pooled connection the upstream closed while idle is retried once on a new one when no body byte was sent
    /// (the keep-alive race of RFC 9112 9.3.1); otherwise a 502 (504 after the response deadline).
    mutating func upstreamClosed(now: @autoclosure () -> NIODeadline) -> Action {
        guard case .forwarding(var exchange) = state else { return .none }
        exchange.upstream = .gone
        deadlines.response = nil
        if exchange.response != nil {
            state = .forwarding(exchange)
            return .close(.failedMidResponse)
        }
        guard exchange.reusedConnection, exchange.bodyBytes == 0, !exchange.retried, !exchange.timedOut else {
            return fail(exchange, exchange.timedOut ? .upstreamTimedOut : .upstreamFailed, now: now())
        }
        exchange.retried = true
        exchange.reusedConnection = false
        exchange.upstream = .connecting
        state = .forwarding(exchange)
        return .connect(
            exchange.plan.upstream, timeout: exchange.plan.timeouts.connect, exchange: exchange.id, fresh: true)
    }

    /// No response came: a page saying why. A request whose body had not ended is drained, then closed.
    private mutating func fail(_ exchange: Exchange, _ error: ConnectionError, now: @autoclosure () -> NIODeadline)
        -> Action
    {
        var exchange = exchange
        deadlines.response = nil
        // A request without a body whose end waited for the connection has ended: its connection can be kept.
        if !exchange.requestEnded, exchange.upstream == .connecting, case .end? = pipelined.first {
            pipelined.removeFirst()
            exchange.requestEnded = true
        }
        if exchange.requestEnded {
            state = .forwarding(exchange)
        } else {
            exchange.closeClient = true
            state = .discarding
        }
        return refuse(error, for: exchange.request, closing: exchange.closeClient, now: now())
    }

    /// Whether a response has a body with no `Content-Length` (one the upstream sent chunked, or ended by closing).
    static func hasBodyOfUnknownLength(_ response: ClientResponseHead, _ request: HTTPRequestHead) -> Bool {
        let status = response.status.code
        return request.method != .HEAD && status >= 200 && status != 204 && status != 304 && !response.hasContentLength
    }
}
