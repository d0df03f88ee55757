import DetourGateway
import Foundation
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import DetourServer

/// ``RequestHandler`` in the pipeline ``HTTPServer`` builds, on a testing channel whose clock the test moves: bytes in,
/// bytes out, an upstream connection that is a second testing channel in the pool. What the handler performs is
/// what ``ConnectionStateMachineTests`` decides; these prove the performing.
@Suite struct RequestHandlerTests {
    typealias F = ConnectionFixture

    /// A client connection served by a ``RequestHandler``, and the pool its upstream connections come from.
    final class Connection: Sendable {
        let loop = NIOAsyncTestingEventLoop()
        let pool: UpstreamPool
        let channel: NIOAsyncTestingChannel

        init(limits: HTTPServer.Limits = F.limits, dispatcher: @escaping HTTPServer.Dispatcher) async throws {
            let pool = UpstreamPool(eventLoop: loop, logger: Logger(label: "test"))
            self.pool = pool
            channel = try await NIOAsyncTestingChannel(loop: loop) { channel in
                try HTTPServer.serve(
                    channel, limits: limits, pool: pool, logger: Logger(label: "test"), dispatcher: dispatcher)
            }
            try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 40_000))
        }

        func send(_ text: String) async throws {
            try await channel.writeInbound(ByteBuffer(string: text))
            await loop.run()
        }

        /// What the client has been sent since last asked, read until `done` holds of it (or a second has passed).
        func received(until done: (String) -> Bool) async throws -> String {
            var text = ""
            for _ in 0..<200 {
                await loop.run()
                while let buffer = try await channel.readOutbound(as: ByteBuffer.self) {
                    text += String(buffer: buffer)
                }
                if done(text) { return text }
                try await Task.sleep(for: .milliseconds(5))
            }
            return text
        }

        func responses(_ count: Int) async throws -> String {
            try await received { $0.components(separatedBy: "HTTP/1.1 ").count > count }
        }

        /// An idle upstream connection in the pool, for ``F/plan(port:response:)``.
        func pooledUpstream() async throws -> NIOAsyncTestingChannel {
            let pool = pool
            let upstream = try await NIOAsyncTestingChannel(loop: loop) { channel in
                try pool.serve(channel, UpstreamPool.Key(host: "127.0.0.1", port: 8080, tls: nil))
            }
            try await upstream.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8080))
            try await loop.executeInContext {
                pool.giveBack(try upstream.pipeline.syncOperations.handler(type: UpstreamHandler.self))
            }
            return upstream
        }

        /// What an upstream connection has been sent so far.
        func sent(to upstream: NIOAsyncTestingChannel) async throws -> String {
            await loop.run()
            var text = ""
            while case .byteBuffer(let buffer)? = try await upstream.readOutbound(as: IOData.self) {
                text += String(buffer: buffer)
            }
            return text
        }

        /// Whether an idle upstream connection waits in the pool.
        var hasPooledConnection: Bool {
            get async throws {
                try await loop.executeInContext { [pool] in
                    guard let connection = pool.take(UpstreamPool.Key(host: "127.0.0.1", port: 8080, tls: nil)) else {
                        return false
                    }
                    pool.giveBack(connection)
                    return true
                }
            }
        }
    }

    static let echo: HTTPServer.Dispatcher = { head, _ in
        .respond { request in Answer(status: 200, body: "\(request.method) \(request.target) \(request.body.count)") }
    }

    @Test func answersAnEndpointOffTheLoopAndReadsTheNextRequest() async throws {
        let connection = try await Connection(dispatcher: Self.echo)
        try await connection.send("POST /a HTTP/1.1\r\nHost: app\r\nContent-Length: 3\r\n\r\nabc")
        let text = try await connection.responses(1)
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(text.hasSuffix("\r\nContent-Length: 9\r\n\r\nPOST /a 3"))
        try await connection.send("GET /b HTTP/1.1\r\nHost: app\r\n\r\n")
        #expect(try await connection.responses(1).hasSuffix("GET /b 0"), "the connection reads the next request")
        #expect(connection.channel.isActive)
    }

    @Test func servesPipelinedRequestsInTheirOrder() async throws {
        let connection = try await Connection(dispatcher: Self.echo)
        try await connection.send(
            "GET /one HTTP/1.1\r\nHost: app\r\n\r\nGET /two HTTP/1.1\r\nHost: app\r\n\r\nGET /three HTTP/1.1\r\nHost: app\r\n\r\n"
        )
        let text = try await connection.responses(3)
        let bodies = text.components(separatedBy: "\r\n\r\n").dropFirst().map { $0.prefix { $0 != "H" } }
        #expect(bodies == ["GET /one 0", "GET /two 0", "GET /three 0"])
    }

    @Test func decidesOffTheLoopWhileTheBodyWaits() async throws {
        let connection = try await Connection(dispatcher: { _, _ in
            .later {
                Self.echo(
                    HTTPRequestHead(version: .http1_1, method: .GET, uri: "/"), ConnectionInfo(remoteAddress: nil))
            }
        })
        try await connection.send("POST /later HTTP/1.1\r\nHost: app\r\nContent-Length: 4\r\n\r\nabcd")
        let text = try await connection.responses(1)
        #expect(text.hasSuffix("POST /later 4"))
    }

    @Test func refusesAHeadTwoServersCouldReadTwoWaysAndCloses() async throws {
        let connection = try await Connection(dispatcher: Self.echo)
        try await connection.send("GET / HTTP/1.1\r\nHost: app\r\nHost: evil\r\n\r\n")
        let text = try await connection.responses(1)
        #expect(text.hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
        #expect(text.contains("\r\nConnection: close\r\n"))
        await connection.loop.run()
        #expect(!connection.channel.isActive)
    }

    @Test func aHeadOverTheLimitIs431() async throws {
        var limits = F.limits
        limits.maximumHeaderBytes = 1024
        let connection = try await Connection(limits: limits, dispatcher: Self.echo)
        try? await connection.send(
            "GET / HTTP/1.1\r\nHost: app\r\nX-Big: \(String(repeating: "x", count: 2000))\r\n\r\n")
        let text = try await connection.responses(1)
        #expect(text.hasPrefix("HTTP/1.1 431 Request Header Fields Too Large\r\n"))
        #expect(!connection.channel.isActive)
    }

    @Test func proxiesThroughAPooledConnectionAndPoolsItAgain() async throws {
        let connection = try await Connection(dispatcher: { _, _ in .proxy(F.plan()) })
        let upstream = try await connection.pooledUpstream()
        try await connection.send("GET /page HTTP/1.1\r\nHost: app\r\n\r\n")
        #expect(try await connection.sent(to: upstream).hasPrefix("GET /upstream HTTP/1.1\r\nHost: app\r\n"))
        #expect(try await !connection.hasPooledConnection, "the connection carries the exchange")
        try await upstream.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
        let text = try await connection.responses(1)
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"))
        #expect(text.hasSuffix("\r\n\r\nok"))
        #expect(try await connection.hasPooledConnection, "back in the pool after a complete exchange")
    }

    @Test func anUpstreamThatDoesNotAnswerInTimeIsA504() async throws {
        let connection = try await Connection(dispatcher: { _, _ in .proxy(F.plan(response: .seconds(40))) })
        let upstream = try await connection.pooledUpstream()
        try await connection.send("GET / HTTP/1.1\r\nHost: app\r\n\r\n")
        await connection.loop.advanceTime(by: .seconds(39))
        #expect(upstream.isActive)
        await connection.loop.advanceTime(by: .seconds(1))
        let text = try await connection.responses(1)
        #expect(text.hasPrefix("HTTP/1.1 504 Gateway Timeout\r\n"))
        #expect(!upstream.isActive)
        #expect(connection.channel.isActive, "the client's connection is kept")
    }

    @Test func aConnectionThatSendsNothingClosesAtTheHeaderTimeout() async throws {
        let connection = try await Connection(dispatcher: Self.echo)
        await connection.loop.advanceTime(by: .seconds(9))
        #expect(connection.channel.isActive)
        await connection.loop.advanceTime(by: .seconds(1))
        #expect(!connection.channel.isActive)
    }

    @Test func aBodyThatStopsIsA408() async throws {
        let connection = try await Connection(dispatcher: Self.echo)
        try await connection.send("POST / HTTP/1.1\r\nHost: app\r\nContent-Length: 10\r\n\r\nabc")
        await connection.loop.advanceTime(by: .seconds(20))
        let text = try await connection.responses(1)
        #expect(text.hasPrefix("HTTP/1.1 408 Request Timeout\r\n"))
    }

    @Test func aClientThatReadsNothingIsClosedAfterABodyTimeout() async throws {
        let connection = try await Connection(dispatcher: Self.echo)
        connection.channel.isWritable = false
        connection.channel.pipeline.fireChannelWritabilityChanged()
        await connection.loop.advanceTime(by: .seconds(19))
        #expect(connection.channel.isActive)
        await connection.loop.advanceTime(by: .seconds(1))
        #expect(!connection.channel.isActive)
    }

    @Test func drainingClosesAnIdleConnection() async throws {
        let connection = try await Connection(dispatcher: Self.echo)
        connection.channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        await connection.loop.run()
        #expect(!connection.channel.isActive)
    }
}
