import DetourGateway
import DetourRedirect
import NIOCore
import NIOHTTP1

/// The life of one client connection, as a value: each method takes one event (a request part, a decision, an
/// upstream ready or closed, a response part, a change in writability, the timer) and returns the one ``Action``
/// that ``RequestHandler`` performs. It holds no channel, no upstream connection and no clock, so each state and
/// deadline is tested without sockets: time comes with the events, as an autoclosure read only by an event that
/// sets a deadline (a request reads the clock three times, not once per event).
///
/// Guarantees:
/// - One request at a time: a pipelined request (RFC 9112 9.3.2) waits until the response before it is written
///   and the client reads what it was sent, so answers never pile up in memory.
/// - Reading follows the state (``wantsRead``): not while a decision or an upstream connection is pending, nor
///   while the upstream cannot take more of a body, nor between requests while the client reads nothing. Memory
///   stays flat whatever the body sizes.
/// - Each request read gets one response, or its connection closes.
/// - One deadline at a time per concern, watched by one timer (``nextDeadline``): the client's next bytes
///   (`header_timeout`, `body_timeout`, `idle_timeout`), a client that reads nothing (closed after a
///   `body_timeout`), the upstream's response (``UpstreamTimeouts/response`` from the request's end: 504), and the
///   end of draining an answered request.
/// - Bodies: a proxied body over ``HTTPServer/Limits/maximumRequestBody`` is a 413 (from `Content-Length`, before
///   anything is forwarded); an endpoint's body over ``HTTPServer/Limits/maximumEndpointBody`` likewise.
/// - No answer Detour writes carries a header value with a control byte: one that would is replaced by a 502 page.
struct ConnectionStateMachine {
    /// Where the connection is.
    enum State {
        /// Between requests.
        case idle
        /// Waiting for a decision made off the event loop; the body waits unread.
        case resolving(HTTPRequestHead)
        /// Reading the body of a request Detour answers itself.
        case collecting(HTTPRequestHead, Responder, body: ByteBuffer, tooLarge: Bool, limit: Int)
        /// Waiting for Detour's own answer.
        case answering(HTTPRequestHead)
        /// A request on its way to an upstream and its response on the way back.
        case forwarding(Exchange)
        /// A WebSocket upgrade request, waiting for its end (`asked` once the upstream has been asked), then for the
        /// upstream's 101.
        case upgrading(ProxyPlan, HTTPRequestHead, asked: Bool)
        /// The request was answered before its body ended: the rest is dropped, then the connection closes.
        case discarding
        /// The connection is gone: late events change nothing.
        case closed
    }

    /// How long the rest of an already answered request body is read before the connection closes anyway.
    static let discardTime = TimeAmount.seconds(5)

    let limits: HTTPServer.Limits
    /// Where the connection is; changed only by the machine's event methods (here and in its extension files).
    var state = State.idle
    /// Request parts read but not served yet: those of pipelined requests, and those that wait for a decision or an
    /// upstream connection. Changed only by the machine's event methods.
    var pipelined = CircularBuffer<HTTPServerRequestPart>()
    /// Set when the server drains: each response closes its connection.
    private(set) var quiescing = false
    private var clientWritable = true
    /// A read the channel asked for while ``wantsRead`` was false.
    private var pendingRead = false
    /// Numbers the exchanges, so that a connection offered late for an earlier one is refused.
    private var exchanges = 0
    /// What the connection's timer watches; changed only by the machine's event methods.
    var deadlines = Deadlines()

    init(limits: HTTPServer.Limits, now: NIODeadline) {
        self.limits = limits
        deadlines.read = now + limits.headerTimeout
    }

    // MARK: Reading

    /// Whether the connection reads more of the client's bytes now.
    var wantsRead: Bool {
        guard pipelined.isEmpty else { return false }
        switch state {
        case .idle: return clientWritable
        case .resolving, .closed: return false
        case .forwarding(let exchange): return exchange.upstream == .attached(writable: true)
        case .collecting, .answering, .upgrading, .discarding: return true
        }
    }

    /// The channel asks to read: whether to, now; otherwise the read waits for ``resumesRead()``.
    mutating func readRequested() -> Bool {
        if wantsRead { return true }
        pendingRead = true
        return false
    }

    /// Whether a read that waited may go ahead now (asked after each event).
    mutating func resumesRead() -> Bool {
        guard pendingRead, wantsRead else { return false }
        pendingRead = false
        return true
    }

    /// Whether a response is owed for a request that has been read.
    private var isBusy: Bool {
        if case .idle = state { false } else { true }
    }

    /// Whether request parts wait unread: while a decision is made off the loop, or an upstream connection is found.
    private var holdsParts: Bool {
        switch state {
        case .resolving: true
        case .forwarding(let exchange): exchange.upstream == .connecting
        default: false
        }
    }

    // MARK: Client events

    /// A part of a request arrived.
    mutating func received(_ part: HTTPServerRequestPart, now: @autoclosure () -> NIODeadline) -> Action {
        if !pipelined.isEmpty || (part.isHead && (isBusy || !clientWritable)) || holdsParts {
            pipelined.append(part)
            return .none
        }
        return handle(part, now: now())
    }

    /// The next pipelined part that can be served now, handled; `nil` when none can.
    mutating func nextPipelined(now: @autoclosure () -> NIODeadline) -> Action? {
        guard let part = pipelined.first, !(part.isHead && (isBusy || !clientWritable)), !holdsParts else {
            return nil
        }
        pipelined.removeFirst()
        return handle(part, now: now())
    }

    private mutating func handle(_ part: HTTPServerRequestPart, now: @autoclosure () -> NIODeadline) -> Action {
        // Between requests only a head counts: the end of a request answered from its head leaves the idle
        // timeout running.
        if case .idle = state, !part.isHead { return .none }
        // A head or a body part starts the body's clock; the end stops it until the next request is due.
        if case .end = part { deadlines.read = nil } else { deadlines.read = now() + limits.bodyTimeout }
        switch state {
        case .idle:
            guard case .head(let head) = part else { return .none }
            if let problem = RequestFraming.problem(head) {
                // Before any decision: a head two servers could read two ways is answered, then the connection closes.
                state = .discarding
                return refuse(ConnectionError.malformed(problem), for: head, now: now(), note: .refusedFraming(problem))
            }
            return .dispatch(head)
        case .collecting(let head, let responder, var body, var tooLarge, let limit):
            switch part {
            case .body(var chunk):
                if body.readableBytes + chunk.readableBytes > limit {
                    tooLarge = true
                    body.clear()
                } else if !tooLarge {
                    body.writeBuffer(&chunk)
                }
                state = .collecting(head, responder, body: body, tooLarge: tooLarge, limit: limit)
                return .none
            case .end:
                state = .answering(head)
                if tooLarge { return refuse(ConnectionError.bodyTooLarge, for: head, now: now()) }
                let request = EndpointRequest(head, body: Array(body.readableBytesView))
                return .answer(request, responder)
            case .head:
                return .none
            }
        case .forwarding(let exchange) where exchange.requestEnded:
            // The next request's parts wait in `pipelined` behind its head: a part here would reach this upstream as
            // bytes of a request no decision was made for.
            return .close(.outOfOrder)
        case .forwarding(var exchange):
            let action = forward(part, &exchange, now: now())
            if case .forwarding = state { state = .forwarding(exchange) }
            return action
        case .upgrading(_, _, asked: true):
            return .close(.outOfOrder)
        case .upgrading(let plan, let head, asked: false):
            // An upgrade request has no body; at its end the upstream is asked.
            guard case .end = part else { return .none }
            state = .upgrading(plan, head, asked: true)
            return .openTunnel(plan, head)
        case .discarding:
            if case .end = part { return .close(.drained) }
            return .none
        case .resolving, .answering, .closed:
            return .none
        }
    }

    /// The dispatcher said where the request goes.
    mutating func dispatched(_ dispatch: Dispatch, for head: HTTPRequestHead, now: @autoclosure () -> NIODeadline)
        -> Action
    {
        switch dispatch {
        case .later(let decide):
            state = .resolving(head)
            return .decide(decide)
        case .respond(let responder):
            state = .collecting(head, responder, body: ByteBuffer(), tooLarge: false, limit: limits.maximumEndpointBody)
            return .none
        case .respondReading(let limit, let responder):
            state = .collecting(head, responder, body: ByteBuffer(), tooLarge: false, limit: limit)
            return .none
        case .answer(let answer):
            // An announced body is not wanted: drained for a while after the answer, then the connection closes.
            let hasBody = Self.hasBody(head)
            state = hasBody ? .discarding : .answering(head)
            return respond(answer, to: head, closing: hasBody || !head.keepsConnection, now: now())
        case .proxy where WebSocketTunnel.isUpgrade(head) && Self.hasBody(head):
            // An opening handshake is a GET without a body (RFC 6455 4.1); one with a body would reach the upstream
            // announcing a body that never follows, and end in its timeout.
            state = .discarding
            return refuse(ConnectionError.upgradeWithBody, for: head, now: now())
        case .proxy(let plan) where WebSocketTunnel.isUpgrade(head):
            state = .upgrading(plan, head, asked: false)
            return .none
        case .proxy(let plan):
            if let limit = limits.maximumRequestBody,
                let length = head.headers.first(name: "content-length").flatMap(Int.init), length > limit
            {
                state = .discarding
                return refuse(ConnectionError.bodyTooLarge, for: head, now: now())
            }
            exchanges += 1
            state = .forwarding(Exchange(id: exchanges, plan: plan, request: head))
            // A body Detour holds goes on a fresh connection: only a reused one is ever retried, so it is sent once,
            // never again after the upstream may have acted on it.
            return .connect(
                plan.upstream, timeout: plan.timeouts.connect, exchange: exchanges, fresh: plan.body != nil)
        }
    }

    /// A decision made off the loop (``Action/decide(_:)``) is ready.
    mutating func decided(_ dispatch: Dispatch, now: @autoclosure () -> NIODeadline) -> Action {
        guard case .resolving(let head) = state else { return .none }
        return dispatched(dispatch, for: head, now: now())
    }

    /// Detour's own answer (``Action/answer(_:_:)``) is ready.
    mutating func answered(_ answer: Answer, now: @autoclosure () -> NIODeadline) -> Action {
        guard case .answering(let head) = state else { return .none }
        return respond(answer, to: head, closing: !head.keepsConnection, now: now())
    }

    /// The client's side of the connection can take more bytes, or cannot.
    mutating func clientWritabilityChanged(writable: Bool, now: @autoclosure () -> NIODeadline) {
        clientWritable = writable
        deadlines.stalled = writable ? nil : now() + limits.bodyTimeout
    }

    /// The server drains: an idle connection closes now, a busy one after its response (told `Connection: close`).
    /// Parts waiting in `pipelined` stay there, unread further, until the connection closes: dropping them would
    /// let the parts behind them be read as the current request's.
    mutating func quiesce() -> Action {
        quiescing = true
        return isBusy ? .none : .close(.quiescing)
    }

    /// The client's bytes could not be parsed: 431 (head too large) or 400 for the request being read, then the
    /// connection closes. When a response is still owed for an earlier request (the bytes belong to a pipelined one),
    /// or one has started, the connection just closes: a status written now would answer the wrong request.
    mutating func parserFailed(_ error: HTTPParserError) -> Action {
        let endRead = pipelined.contains { if case .end = $0 { true } else { false } }
        let answerable =
            switch state {
            case .idle: pipelined.isEmpty
            case .collecting: true
            case .resolving: !endRead
            case .forwarding(let exchange): exchange.response == nil && !exchange.requestEnded && !endRead
            case .answering, .upgrading, .discarding, .closed: false
            }
        guard answerable else { return .close(.unparsable) }
        state = .closed
        return .refuseUnparsable(error == .headerOverflow ? .requestHeaderFieldsTooLarge : .badRequest)
    }

    /// The connection is gone.
    mutating func closed() {
        state = .closed
        pipelined.removeAll()
        deadlines = Deadlines()
    }

    /// The upstream refused the WebSocket upgrade or could not be reached.
    mutating func upgradeFailed(_ error: ConnectionError, now: @autoclosure () -> NIODeadline) -> Action {
        guard case .upgrading(_, let head, _) = state else { return .none }
        state = .answering(head)
        return refuse(error, for: head, now: now())
    }

    // MARK: Time

    /// The soonest deadline the connection's timer must watch, if any.
    var nextDeadline: NIODeadline? { deadlines.soonest }

    /// Between events: whether a read that waited may go ahead now, and the soonest deadline to watch. One call
    /// for the two, in place: reading them one by one from the handler would copy the machine each time.
    mutating func settle() -> (resumesRead: Bool, deadline: NIODeadline?) {
        (resumesRead(), deadlines.soonest)
    }

    /// The timer went off: whatever deadline has passed is acted on, one at a time (the timer is due again at once
    /// while another has passed).
    mutating func timerFired(now: NIODeadline) -> Action {
        if let stalled = deadlines.stalled, stalled <= now {
            // The client read nothing of what it was sent for a whole body_timeout: it holds this connection (and an
            // upstream one) for nothing.
            deadlines.stalled = nil
            return .close(.clientStalled)
        }
        if let closing = deadlines.closing, closing <= now {
            deadlines.closing = nil
            return .close(.closingTimedOut)
        }
        if let deadline = deadlines.response, deadline <= now, case .forwarding(var exchange) = state {
            deadlines.response = nil
            exchange.timedOut = true
            state = .forwarding(exchange)
            return .closeUpstream
        }
        // Not reading is Detour waiting (on an upstream, a decision, a response): the client is not late.
        if !wantsRead, deadlines.read != nil { deadlines.read = now + limits.bodyTimeout }
        if let deadline = deadlines.read, deadline <= now { return readTimedOut(now: now) }
        return .none
    }

    /// The client did not send in time: a connection between requests just closes; a request whose body stopped
    /// gets a 408 (RFC 9110 15.5.9) when no response has started, then the connection closes.
    private mutating func readTimedOut(now: @autoclosure () -> NIODeadline) -> Action {
        deadlines.read = nil
        let head: HTTPRequestHead
        var closesUpstream = false
        switch state {
        case .collecting(let request, _, _, _, _), .upgrading(_, let request, _):
            head = request
        case .forwarding(let exchange) where exchange.response == nil:
            head = exchange.request
            closesUpstream = true
        default:
            return .close(.clientTooSlow)
        }
        state = .discarding
        return refuse(
            ConnectionError.tooSlow, for: head, now: now(), closesUpstream: closesUpstream, note: .clientTooSlow)
    }

    // MARK: Detour's own responses

    /// Answers with an error page or JSON, as the client reads them; by default the connection then closes.
    mutating func refuse(
        _ error: some ResponseError, for request: HTTPRequestHead, closing: Bool = true,
        now: @autoclosure () -> NIODeadline,
        closesUpstream: Bool = false, note: Note? = nil
    ) -> Action {
        let client = ClientKind.classify(method: request.method.rawValue, header: { request.headers.first(name: $0) })
        var answer = error.answer(method: request.method.rawValue, client: client)
        // The access log names what Detour refused, so that its 502 never reads as the upstream's.
        answer.note = AccessNote(decision: error.code)
        return respond(answer, to: request, closing: closing, now: now(), closesUpstream: closesUpstream, note: note)
    }

    /// A whole answer. One with a header value that cannot be sent (a claim with a line break in a forward-auth
    /// answer) becomes a 502 page.
    private mutating func respond(
        _ answer: Answer, to request: HTTPRequestHead, closing: Bool, now: @autoclosure () -> NIODeadline,
        closesUpstream: Bool = false, note: Note? = nil
    ) -> Action {
        if let invalid = ProxyHeaders.firstInvalidValue(in: answer.headers) {
            return refuse(
                RequestRefusal.unsendableHeader, for: request, closing: closing, now: now(),
                closesUpstream: closesUpstream, note: .unsendableHeader(invalid))
        }
        let closes = closing || quiescing
        let response = OwnResponse(
            answer: answer, request: request, closes: closes, then: finish(closing: closing, now: now()),
            closesUpstream: closesUpstream, note: note)
        return .respond(response)
    }

    /// What follows a written response, and the state it leaves.
    mutating func finish(closing: Bool, now: @autoclosure () -> NIODeadline) -> Ending {
        deadlines.response = nil
        if case .discarding = state {
            // Told `Connection: close`; the client may still be sending: the rest is read (for a while), then closed.
            deadlines.closing = now() + Self.discardTime
            return .drain
        }
        if closing || quiescing {
            // Closed once the response is written; a client that does not take it is not waited for longer than for a
            // body.
            state = .discarding
            deadlines.closing = now() + limits.bodyTimeout
            return .close
        }
        state = .idle
        deadlines.read = now() + limits.idleTimeout
        return .readNext
    }

    /// Whether a request announces a body: chunked, or a `Content-Length` other than 0 (the parser refused any
    /// other framing, and two lengths that disagree).
    static func hasBody(_ head: HTTPRequestHead) -> Bool {
        head.headers.contains(name: "transfer-encoding") || head.headers["content-length"].contains { Int($0) != 0 }
    }
}

extension HTTPRequestHead {
    /// Whether the connection stays open after this request: HTTP/1.1's keep-alive rules, and always for an HTTP/2
    /// stream (whose end is the stream's, not the connection's; SwiftNIO's `isKeepAlive` knows HTTP/1 only).
    var keepsConnection: Bool { version.major >= 2 || isKeepAlive }
}

extension HTTPServerRequestPart {
    fileprivate var isHead: Bool {
        if case .head = self { true } else { false }
    }
}
