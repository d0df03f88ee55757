import DetourGateway
import Logging
import NIOCore
import NIOHTTP1

/// Serves one client connection on its event loop by performing what its ``ConnectionStateMachine`` decides: it
/// feeds the machine each event (request parts, decisions, upstream parts, writability, the timer) and does the
/// one action that comes back. The decisions, their states and deadlines are the machine's; this class holds only
/// what cannot be a value: the channel, the exchange's upstream connection and the connection's one timer.
///
/// Guarantees, beyond the machine's:
/// - Detour's endpoints and the provider calls run off the event loop; what is decided from a head alone (the
///   gateway's decision from memos, row A1's redirect) runs on it, without I/O. Proxied bodies stream part by
///   part, with backpressure both ways (a side that cannot write stops the other side's reads).
/// - An upstream connection goes back to the pool only after a complete exchange that allowed keep-alive.
/// - No header value written to the client holds a control byte (no response splitting): Detour's own answers
///   are checked by the machine; an upstream's headers were checked by the response parser (llhttp refuses
///   control bytes, bare CR or LF and folded lines: a 502), and what the gateway adds to them is checked there, or
///   comes from the URL serialiser, which percent-encodes controls.
/// - One timer per connection, no timer per request: it is moved only when a deadline comes sooner than it.
final class RequestHandler<Wire: ClientWire>: ChannelDuplexHandler, UpstreamHandler.Delegate, TunnelOwner {
    typealias InboundIn = Wire.InboundPart
    typealias OutboundIn = Wire.Part
    /// Responses leave as the wire frames them: HTTP/1.1 bytes, or an HTTP/2 stream's parts.
    typealias OutboundOut = Wire.Part
    typealias Action = ConnectionStateMachine.Action

    private let dispatcher: HTTPServer.Dispatcher
    private let pool: UpstreamPool
    private let logger: Logger
    /// `server.access_log`, and the line the current request will make in it.
    private let accessLog: AccessLog?
    private var entry: AccessEntry?
    private var machine: ConnectionStateMachine
    private var context: ChannelHandlerContext?
    /// Made with the channel's allocator, once: every response asks for a buffer.
    private var wire = Wire(allocator: ByteBufferAllocator())
    /// The `Strict-Transport-Security` value every final response carries (answers over TLS), unless the upstream
    /// sent its own.
    private let hsts: String?
    /// The client connection's memos: its own, or, for an HTTP/2 stream, those its connection's streams share.
    private var connection: ConnectionInfo
    private let sharesConnection: Bool
    /// The current exchange's upstream connection, while it carries the exchange.
    private var upstream: UpstreamHandler?
    private var timer: NIOScheduledCallback?
    private var timerDeadline: NIODeadline?
    /// The latest the timer looks again after being armed: deadlines move later with each request without moving
    /// the timer, so it wakes at most this long before the one it finds due.
    private let timerStep: TimeAmount

    /// - Parameter connection: the memos of the connection this handler serves a stream of (HTTP/2); by default,
    ///   the handler's channel is the connection.
    init(
        dispatcher: @escaping HTTPServer.Dispatcher, pool: UpstreamPool, limits: HTTPServer.Limits, hsts: String?,
        logger: Logger, connection: ConnectionInfo? = nil
    ) {
        accessLog = limits.accessLog
        self.connection = connection ?? ConnectionInfo(remoteAddress: nil)
        sharesConnection = connection != nil
        self.dispatcher = dispatcher
        self.hsts = hsts
        self.pool = pool
        self.logger = logger
        machine = ConnectionStateMachine(limits: limits, now: pool.eventLoop.now)
        timerStep = min(limits.headerTimeout, limits.bodyTimeout, limits.idleTimeout)
    }

    private var now: NIODeadline { pool.eventLoop.now }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        wire = Wire(allocator: context.channel.allocator)
        if !sharesConnection { connection = ConnectionInfo(remoteAddress: context.channel.remoteAddress?.ipAddress) }
        afterEvent()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        logAccess(aborted: true)
        release(keep: false)
        timer?.cancel()
        timer = nil
        self.context = nil
    }

    // MARK: Client events

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        do {
            switch try wire.read(unwrapInboundIn(data)) {
            case .none:
                break
            case .one(let part):
                perform(machine.received(part, now: now))
            case .two(let part, let next):
                perform(machine.received(part, now: now))
                perform(machine.received(next, now: now))
            }
        } catch {
            logger.debug("malformed HTTP/2 request; stream reset", metadata: ["reason": "\(error)"])
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        upstream?.flush()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        let writable = context.channel.isWritable
        machine.clientWritabilityChanged(writable: writable, now: now)
        upstream?.readPaused = !writable
        // Between requests, the next one is read only once the client reads what it was sent (pipelined requests
        // answered by Detour itself would otherwise pile up their answers in memory).
        if writable { servePipelined() } else { afterEvent() }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        perform(machine.quiesce())
    }

    func channelInactive(context: ChannelHandlerContext) {
        machine.closed()
        release(keep: false)
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("client connection failed", metadata: ["error": "\(error)"])
        if let parserError = error as? HTTPParserError {
            perform(machine.parserFailed(parserError))
        } else {
            context.close(promise: nil)
        }
    }

    func read(context: ChannelHandlerContext) {
        if machine.readRequested() { context.read() }
    }

    // MARK: Performing actions

    private func perform(_ action: Action) {
        guard let context else { return }
        switch action {
        case .none:
            break
        case .dispatch(let head):
            let dispatch = dispatcher(head, connection)
            if accessLog != nil { entry = AccessEntry(head, connection.current, now: now, note: dispatch.note) }
            return perform(machine.dispatched(dispatch, for: head, now: now))
        case .decide(let decide):
            offLoop(decide, context) { this, dispatch in
                let action = this.machine.decided(dispatch, now: this.now)
                if case .none = action {} else if let note = dispatch.note { this.entry?.note = note }
                this.perform(action)
                this.servePipelined()
            }
        case .answer(let request, let responder):
            let work: @Sendable () async -> Answer = { await responder(request) }
            offLoop(work, context) { this, answer in
                let action = this.machine.answered(answer, now: this.now)
                if case .none = action {} else if let note = answer.note { this.entry?.note = note }
                this.perform(action)
            }
        case .respond(let response):
            return write(response, context)
        case .connect(let key, let timeout, let exchange, let fresh):
            if entry?.forwarded == nil { entry?.forwarded = now }
            return connect(key, timeout: timeout, exchange: exchange, fresh: fresh)
        case .send(let part, let flush):
            upstream?.send(part)
            if flush { upstream?.flush() }
        case .writeHead(let head, let version):
            let hsts = head.status.code >= 200 ? hsts : nil
            let part = wire.head(head.status, version: version) { field in
                var stated = false
                head.forEachField { name, value in
                    if hsts != nil, ProxyHeaders.name(name, spells: "strict-transport-security") { stated = true }
                    field(name, value)
                }
                if let hsts, !stated { field("Strict-Transport-Security", hsts) }
            }
            context.write(wrapOutboundOut(part), promise: nil)
            if head.status.code >= 200 { entry?.answered(Int(head.status.code), now: now) }
            // A response head or body part changes neither what is read nor a deadline to watch sooner.
            return
        case .writeBody(let chunk, let chunked):
            wire.body(chunk, chunked: chunked) { send($0, context) }
            if !context.channel.isWritable { upstream?.readPaused = true }
            return
        case .endResponse(let end):
            logAccess()
            release(keep: end.keepsUpstream)
            let last = wire.end(trailers: end.trailers, chunked: end.chunked) { send($0, context) }
            return finish(end.then, last: last, context)
        case .closeUpstream:
            upstream?.close()
        case .openTunnel(let plan, let head):
            guard Wire.carriesUpgrades else { return perform(machine.upgradeFailed(.upgradeRefused, now: now)) }
            // Logged as a 101 when the tunnel takes the connection over; a refused upgrade answers a 502 instead.
            entry?.status = 101
            WebSocketTunnel.open(plan, request: head, client: context, owner: self)
        case .refuseUnparsable(let status):
            let hsts = hsts
            wire.whole(
                status, version: .http1_1,
                fields: { field in
                    field("Connection", "close")
                    field("Content-Length", "0")
                    if let hsts { field("Strict-Transport-Security", hsts) }
                }, body: [], write: { send($0, context) })
            let last = wire.end(trailers: nil, chunked: false) { send($0, context) }
            context.writeAndFlush(wrapOutboundOut(last), promise: nil)
            context.close(promise: nil)
        case .close(let reason):
            switch reason {
            case .clientStalled, .clientTooSlow, .closingTimedOut:
                logger.debug("client too slow; closing", metadata: ["reason": "\(reason)"])
            case .outOfOrder:
                logger.warning("request part out of order; closing")
            case .quiescing, .drained, .failedMidResponse, .unparsable:
                break
            }
            // Closed first, so that nothing the flush sets off (the client becoming writable) serves another request.
            machine.closed()
            // The last response may still wait for the end of the loop's turn.
            releaseHeld(context)
            context.flush()
            if reason == .drained, Wire.endsItself { break }
            context.close(promise: nil)
        }
        afterEvent()
    }

    /// Writes the current request's access-log line, once. `aborted`: the connection went (the client left, or the
    /// response failed midway) before the response ended; a WebSocket tunnel taking it over is its 101.
    private func logAccess(aborted: Bool = false) {
        guard var entry, let accessLog else { return }
        self.entry = nil
        if aborted, entry.status != 101 { entry.aborted = true }
        accessLog.record(entry.record(now: now))
    }

    /// After each event: a read that waited goes ahead if the machine now wants one; the timer is moved sooner if
    /// a deadline now comes before it.
    private func afterEvent() {
        let settled = machine.settle()
        if settled.resumesRead { context?.read() }
        armTimer(for: settled.deadline)
    }

    /// Serves pipelined request parts that waited, until one is again waiting for its response.
    private func servePipelined() {
        while let action = machine.nextPipelined(now: now) { perform(action) }
        afterEvent()
    }

    /// Writes one of Detour's own answers whole.
    private func write(_ response: ConnectionStateMachine.OwnResponse, _ context: ChannelHandlerContext) {
        switch response.note {
        case .refusedFraming(let problem)?:
            logger.info("request refused", metadata: ["reason": "\(problem)"])
        case .unsendableHeader(let name)?:
            logger.warning("answer replaced by a 502: a header value cannot be sent", metadata: ["header": "\(name)"])
        case .clientTooSlow?:
            logger.debug("client too slow; answered 408")
        case nil:
            break
        }
        if response.closesUpstream { release(keep: false) }
        let answer = response.answer
        if entry == nil, accessLog != nil {
            // Refused before any dispatch (a head two servers could read two ways): logged all the same.
            entry = AccessEntry(response.request, connection.current, now: now, note: nil)
        }
        if let note = answer.note {
            // A refusal keeps the route the request was on, with its own code as the decision.
            let earlier = entry?.note
            entry?.note =
                note.route != nil
                ? note : AccessNote(route: earlier?.route, decision: note.decision, user: earlier?.user)
        }
        entry?.answered(answer.status, now: now)
        logAccess()
        let hsts = hsts
        let fields = { (field: (String, String) -> Void) in
            // Detour sets the framing and, when closing, `Connection`, in place of any the answer carries.
            for (name, value) in answer.headers
            where !ProxyHeaders.name(name, spells: "content-length")
                && !(response.closes && ProxyHeaders.name(name, spells: "connection"))
            {
                field(name, value)
            }
            field("Content-Length", String(answer.body.count))
            if response.closes { field("Connection", "close") }
            if let hsts { field("Strict-Transport-Security", hsts) }
        }
        wire.whole(
            HTTPResponseStatus(statusCode: answer.status), version: response.request.version, fields: fields,
            body: response.request.method == .HEAD ? [] : answer.body
        ) { send($0, context) }
        finish(response.then, last: wire.end(trailers: nil, chunked: false) { send($0, context) }, context)
    }

    /// Writes a response's last bytes; then the connection closes, drops the rest of the request, or reads on.
    private func finish(_ ending: ConnectionStateMachine.Ending, last: Wire.Part, _ context: ChannelHandlerContext) {
        switch ending {
        case .drain:
            context.writeAndFlush(wrapOutboundOut(last), promise: nil)
            afterEvent()
        case .close:
            context.writeAndFlush(wrapOutboundOut(last)).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
            afterEvent()
        case .readNext:
            // Kept alive: sent at the end of the loop's turn, with the other connections' responses.
            if !wire.isNothing(last) { context.write(wrapOutboundOut(last), promise: nil) }
            pool.flusher.flushSoon(context)
            servePipelined()
        }
    }

    private func send(_ part: Wire.Part, _ context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(part), promise: nil)
    }

    /// Writes the part the wire held back for a merge: called before each flush, so that none waits past one.
    private func releaseHeld(_ context: ChannelHandlerContext) {
        if let held = wire.release() { send(held, context) }
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

    // MARK: The timer

    /// Arms the connection's timer for the machine's next deadline, unless it is armed for that or sooner.
    private func armTimer(for deadline: NIODeadline?) {
        guard let deadline, let context else { return }
        if let armed = timerDeadline, armed <= deadline { return }
        timer?.cancel()
        let at = min(deadline, now + timerStep)
        timer = try? context.eventLoop.assumeIsolated().scheduleCallback(at: at, handler: Timer(handler: self))
        timerDeadline = timer == nil ? nil : at
    }

    private func timerFired() {
        timer = nil
        timerDeadline = nil
        perform(machine.timerFired(now: now))
    }

    private struct Timer: NIOScheduledCallbackHandler {
        let handler: RequestHandler

        func handleScheduledCallback(eventLoop: some EventLoop) { handler.timerFired() }
    }

    // MARK: Upstream connections

    private func connect(_ key: UpstreamPool.Key, timeout: TimeAmount, exchange: Int, fresh: Bool) {
        if !fresh, let idle = pool.take(key) { return attach(idle, exchange: exchange, reused: true) }
        afterEvent()
        pool.connect(key, timeout: timeout).assumeIsolated().whenComplete { result in
            switch result {
            case .success(let upstream):
                self.attach(upstream, exchange: exchange, reused: false)
            case .failure(let error):
                let timedOut = (error as? ChannelError).map { if case .connectTimeout = $0 { true } else { false } }
                self.perform(
                    self.machine.upstreamUnreachable(exchange: exchange, timedOut: timedOut == true, now: self.now))
            }
        }
    }

    /// Hands a ready connection the exchange's request so far, or closes it if the exchange ended meanwhile.
    private func attach(_ connection: UpstreamHandler, exchange: Int, reused: Bool) {
        guard
            let start = machine.upstreamReady(
                exchange: exchange, reused: reused, writable: connection.isWritable, now: now)
        else {
            connection.close()
            return afterEvent()
        }
        upstream = connection
        connection.delegate = self
        connection.readPaused = !(context?.channel.isWritable ?? true)
        connection.send(.head(start.head))
        if let body = start.body { connection.send(.body(.byteBuffer(body))) }
        if start.ended { connection.send(.end(nil)) }
        connection.flush()
        servePipelined()
    }

    /// Ends the exchange's use of its upstream connection: back to the pool, or closed.
    private func release(keep: Bool) {
        guard let connection = upstream else { return }
        upstream = nil
        connection.delegate = nil
        connection.readPaused = false
        if keep { pool.giveBack(connection) } else { connection.close() }
    }

    func upstreamRead(_ part: HTTPClientResponsePart) { perform(machine.upstreamReceived(part, now: now)) }

    func upstreamReadComplete() {
        guard let context else { return }
        releaseHeld(context)
        pool.flusher.flushSoon(context)
    }

    func upstreamWritabilityChanged(writable: Bool) {
        machine.upstreamWritabilityChanged(writable: writable)
        afterEvent()
    }

    func upstreamClosed() {
        upstream = nil
        perform(machine.upstreamClosed(now: now))
    }

    /// The upstream refused the WebSocket upgrade or could not be reached.
    func upgradeFailed(_ head: HTTPRequestHead, _ error: ConnectionError) {
        perform(machine.upgradeFailed(error, now: now))
    }
}
