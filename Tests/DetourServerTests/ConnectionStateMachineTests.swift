import DetourGateway
import NIOCore
import NIOHTTP1
import Testing

@testable import DetourServer

/// Every state of ``ConnectionStateMachine`` (idle, resolving, collecting, answering, forwarding, upgrading,
/// discarding, closed), its way in and out, and each deadline it keeps, with the machine alone: no channel, no clock.
@Suite struct ConnectionStateMachineTests {
    typealias F = ConnectionFixture
    let t = F.start

    func machine() -> ConnectionStateMachine { ConnectionStateMachine(limits: F.limits, now: t) }

    /// A machine forwarding `head` whose upstream connection is attached.
    func forwarding(_ head: HTTPRequestHead = F.head(), reused: Bool = false) -> ConnectionStateMachine {
        var machine = machine()
        _ = machine.received(.head(head), now: t)
        _ = machine.dispatched(.proxy(F.plan()), for: head, now: t)
        _ = machine.upstreamReady(exchange: 1, reused: reused, writable: true, now: t)
        return machine
    }

    // MARK: idle

    @Test func idleAsksTheDispatcherAndWaitsForTheHeadWithinTheHeaderTimeout() {
        var machine = machine()
        #expect(machine.nextDeadline == t + .seconds(10))
        #expect(machine.wantsRead)
        #expect(machine.received(.head(F.head(.GET, "/a")), now: t).spelled == "dispatch GET /a")
        #expect(machine.nextDeadline == t + .seconds(20), "a head starts the body's clock")
    }

    @Test func idleConnectionThatSendsNothingIsClosedAtItsDeadline() {
        var machine = machine()
        #expect(machine.timerFired(now: t + .seconds(9)).spelled == "none")
        #expect(machine.timerFired(now: t + .seconds(10)).spelled == "close clientTooSlow")
    }

    @Test func idleRefusesAHeadTwoServersCouldReadTwoWaysThenDrainsIt() {
        var machine = machine()
        let twoHosts = F.head(.POST, "/", [("Host", "evil"), ("Content-Length", "3")])
        #expect(machine.received(.head(twoHosts), now: t).spelled == "respond 400 drain close")
        guard case .discarding = machine.state else {
            Issue.record("\(machine.state)")
            return
        }
        #expect(machine.wantsRead, "the rest of the request is read and dropped")
        #expect(machine.received(.body(F.bytes("abc")), now: t).spelled == "none")
        #expect(machine.received(.end(nil), now: t).spelled == "close drained")
    }

    @Test func drainingEndsAfterTheDiscardTimeEvenIfTheBodyNeverEnds() {
        var machine = machine()
        _ = machine.received(.head(F.head(.POST, "/", [("Transfer-Encoding", "gzip, chunked")])), now: t)
        #expect(machine.nextDeadline == t + ConnectionStateMachine.discardTime)
        #expect(machine.timerFired(now: t + .seconds(5)).spelled == "close closingTimedOut")
    }

    @Test func aClientThatReadsNothingHoldsNoHeadUntilItReadsAndIsClosedAfterABodyTimeout() {
        var machine = machine()
        machine.clientWritabilityChanged(writable: false, now: t)
        #expect(!machine.wantsRead)
        #expect(machine.received(.head(F.head(.GET, "/next")), now: t).spelled == "none", "the head waits")
        machine.clientWritabilityChanged(writable: true, now: t)
        #expect(machine.nextPipelined(now: t)?.spelled == "dispatch GET /next")
        machine.clientWritabilityChanged(writable: false, now: t + .seconds(1))
        #expect(machine.timerFired(now: t + .seconds(21)).spelled == "close clientStalled")
    }

    @Test func aReadAskedForWhileNotReadingWaitsForTheState() {
        var machine = machine()
        machine.clientWritabilityChanged(writable: false, now: t)
        let readsNow = machine.readRequested()
        let resumesWhileStalled = machine.resumesRead()
        machine.clientWritabilityChanged(writable: true, now: t)
        let resumes = machine.resumesRead()
        let resumesAgain = machine.resumesRead()
        #expect(!readsNow)
        #expect(!resumesWhileStalled)
        #expect(resumes)
        #expect(!resumesAgain, "a waiting read goes ahead once")
    }

    // MARK: resolving

    @Test func resolvingHoldsTheBodyUntilTheDecisionThenForwardsIt() {
        var machine = machine()
        let head = F.head(.POST, "/", [("Content-Length", "3")])
        _ = machine.received(.head(head), now: t)
        #expect(machine.dispatched(.later { F.answering }, for: head, now: t).spelled == "decide")
        #expect(!machine.wantsRead)
        #expect(machine.received(.body(F.bytes("abc")), now: t).spelled == "none")
        #expect(machine.received(.end(nil), now: t).spelled == "none")
        #expect(machine.nextPipelined(now: t) == nil, "nothing is served while the decision is made")
        #expect(
            machine.timerFired(now: t + .seconds(20)).spelled == "none", "waiting on Detour is not the client's fault")
        #expect(machine.decided(.proxy(F.plan()), now: t).spelled == "connect #1")
        #expect(machine.nextPipelined(now: t) == nil, "the body waits for the upstream connection too")
        let start = machine.upstreamReady(exchange: 1, reused: false, writable: true, now: t)
        #expect(start?.head.uri == "/upstream")
        #expect(start?.ended == false)
        #expect(machine.nextPipelined(now: t)?.spelled == "send body 3")
        #expect(machine.nextPipelined(now: t)?.spelled == "send end flush")
        #expect(machine.nextPipelined(now: t) == nil)
    }

    @Test func aDecisionForAClosedConnectionDoesNothing() {
        var machine = machine()
        _ = machine.received(.head(F.head()), now: t)
        _ = machine.dispatched(.later { F.answering }, for: F.head(), now: t)
        machine.closed()
        #expect(machine.decided(F.answering, now: t).spelled == "none")
        #expect(!machine.wantsRead)
    }

    // MARK: collecting and answering

    @Test func collectingReadsTheBodyWholeThenAnswersOffTheLoop() {
        var machine = machine()
        let head = F.head(.POST, "/oauth2/sign_out", [("Content-Length", "5")])
        _ = machine.received(.head(head), now: t)
        #expect(machine.dispatched(F.answering, for: head, now: t).spelled == "none")
        #expect(machine.received(.body(F.bytes("ab")), now: t).spelled == "none")
        #expect(machine.received(.body(F.bytes("cde")), now: t).spelled == "none")
        #expect(machine.received(.end(nil), now: t).spelled == "answer POST body 5")
        #expect(machine.nextDeadline == nil, "Detour owes the next step")
        let answer = machine.answered(Answer(status: 200, body: "ok"), now: t + .seconds(1))
        #expect(answer.spelled == "respond 200 readNext")
        #expect(machine.nextDeadline == t + .seconds(31), "the idle timeout runs from the response")
    }

    @Test func collectingTooLargeABodyIsA413() {
        var machine = machine()
        let head = F.head(.POST, "/", [("Transfer-Encoding", "chunked")])
        _ = machine.received(.head(head), now: t)
        _ = machine.dispatched(F.answering, for: head, now: t)
        _ = machine.received(.body(F.bytes(String(repeating: "x", count: 51))), now: t)
        #expect(machine.received(.end(nil), now: t).spelled == "respond 413 close close")
    }

    /// Issue 16: a matrix answer (the plain listener's 308, a 401) needs no body: a body of any size is not read
    /// into memory nor refused as too large; it is drained after the answer, then the connection closes.
    @Test func anAnswerFromTheHeadIsGivenAtOnceAndTheBodyDrained() {
        var machine = machine()
        let head = F.head(.POST, "/upload", [("Content-Length", "1000000")])
        _ = machine.received(.head(head), now: t)
        let answer = Answer(status: 308, headers: [("Location", "https://app/upload")])
        #expect(machine.dispatched(.answer(answer), for: head, now: t).spelled == "respond 308 drain close")
        #expect(machine.received(.body(F.bytes(String(repeating: "x", count: 500))), now: t).spelled == "none")
        #expect(machine.received(.end(nil), now: t).spelled == "close drained")
        var bodiless = self.machine()
        _ = bodiless.received(.head(F.head(.GET, "/x")), now: t)
        #expect(bodiless.dispatched(.answer(answer), for: F.head(.GET, "/x"), now: t).spelled == "respond 308 readNext")
        #expect(bodiless.received(.end(nil), now: t).spelled == "none")
        #expect(bodiless.nextDeadline == t + .seconds(30), "the request's end leaves the idle timeout running")
    }

    @Test func collectingABodyThatStopsIsA408() {
        var machine = machine()
        let head = F.head(.POST, "/", [("Content-Length", "9")])
        _ = machine.received(.head(head), now: t)
        _ = machine.dispatched(F.answering, for: head, now: t)
        _ = machine.received(.body(F.bytes("abc")), now: t + .seconds(5))
        #expect(machine.timerFired(now: t + .seconds(24)).spelled == "none")
        #expect(machine.timerFired(now: t + .seconds(25)).spelled == "respond 408 drain close")
    }

    @Test func answeringHoldsAPipelinedRequestUntilTheAnswerIsWritten() {
        var machine = machine()
        _ = machine.received(.head(F.head(.GET, "/one")), now: t)
        _ = machine.dispatched(F.answering, for: F.head(), now: t)
        _ = machine.received(.end(nil), now: t)
        #expect(machine.received(.head(F.head(.GET, "/two")), now: t).spelled == "none")
        #expect(machine.received(.end(nil), now: t).spelled == "none")
        #expect(machine.nextPipelined(now: t) == nil)
        #expect(machine.answered(Answer(status: 200), now: t).spelled == "respond 200 readNext")
        #expect(machine.nextPipelined(now: t)?.spelled == "dispatch GET /two")
    }

    @Test func answeringAClientThatAsksToCloseCloses() {
        var machine = machine()
        let head = F.head(.GET, "/", [("Connection", "close")])
        _ = machine.received(.head(head), now: t)
        _ = machine.dispatched(F.answering, for: head, now: t)
        _ = machine.received(.end(nil), now: t)
        #expect(machine.answered(Answer(status: 200), now: t).spelled == "respond 200 close close")
        #expect(machine.nextDeadline == t + .seconds(20), "a client that does not take the response is not waited for")
        #expect(machine.timerFired(now: t + .seconds(20)).spelled == "close closingTimedOut")
    }

    @Test func anAnswerWithAHeaderThatCannotBeSentBecomesA502() {
        var machine = machine()
        _ = machine.received(.head(F.head()), now: t)
        _ = machine.dispatched(F.answering, for: F.head(), now: t)
        _ = machine.received(.end(nil), now: t)
        let action = machine.answered(
            Answer(status: 202, headers: [("X-Auth-Request-User", "a\r\nSet-Cookie: x")]), now: t)
        guard case .respond(let response) = action else {
            Issue.record("\(action.spelled)")
            return
        }
        #expect(response.answer.status == 502)
        #expect(response.note == .unsendableHeader("X-Auth-Request-User"))
        #expect(!response.answer.headers.contains { $0.value.contains("\n") })
    }

    // MARK: forwarding

    @Test func forwardingAKeptAliveExchangeHandsTheConnectionBackToThePool() {
        var machine = machine()
        _ = machine.received(.head(F.head()), now: t)
        #expect(machine.dispatched(.proxy(F.plan()), for: F.head(), now: t).spelled == "connect #1")
        #expect(!machine.wantsRead, "nothing more is read until the upstream connection is ready")
        #expect(machine.received(.end(nil), now: t).spelled == "none")
        #expect(machine.upstreamReady(exchange: 1, reused: false, writable: true, now: t)?.ended == false)
        #expect(machine.nextPipelined(now: t)?.spelled == "send end flush")
        #expect(machine.nextDeadline == t + .seconds(40), "the response is due within its timeout")
        #expect(machine.wantsRead)
        let head = machine.upstreamReceived(.head(F.response(.ok, [("Content-Length", "2")])), now: t)
        #expect(head.spelled == "head 200")
        #expect(machine.nextDeadline == nil)
        #expect(machine.upstreamReceived(.body(F.bytes("ok")), now: t).spelled == "body 2")
        #expect(machine.upstreamReceived(.end(nil), now: t + .seconds(1)).spelled == "end readNext pool")
        #expect(machine.nextDeadline == t + .seconds(31))
        guard case .idle = machine.state else {
            Issue.record("\(machine.state)")
            return
        }
    }

    @Test func forwardingSendsTheBodyAsItComesAndStopsReadingWhileTheUpstreamCannotWrite() {
        var machine = forwarding(F.head(.POST, "/", [("Content-Length", "6")]))
        #expect(machine.received(.body(F.bytes("abc")), now: t).spelled == "send body 3")
        machine.upstreamWritabilityChanged(writable: false)
        #expect(!machine.wantsRead)
        machine.upstreamWritabilityChanged(writable: true)
        #expect(machine.wantsRead)
        #expect(machine.received(.body(F.bytes("def")), now: t).spelled == "send body 3")
        #expect(machine.received(.end(HTTPHeaders([("X-Trailer", "x")])), now: t).spelled == "send end flush")
    }

    @Test func forwardingFramesABodyOfUnknownLengthInChunksOrByClosingForHTTP10() {
        var machine = forwarding()
        _ = machine.received(.end(nil), now: t)
        #expect(
            machine.upstreamReceived(.head(F.response(.ok)), now: t).spelled == "head 200 Transfer-Encoding: chunked")
        #expect(machine.upstreamReceived(.body(F.bytes("x")), now: t).spelled == "body 1 chunked")

        var old = forwarding(F.head(.GET, "/", version: .http1_0, [("Connection", "keep-alive")]))
        _ = old.received(.end(nil), now: t)
        #expect(old.upstreamReceived(.head(F.response(.ok)), now: t).spelled == "head 200 Connection: close")
        #expect(old.upstreamReceived(.end(nil), now: t).spelled == "end close pool")
    }

    @Test func forwardingPassesContinueButNotASwitchWithoutAnUpgrade() {
        var machine = forwarding()
        #expect(machine.upstreamReceived(.head(F.response(.continue)), now: t).spelled == "head 100")
        #expect(machine.upstreamReceived(.head(F.response(.switchingProtocols)), now: t).spelled == "none")
    }

    @Test func forwardingABodyLongerThanTheLimitIsA413BeforeOrWhileItIsSent() {
        var machine = machine()
        let announced = F.head(.POST, "/", [("Content-Length", "101")])
        _ = machine.received(.head(announced), now: t)
        #expect(machine.dispatched(.proxy(F.plan()), for: announced, now: t).spelled == "respond 413 drain close")

        var streaming = forwarding(F.head(.POST, "/", [("Transfer-Encoding", "chunked")]))
        #expect(streaming.received(.body(F.bytes(String(repeating: "x", count: 60))), now: t).spelled == "send body 60")
        let over = streaming.received(.body(F.bytes(String(repeating: "x", count: 41))), now: t)
        #expect(over.spelled == "respond 413 drain close +upstream")
    }

    @Test func forwardingAnAnswerBeforeTheBodyEndsClosesAfterIt() {
        var machine = forwarding(F.head(.POST, "/", [("Content-Length", "6")]))
        _ = machine.received(.body(F.bytes("abc")), now: t)
        let head = machine.upstreamReceived(.head(F.response(.unauthorized, [("Content-Length", "0")])), now: t)
        #expect(head.spelled == "head 401 Connection: close")
        #expect(machine.upstreamReceived(.end(nil), now: t).spelled == "end drain close-upstream")
        #expect(machine.received(.body(F.bytes("def")), now: t).spelled == "none")
        #expect(machine.received(.end(nil), now: t).spelled == "close drained")
    }

    @Test func forwardingRetriesAStalePooledConnectionOnceOnANewOne() {
        var machine = forwarding(reused: true)
        _ = machine.received(.end(nil), now: t)
        #expect(machine.upstreamClosed(now: t).spelled == "connect #1 fresh")
        let start = machine.upstreamReady(exchange: 1, reused: false, writable: true, now: t)
        #expect(start?.ended == true, "the retried request is sent whole again")
        #expect(machine.upstreamClosed(now: t).spelled == "respond 502 readNext")
    }

    /// Row A2b: a kept form goes upstream whole with the head, on a fresh connection; the client's own body (the
    /// confirmation button's) is read and dropped; and the request is never sent twice.
    @Test func forwardingABodyDetourHoldsSendsItOnceInPlaceOfTheClients() {
        var machine = machine()
        let head = F.head(.POST, "/", [("Content-Length", "7")])
        var plan = F.plan()
        plan.body = F.bytes("kept=1")
        _ = machine.received(.head(head), now: t)
        #expect(machine.dispatched(.proxy(plan), for: head, now: t).spelled == "connect #1 fresh")
        let start = machine.upstreamReady(exchange: 1, reused: false, writable: true, now: t)
        #expect(start?.body == F.bytes("kept=1") && start?.ended == true, "head, the kept body and the end at once")
        #expect(machine.received(.body(F.bytes("token=")), now: t).spelled == "none", "the client's body is dropped")
        #expect(machine.received(.end(nil), now: t).spelled == "none", "the upstream's request has ended already")
        #expect(machine.nextDeadline == t + .seconds(40), "the response was due from the start")
        #expect(machine.upstreamClosed(now: t).spelled == "respond 502 readNext", "never retried")
    }

    @Test func forwardingNoResponseWithinTheTimeoutIsA504() {
        var machine = forwarding()
        _ = machine.received(.end(nil), now: t)
        #expect(machine.timerFired(now: t + .seconds(39)).spelled == "none")
        #expect(machine.timerFired(now: t + .seconds(40)).spelled == "close upstream")
        #expect(machine.upstreamClosed(now: t + .seconds(40)).spelled == "respond 504 readNext")
    }

    @Test func forwardingAnUnreachableUpstreamIsA502OrA504AndALateConnectionIsRefused() {
        var machine = machine()
        _ = machine.received(.head(F.head()), now: t)
        _ = machine.dispatched(.proxy(F.plan()), for: F.head(), now: t)
        #expect(machine.upstreamUnreachable(exchange: 1, timedOut: true, now: t).spelled == "respond 504 drain close")
        #expect(machine.upstreamReady(exchange: 1, reused: false, writable: true, now: t) == nil)

        var ended = self.machine()
        _ = ended.received(.head(F.head()), now: t)
        _ = ended.dispatched(.proxy(F.plan()), for: F.head(), now: t)
        _ = ended.received(.end(nil), now: t)
        #expect(ended.upstreamUnreachable(exchange: 1, timedOut: false, now: t).spelled == "respond 502 readNext")
    }

    @Test func forwardingAFailureAfterTheResponseStartedClosesTheClient() {
        var machine = forwarding()
        _ = machine.received(.end(nil), now: t)
        _ = machine.upstreamReceived(.head(F.response(.ok, [("Content-Length", "9")])), now: t)
        #expect(machine.upstreamClosed(now: t).spelled == "close failedMidResponse")
        #expect(machine.parserFailed(.invalidMethod).spelled == "close unparsable")
    }

    @Test func forwardingABodyThatStopsIsA408AndItsUpstreamClosed() {
        var machine = forwarding(F.head(.POST, "/", [("Content-Length", "6")]))
        _ = machine.received(.body(F.bytes("abc")), now: t)
        #expect(machine.timerFired(now: t + .seconds(20)).spelled == "respond 408 drain close +upstream")
    }

    // MARK: upgrading

    @Test func upgradingAsksTheUpstreamAtTheEndOfTheRequestAndAnswersARefusal() {
        let upgrade = F.head(.GET, "/ws", [("Connection", "Upgrade"), ("Upgrade", "websocket")])
        var machine = machine()
        _ = machine.received(.head(upgrade), now: t)
        #expect(machine.dispatched(.proxy(F.plan()), for: upgrade, now: t).spelled == "none")
        #expect(machine.received(.end(nil), now: t).spelled == "tunnel")
        #expect(machine.received(.end(nil), now: t).spelled == "close outOfOrder", "the upstream is asked once")
        #expect(machine.upgradeFailed(.upgradeRefused, now: t).spelled == "respond 502 close close")
    }

    @Test func upgradingWithABodyIsRefused() {
        let upgrade = F.head(
            .GET, "/ws", [("Connection", "upgrade"), ("Upgrade", "websocket"), ("Content-Length", "1")])
        var machine = machine()
        _ = machine.received(.head(upgrade), now: t)
        #expect(machine.dispatched(.proxy(F.plan()), for: upgrade, now: t).spelled == "respond 400 drain close")
    }

    // MARK: closing

    @Test func quiescingClosesAnIdleConnectionNowAndABusyOneAfterItsResponse() {
        var idle = machine()
        #expect(idle.quiesce().spelled == "close quiescing")

        var busy = forwarding()
        _ = busy.received(.end(nil), now: t)
        #expect(busy.quiesce().spelled == "none")
        let head = busy.upstreamReceived(.head(F.response(.ok, [("Content-Length", "0")])), now: t)
        #expect(head.spelled == "head 200 Connection: close")
        #expect(busy.upstreamReceived(.end(nil), now: t).spelled == "end close pool")
    }

    @Test func quiescingKeepsAPipelinedRequestOutOfTheExchangeInFlight() {
        var machine = forwarding()
        _ = machine.received(.end(nil), now: t)
        let next = F.head(.POST, "/admin", [("Content-Length", "60")])
        #expect(machine.received(.head(next), now: t).spelled == "none")
        #expect(machine.quiesce().spelled == "none")
        #expect(!machine.wantsRead, "the waiting request is neither read further nor dropped")
        #expect(machine.received(.body(F.bytes("GET /admin HTTP/1.1\r\n")), now: t).spelled == "none")
        #expect(machine.received(.end(nil), now: t).spelled == "none")
        _ = machine.upstreamReceived(.head(F.response(.ok, [("Content-Length", "0")])), now: t)
        #expect(machine.upstreamReceived(.end(nil), now: t).spelled == "end close pool")
        #expect(machine.nextPipelined(now: t) == nil, "the connection closes with the request unserved")
    }

    @Test func aPartBehindTheEndOfAForwardedRequestClosesTheConnection() {
        var machine = forwarding()
        #expect(machine.received(.end(nil), now: t).spelled == "send end flush")
        #expect(machine.received(.body(F.bytes("GET /admin HTTP/1.1\r\n\r\n")), now: t).spelled == "close outOfOrder")
    }

    @Test func unparsableBytesAreAnsweredThenTheConnectionIsClosed() {
        var machine = machine()
        #expect(machine.parserFailed(.headerOverflow).spelled == "unparsable 431")
        #expect(!machine.wantsRead)
        var other = self.machine()
        #expect(other.parserFailed(.invalidVersion).spelled == "unparsable 400")
    }

    @Test func unparsableBytesBehindAnEndedRequestCloseWithoutAnsweringTheWrongRequest() {
        var forwarded = forwarding()
        _ = forwarded.received(.end(nil), now: t)
        #expect(forwarded.parserFailed(.invalidMethod).spelled == "close unparsable")

        var answering = machine()
        _ = answering.received(.head(F.head()), now: t)
        _ = answering.dispatched(F.answering, for: F.head(), now: t)
        _ = answering.received(.end(nil), now: t)
        #expect(answering.parserFailed(.invalidMethod).spelled == "close unparsable")

        var resolving = machine()
        _ = resolving.received(.head(F.head()), now: t)
        _ = resolving.dispatched(.later { F.answering }, for: F.head(), now: t)
        _ = resolving.received(.end(nil), now: t)
        #expect(resolving.parserFailed(.invalidMethod).spelled == "close unparsable")

        var collecting = machine()
        let post = F.head(.POST, "/", [("Transfer-Encoding", "chunked")])
        _ = collecting.received(.head(post), now: t)
        _ = collecting.dispatched(F.answering, for: post, now: t)
        #expect(collecting.parserFailed(.invalidChunkSize).spelled == "unparsable 400", "a bad body of this request")
    }

    @Test func aClosedConnectionIgnoresLateEvents() {
        var machine = forwarding()
        machine.closed()
        #expect(machine.upstreamReceived(.head(F.response(.ok)), now: t).spelled == "none")
        #expect(machine.upstreamClosed(now: t).spelled == "none")
        #expect(machine.answered(Answer(status: 200), now: t).spelled == "none")
        #expect(machine.received(.head(F.head()), now: t).spelled == "none")
        #expect(!machine.wantsRead)
        #expect(machine.nextDeadline == nil, "no timer for a closed connection")
    }
}
