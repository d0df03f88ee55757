import DetourGateway
import DetourRedirect
import Logging
import NIOCore
import NIOHTTP1

/// Serves one client connection on its event loop: each request is dispatched from its head, then either
/// answered by Detour (its body read whole, the answer computed off the loop) or forwarded to an upstream
/// connection on the same loop, both bodies streamed part by part.
///
/// Guarantees:
/// - Backpressure both ways: a side that cannot write stops the other side's reads, so memory stays flat
///   whatever the body sizes.
/// - An upstream that cannot be reached is a 502 page (504 when connecting timed out); one that does not
///   start its response within ``UpstreamTimeouts/response`` of the request's end is a 504; once the
///   response head is on its way, an upstream failure closes the client connection (the only honest
///   signal left).
/// - A pooled connection that the upstream closed before answering is retried once on a new connection
///   when no body byte was sent (the keep-alive race of RFC 9112 9.3.1).
/// - An upstream answering before the request body ended (an early 401 or 413) has its answer passed on
///   with `Connection: close`; the rest of the body is read and dropped, then the connection closes.
/// - A proxied body over ``HTTPServer/Limits/maximumRequestBody`` is a 413 (from `Content-Length` before
///   anything is forwarded); a body for Detour's own endpoints over
///   ``HTTPServer/Limits/maximumEndpointBody`` likewise.
/// - An upstream connection goes back to the pool only after a complete exchange that allowed keep-alive.
/// - No header value written to the client holds a control byte (no response splitting): Detour's own answers
///   are checked here; an upstream's headers were checked by the response parser (llhttp refuses control
///   bytes, bare CR or LF and folded lines: a 502), and what the gateway adds to them is checked there, or
///   comes from the URL serialiser, which percent-encodes controls.
final class RequestHandler: ChannelDuplexHandler, RemovableChannelHandler, UpstreamHandler.Delegate {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = ByteBuffer
    /// Responses are written as bytes (``MessageBytes``): Detour frames what it writes, and no encoder copies or
    /// scans a head again.
    typealias OutboundOut = ByteBuffer

    /// One proxied request and its response.
    private final class Exchange {
        let plan: ProxyPlan
        let request: HTTPRequestHead
        var upstream: UpstreamHandler?
        /// Request parts that arrived before the upstream connection was ready.
        var waiting: [HTTPClientRequestPart] = []
        var bodyBytes = 0
        var requestEnded = false
        var responseStarted = false
        var reusedConnection = false
        var retried = false
        var timedOut = false
        var upstreamKeepAlive = false
        var closeClient: Bool
        /// When the response must have started by (504 after that), from the end of the request.
        var responseDeadline: NIODeadline?

        init(plan: ProxyPlan, request: HTTPRequestHead) {
            self.plan = plan
            self.request = request
            closeClient = !request.isKeepAlive
        }
    }

    private enum State {
        /// Between requests.
        case idle
        /// Reading the body of a request Detour answers itself.
        case collecting(HTTPRequestHead, Handler, body: ByteBuffer, tooLarge: Bool)
        /// Waiting for Detour's own answer.
        case answering
        /// A request on its way to an upstream and its response on the way back.
        case forwarding(Exchange)
        /// A WebSocket upgrade request, waiting for its end and then for the upstream's 101.
        case upgrading(ProxyPlan, HTTPRequestHead)
        /// The request was answered before its body ended: the rest is dropped, then the connection closes.
        case discarding
        /// Waiting for a decision made off the loop (``Dispatch/later(_:)``); body parts wait meanwhile.
        case resolving
    }

    typealias Handler = @Sendable (EndpointRequest) async -> Answer

    /// How long the rest of an already answered request body is read before the connection closes anyway.
    static let discardTime = TimeAmount.seconds(5)

    private let dispatcher: HTTPServer.Dispatcher
    private let pool: UpstreamPool
    private let limits: HTTPServer.Limits
    private let logger: Logger
    private var context: ChannelHandlerContext?
    /// The channel's, read once: every response asks for a buffer.
    private var allocator = ByteBufferAllocator()
    private var connection = ConnectionInfo(remoteAddress: nil)
    private var state = State.idle
    private var readPaused = false
    private var pendingRead = false
    /// Parts of pipelined requests read while an earlier response was being written.
    private var pipelined = CircularBuffer<HTTPServerRequestPart>()
    /// Set when the server drains: each response closes its connection.
    private var quiescing = false
    /// Between a final response head and its end.
    private var responding = false
    /// Whether the response being written has a chunked body.
    private var chunkedResponse = false
    /// Watches the current exchange's response deadline (see ``startTimeout(_:)``).
    private var responseTimer: NIOScheduledCallback?
    private var responseTimerDeadline: NIODeadline?
    /// When the client must have sent what it owes, the rest of a request head or the next piece of a body
    /// (`server.limits`); `nil` while Detour owes the next step. Watched by ``clientTimer`` (see ``expectRead(within:)``).
    private var readDeadline: NIODeadline?
    /// When a client that stopped reading what Detour writes is closed; `nil` while it reads.
    private var stalledDeadline: NIODeadline?
    private var clientTimer: NIOScheduledCallback?

    init(dispatcher: @escaping HTTPServer.Dispatcher, pool: UpstreamPool, limits: HTTPServer.Limits, logger: Logger) {
        self.dispatcher = dispatcher
        self.pool = pool
        self.limits = limits
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        allocator = context.channel.allocator
        connection = ConnectionInfo(remoteAddress: context.channel.remoteAddress?.ipAddress)
        expectRead(within: limits.headerTimeout)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stopResponseTimer()
        clientTimer?.cancel()
        clientTimer = nil
        self.context = nil
    }

    // MARK: Client events

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        // A pipelined request (RFC 9112 9.3.2) waits, with reading paused, until the response before it is
        // done; so does the body of a request whose decision is being made off the loop.
        if !pipelined.isEmpty || (isHead(part) && (isBusy || !context.channel.isWritable)) || isResolving {
            pipelined.append(part)
            pauseReading()
            return
        }
        handle(part, context)
    }

    private func isHead(_ part: HTTPServerRequestPart) -> Bool {
        if case .head = part { true } else { false }
    }

    /// Whether the current state can take more of the request: not while a decision or an upstream
    /// connection is pending, nor while the upstream cannot write.
    private var mayRead: Bool {
        switch state {
        case .resolving: false
        case .forwarding(let exchange): exchange.upstream?.isWritable ?? false
        case .idle: context?.channel.isWritable ?? true
        default: true
        }
    }

    private var isResolving: Bool {
        if case .resolving = state { true } else { false }
    }

    /// Whether a response is still owed for a request that has been read.
    private var isBusy: Bool {
        if case .idle = state { false } else { true }
    }

    /// Serves pipelined requests that waited, until one is again waiting for its response.
    private func servePipelined(_ context: ChannelHandlerContext) {
        while let part = pipelined.first, !(isHead(part) && (isBusy || !context.channel.isWritable)), !isResolving {
            pipelined.removeFirst()
            handle(part, context)
        }
        if pipelined.isEmpty, mayRead { resumeReading() }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        // Draining: an idle connection closes now; a busy one after its response, told `Connection: close`.
        quiescing = true
        pipelined.removeAll()
        if !isBusy {
            // The last response may still wait for the end of the loop's turn.
            context.flush()
            context.close(promise: nil)
        }
    }

    private func handle(_ part: HTTPServerRequestPart, _ context: ChannelHandlerContext) {
        // A head or a body part starts the body's clock; the end stops it until the next request is due.
        if case .end = part { readDeadline = nil } else { expectRead(within: limits.bodyTimeout) }
        switch state {
        case .idle:
            if case .head(let head) = part { begin(head, context) }
        case .collecting(let head, let handler, var body, var tooLarge):
            switch part {
            case .body(var chunk):
                if body.readableBytes + chunk.readableBytes > limits.maximumEndpointBody {
                    tooLarge = true
                    body.clear()
                } else if !tooLarge {
                    body.writeBuffer(&chunk)
                }
                state = .collecting(head, handler, body: body, tooLarge: tooLarge)
            case .end:
                state = .answering
                if tooLarge {
                    refuse(ConnectionError.bodyTooLarge, for: head)
                } else {
                    answer(head, body: body, with: handler, context)
                }
            case .head:
                break
            }
        case .forwarding(let exchange):
            forward(part, exchange, context)
        case .upgrading(let plan, let head):
            // An upgrade request has no body; at its end the upstream is asked.
            if case .end = part { WebSocketTunnel.open(plan, request: head, client: context, handler: self) }
        case .discarding:
            if case .end = part { context.close(promise: nil) }
        case .answering, .resolving:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if case .forwarding(let exchange) = state { exchange.upstream?.flush() }
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        let writable = context.channel.isWritable
        clientWritabilityChanged(writable: writable)
        if case .forwarding(let exchange) = state { exchange.upstream?.readPaused = !writable }
        // Between requests, the next one is read only once the client reads what it was sent (pipelined requests
        // answered by Detour itself would otherwise pile up their answers in memory).
        if writable, case .idle = state { servePipelined(context) }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .forwarding(let exchange) = state {
            exchange.upstream?.delegate = nil
            exchange.upstream?.close()
            exchange.upstream = nil
        }
        state = .idle
        stopResponseTimer()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A request the parser refused gets 431 (head too large) or 400, unless a response has started.
        if let parserError = error as? HTTPParserError, !responding {
            let status: HTTPResponseStatus =
                parserError == .headerOverflow ? .requestHeaderFieldsTooLarge : .badRequest
            var bytes = MessageBytes(allocator: allocator)
            bytes.statusLine(.http1_1, status)
            bytes.field("Connection", "close")
            bytes.field("Content-Length", "0")
            bytes.endOfHead()
            context.writeAndFlush(wrapOutboundOut(bytes.buffer), promise: nil)
        }
        logger.debug("client connection failed", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        if readPaused { pendingRead = true } else { context.read() }
    }

    private func pauseReading() { readPaused = true }

    private func resumeReading() {
        readPaused = false
        if pendingRead, let context {
            pendingRead = false
            context.read()
        }
    }

    // MARK: Requests

    private func begin(_ head: HTTPRequestHead, _ context: ChannelHandlerContext) {
        if let problem = RequestFraming.problem(head) {
            // Before any decision: a head that two servers could read two ways is answered and the connection closed.
            logger.info("request refused", metadata: ["reason": "\(problem)"])
            state = .discarding
            refuse(ConnectionError.malformed(problem), for: head)
            return
        }
        start(head, dispatcher(head, connection), context)
    }

    private func start(_ head: HTTPRequestHead, _ dispatch: Dispatch, _ context: ChannelHandlerContext) {
        switch dispatch {
        case .later(let decide):
            state = .resolving
            pauseReading()
            offLoop(decide, context) { this, dispatch in
                guard case .resolving = this.state, let context = this.context else { return }
                this.start(head, dispatch, context)
                this.servePipelined(context)
            }
        case .respond(let handler):
            state = .collecting(head, handler, body: ByteBuffer(), tooLarge: false)
        case .proxy where WebSocketTunnel.isUpgrade(head) && Self.hasBody(head):
            // An opening handshake is a GET without a body (RFC 6455 4.1); one with a body would reach the upstream
            // saying `chunked` or giving a length, with nothing following, and end in its timeout.
            state = .discarding
            refuse(ConnectionError.upgradeWithBody, for: head)
        case .proxy(let plan) where WebSocketTunnel.isUpgrade(head):
            state = .upgrading(plan, head)
        case .proxy(let plan):
            if let limit = limits.maximumRequestBody,
                let length = head.headers.first(name: "content-length").flatMap(Int.init), length > limit
            {
                state = .discarding
                refuse(ConnectionError.bodyTooLarge, for: head)
                return
            }
            let exchange = Exchange(plan: plan, request: head)
            state = .forwarding(exchange)
            if let upstream = pool.take(plan.upstream) {
                exchange.reusedConnection = true
                attach(upstream, to: exchange)
            } else {
                connect(exchange)
            }
        }
    }

    /// Whether a request announces a body: chunked, or a `Content-Length` other than 0 (the parser refused any
    /// other framing, and two lengths that disagree).
    private static func hasBody(_ head: HTTPRequestHead) -> Bool {
        head.headers.contains(name: "transfer-encoding") || head.headers["content-length"].contains { Int($0) != 0 }
    }

    /// Detour's own answer, computed off the event loop and written back on it.
    private func answer(
        _ head: HTTPRequestHead, body: ByteBuffer, with handler: @escaping Handler, _ context: ChannelHandlerContext
    ) {
        let request = EndpointRequest(
            method: head.method.rawValue, target: head.uri, headers: head.headers.map { ($0.name, $0.value) },
            body: Array(body.readableBytesView))
        let work: @Sendable () async -> Answer = { await handler(request) }
        offLoop(work, context) { this, response in
            guard case .answering = this.state else { return }
            this.write(response, for: head, closing: !head.isKeepAlive || this.quiescing)
        }
    }

    /// Runs `work` off the event loop (it may wait on the provider), then `resume` back on it.
    private func offLoop<Value: Sendable>(
        _ work: @escaping @Sendable () async -> Value, _ context: ChannelHandlerContext,
        resume: @escaping (RequestHandler, Value) -> Void
    ) {
        let eventLoop = context.eventLoop
        let onLoop = NIOLoopBound((self, resume), eventLoop: eventLoop)
        Task {
            let value = await work()
            eventLoop.execute {
                let (this, resume) = onLoop.value
                resume(this, value)
            }
        }
    }

    /// Answers with an error page or JSON, as the client reads them; by default the connection then closes.
    private func refuse(_ error: some ResponseError, for request: HTTPRequestHead, closing: Bool = true) {
        let client = ClientKind.classify(method: request.method.rawValue, header: { request.headers.first(name: $0) })
        write(error.answer(method: request.method.rawValue, client: client), for: request, closing: closing)
    }

    /// Writes a whole answer; the connection goes back to reading requests, or closes. An answer with a header
    /// value that cannot be sent (a claim with a line break in a forward-auth answer) becomes a 502 page.
    private func write(_ response: Answer, for request: HTTPRequestHead, closing: Bool) {
        guard let context else { return }
        if let invalid = ProxyHeaders.firstInvalidValue(in: response.headers) {
            logger.warning(
                "answer replaced by a 502: a header value cannot be sent", metadata: ["header": "\(invalid)"])
            refuse(RequestRefusal.unsendableHeader, for: request, closing: closing)
            return
        }
        let closes = closing || quiescing
        var bytes = MessageBytes(allocator: allocator, capacity: 1024 + response.body.count)
        bytes.statusLine(request.version, HTTPResponseStatus(statusCode: response.status))
        // Detour sets the framing and, when closing, `Connection`, in place of any the answer carries.
        for (name, value) in response.headers
        where !ProxyHeaders.name(name, spells: "content-length")
            && !(closes && ProxyHeaders.name(name, spells: "connection"))
        {
            bytes.field(name, value)
        }
        bytes.field("Content-Length", String(response.body.count))
        if closes { bytes.field("Connection", "close") }
        bytes.endOfHead()
        if request.method != .HEAD { bytes.body(response.body) }
        responding = true
        context.write(wrapOutboundOut(bytes.buffer), promise: nil)
        finishResponse(closing: closing, context)
    }

    /// Writes the response's end; then the connection closes, drops the rest of the request, or reads on.
    private func finishResponse(closing: Bool, trailers: HTTPHeaders? = nil, _ context: ChannelHandlerContext) {
        responding = false
        // A body of known length ends with its last byte: the empty write only keeps the closing below in order.
        let end =
            chunkedResponse
            ? MessageBytes.lastChunk(trailers: trailers, allocator: allocator) : ByteBuffer()
        chunkedResponse = false
        if case .discarding = state {
            // Told `Connection: close`; the client may still be sending: read the rest (for a while), then close.
            context.writeAndFlush(wrapOutboundOut(end), promise: nil)
            resumeReading()
            context.eventLoop.assumeIsolated().scheduleTask(in: Self.discardTime) { context.close(promise: nil) }
        } else if closing || quiescing {
            state = .discarding
            context.writeAndFlush(wrapOutboundOut(end)).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        } else {
            // Kept alive: sent at the end of the loop's turn, with the other connections' responses.
            if end.readableBytes > 0 { context.write(wrapOutboundOut(end), promise: nil) }
            pool.flusher.flushSoon(context)
            state = .idle
            expectRead(within: limits.idleTimeout)
            servePipelined(context)
        }
    }

    // MARK: Forwarding

    private func connect(_ exchange: Exchange) {
        pauseReading()
        let key = exchange.plan.upstream
        pool.connect(key, timeout: exchange.plan.timeouts.connect).assumeIsolated().whenComplete { result in
            guard case .forwarding(let current) = self.state, current === exchange else {
                if case .success(let upstream) = result { upstream.close() }
                return
            }
            switch result {
            case .success(let upstream):
                self.attach(upstream, to: exchange)
            case .failure(let error):
                let timedOut = (error as? ChannelError).map { if case .connectTimeout = $0 { true } else { false } }
                self.fail(exchange, timedOut == true ? .upstreamTimedOut : .upstreamFailed)
            }
        }
    }

    private func attach(_ upstream: UpstreamHandler, to exchange: Exchange) {
        exchange.upstream = upstream
        upstream.delegate = self
        upstream.readPaused = !(context?.channel.isWritable ?? true)
        upstream.send(.head(exchange.plan.head))
        for part in exchange.waiting { upstream.send(part) }
        exchange.waiting = []
        upstream.flush()
        // Had the connection closed on the way (``upstreamClosed()``), the exchange is retried or answered already.
        guard exchange.upstream === upstream else { return }
        if exchange.requestEnded { startTimeout(exchange) }
        if upstream.isWritable { resumeReading() } else { pauseReading() }
    }

    private func forward(_ part: HTTPServerRequestPart, _ exchange: Exchange, _ context: ChannelHandlerContext) {
        let outgoing: HTTPClientRequestPart
        switch part {
        case .head:
            return
        case .body(let chunk):
            exchange.bodyBytes += chunk.readableBytes
            if let limit = limits.maximumRequestBody, exchange.bodyBytes > limit {
                tooLarge(exchange, context)
                return
            }
            outgoing = .body(.byteBuffer(chunk))
        case .end:
            // A client's trailers never reach the upstream (CONTRACT section 7): fields after the body are where a
            // check made on the head would not look.
            exchange.requestEnded = true
            outgoing = .end(nil)
        }
        guard let upstream = exchange.upstream else {
            exchange.waiting.append(outgoing)
            return
        }
        upstream.send(outgoing)
        guard exchange.upstream === upstream else { return }
        if exchange.requestEnded {
            upstream.flush()
            startTimeout(exchange)
        } else if !upstream.isWritable {
            pauseReading()
        }
    }

    /// A chunked body went over the limit while streaming.
    private func tooLarge(_ exchange: Exchange, _ context: ChannelHandlerContext) {
        detach(exchange, keep: false)
        if exchange.responseStarted {
            context.close(promise: nil)
        } else {
            state = .discarding
            refuse(ConnectionError.bodyTooLarge, for: exchange.request)
        }
    }

    // MARK: Client timeouts

    /// Gives the client `amount` from now to send what it owes. One timer per connection watches this deadline and
    /// ``stalledDeadline``: it fires at the sooner of them or after the shortest of the limits, and re-arms itself
    /// while they lie ahead, so a request costs no timer of its own; a deadline is noticed at most that late.
    private func expectRead(within amount: TimeAmount) {
        readDeadline = NIODeadline.now() + amount
        armClientTimer()
    }

    private func armClientTimer() {
        guard clientTimer == nil, let deadline = [readDeadline, stalledDeadline].compactMap({ $0 }).min() else {
            return
        }
        let step = min(limits.headerTimeout, limits.bodyTimeout, limits.idleTimeout)
        clientTimer = try? context?.eventLoop.assumeIsolated().scheduleCallback(
            at: min(deadline, .now() + step), handler: ClientTimer(handler: self))
    }

    private func clientTimerFired() {
        clientTimer = nil
        let now = NIODeadline.now()
        if let stalled = stalledDeadline, stalled <= now {
            // The client has read nothing of what it was sent for a whole body_timeout: it holds this connection
            // (and an upstream one) for nothing.
            logger.debug("client stopped reading; closing")
            context?.close(promise: nil)
            return
        }
        // Reading paused is Detour waiting (on an upstream, a decision, a response): the client is not late.
        if readPaused, readDeadline != nil { readDeadline = now + limits.bodyTimeout }
        if let deadline = readDeadline, deadline <= now {
            readTimedOut()
        } else {
            armClientTimer()
        }
    }

    /// The client stopped reading (`stalled`) or started again: a client that reads nothing for a whole
    /// `body_timeout` is closed.
    private func clientWritabilityChanged(writable: Bool) {
        stalledDeadline = writable ? nil : .now() + limits.bodyTimeout
        armClientTimer()
    }

    /// The client did not send in time: a connection between requests just closes; a request whose body stopped
    /// gets a 408 (RFC 9110 15.5.9) when no response has started, then the connection closes.
    private func readTimedOut() {
        guard let context else { return }
        readDeadline = nil
        logger.debug("client too slow; closing", metadata: ["state": "\(state)"])
        let head: HTTPRequestHead?
        switch state {
        case .collecting(let request, _, _, _), .upgrading(_, let request): head = request
        case .forwarding(let exchange) where !exchange.responseStarted:
            detach(exchange, keep: false)
            head = exchange.request
        default: head = nil
        }
        guard let head, !responding else {
            context.close(promise: nil)
            return
        }
        state = .discarding
        refuse(ConnectionError.tooSlow, for: head)
    }

    private struct ClientTimer: NIOScheduledCallbackHandler {
        let handler: RequestHandler

        func handleScheduledCallback(eventLoop: some EventLoop) { handler.clientTimerFired() }
    }

    /// Gives the exchange its response deadline. One timer per connection watches the deadlines: armed when a
    /// deadline is set and none runs, it re-arms itself for the current exchange's deadline when it goes off
    /// early, so most requests cost no timer at all (scheduling and cancelling one per request cost 2% of the CPU).
    private func startTimeout(_ exchange: Exchange) {
        guard exchange.responseDeadline == nil, !exchange.responseStarted, exchange.upstream != nil else { return }
        let deadline = NIODeadline.now() + exchange.plan.timeouts.response
        exchange.responseDeadline = deadline
        if let armed = responseTimerDeadline, armed <= deadline { return }
        armResponseTimer(at: deadline)
    }

    private func armResponseTimer(at deadline: NIODeadline) {
        stopResponseTimer()
        responseTimer = try? context?.eventLoop.assumeIsolated().scheduleCallback(
            at: deadline, handler: ResponseTimer(handler: self))
        if responseTimer != nil { responseTimerDeadline = deadline }
    }

    private func stopResponseTimer() {
        responseTimer?.cancel()
        responseTimer = nil
        responseTimerDeadline = nil
    }

    /// The connection's response timer went off: the current exchange's upstream is closed (then a 504) if its
    /// deadline has passed; otherwise the timer waits for that deadline.
    private func responseTimerFired() {
        responseTimer = nil
        responseTimerDeadline = nil
        guard case .forwarding(let exchange) = state, !exchange.responseStarted,
            let deadline = exchange.responseDeadline
        else { return }
        if deadline > .now() {
            armResponseTimer(at: deadline)
        } else {
            exchange.timedOut = true
            exchange.upstream?.close()
        }
    }

    private struct ResponseTimer: NIOScheduledCallbackHandler {
        let handler: RequestHandler

        func handleScheduledCallback(eventLoop: some EventLoop) { handler.responseTimerFired() }
    }

    /// Ends the exchange's use of its upstream connection: back to the pool, or closed.
    private func detach(_ exchange: Exchange, keep: Bool) {
        exchange.responseDeadline = nil
        guard let upstream = exchange.upstream else { return }
        exchange.upstream = nil
        upstream.delegate = nil
        upstream.readPaused = false
        if keep { pool.giveBack(upstream) } else { upstream.close() }
    }

    /// No response came: a page saying why, unless a stale pooled connection can be retried.
    private func fail(_ exchange: Exchange, _ error: ConnectionError) {
        exchange.responseDeadline = nil
        if !exchange.requestEnded {
            exchange.closeClient = true
            state = .discarding
        }
        refuse(error, for: exchange.request, closing: exchange.closeClient)
    }

    // MARK: Upstream events

    func upstreamRead(_ part: HTTPClientResponsePart) {
        guard case .forwarding(let exchange) = state, let context else { return }
        switch part {
        case .head(let head) where head.status.code < 200:
            // 100 Continue and friends go to clients that can read them; a 101 without an upgrade is dropped.
            if exchange.request.version != .http1_0, head.status != .switchingProtocols {
                write(ClientResponseHead(passing: head), version: exchange.request.version, context)
            }
        case .head(let head):
            exchange.responseDeadline = nil
            exchange.responseStarted = true
            exchange.upstreamKeepAlive = head.isKeepAlive
            // An answer before the request's end (an early 401 or 413): the rest of the body is not wanted.
            if !exchange.requestEnded { exchange.closeClient = true }
            var response = exchange.plan.rewriteResponse(head)
            // Detour frames what it writes: a body whose length the upstream did not give goes chunked, or, HTTP/1.0
            // having no chunked coding, ends with the connection.
            if Self.hasBodyOfUnknownLength(response, exchange.request) {
                if exchange.request.version == .http1_0 {
                    exchange.closeClient = true
                } else {
                    chunkedResponse = true
                    response.added.append(("Transfer-Encoding", "chunked"))
                }
            }
            if quiescing { exchange.closeClient = true }
            if exchange.closeClient {
                response.added.append(("Connection", "close"))
            } else if exchange.request.version == .http1_0 {
                response.added.append(("Connection", "keep-alive"))
            }
            responding = true
            write(response, version: exchange.request.version, context)
        case .body(let chunk):
            if chunkedResponse {
                for piece in MessageBytes.chunk(chunk, allocator: allocator) {
                    context.write(wrapOutboundOut(piece), promise: nil)
                }
            } else {
                context.write(wrapOutboundOut(chunk), promise: nil)
            }
            if !context.channel.isWritable { exchange.upstream?.readPaused = true }
        case .end(let trailers):
            let keep = exchange.upstreamKeepAlive && exchange.requestEnded
            detach(exchange, keep: keep)
            if !exchange.requestEnded { state = .discarding }
            finishResponse(closing: exchange.closeClient, trailers: trailers, context)
        }
    }

    /// Writes an upstream's response head as the client gets it.
    private func write(_ head: ClientResponseHead, version: HTTPVersion, _ context: ChannelHandlerContext) {
        var bytes = MessageBytes(allocator: allocator)
        bytes.statusLine(version, head.status)
        head.forEachField { bytes.field($0, $1) }
        bytes.endOfHead()
        context.write(wrapOutboundOut(bytes.buffer), promise: nil)
    }

    /// Whether a response has a body with no `Content-Length` (one the upstream sent chunked, or ended by closing).
    private static func hasBodyOfUnknownLength(_ response: ClientResponseHead, _ request: HTTPRequestHead) -> Bool {
        let status = response.status.code
        return request.method != .HEAD && status >= 200 && status != 204 && status != 304 && !response.hasContentLength
    }

    func upstreamReadComplete() {
        if let context { pool.flusher.flushSoon(context) }
    }

    func upstreamWritabilityChanged(writable: Bool) {
        guard case .forwarding = state else { return }
        if writable { resumeReading() } else { pauseReading() }
    }

    func upstreamClosed() {
        guard case .forwarding(let exchange) = state, let context else { return }
        exchange.upstream = nil
        exchange.responseDeadline = nil
        if exchange.responseStarted {
            context.close(promise: nil)
        } else if exchange.reusedConnection, exchange.bodyBytes == 0, !exchange.retried, !exchange.timedOut {
            exchange.retried = true
            exchange.reusedConnection = false
            exchange.waiting = exchange.requestEnded ? [.end(nil)] : []
            connect(exchange)
        } else {
            fail(exchange, exchange.timedOut ? .upstreamTimedOut : .upstreamFailed)
        }
    }

    // MARK: WebSocket

    /// The upstream refused the upgrade or could not be reached.
    func upgradeFailed(_ head: HTTPRequestHead, _ error: ConnectionError) {
        guard case .upgrading = state else { return }
        state = .answering
        refuse(error, for: head)
    }
}
