import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import DetourServer

/// The pool forgets upstreams no request asks for any more (a reload changed a route's upstream or TLS): their idle
/// connections are closed by the next sweep, not held until the upstream closes them.
@Suite struct UpstreamPoolTests {
    @Test func anUpstreamNoLongerAskedForIsClosedByTheNextSweep() async throws {
        let loop = NIOAsyncTestingEventLoop()
        let pool = UpstreamPool(eventLoop: loop, logger: Logger(label: "test"))
        func idleConnection(port: Int) async throws -> NIOAsyncTestingChannel {
            let key = UpstreamPool.Key(host: "127.0.0.1", port: port, tls: nil)
            let channel = try await NIOAsyncTestingChannel(loop: loop) { try pool.serve($0, key) }
            try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: port))
            try await loop.executeInContext {
                pool.giveBack(try channel.pipeline.syncOperations.handler(type: UpstreamHandler.self))
            }
            return channel
        }
        let old = try await idleConnection(port: 8080)
        let fresh = try await idleConnection(port: 8081)
        #expect(old.isActive && fresh.isActive, "a sweep closes nothing younger than the idle time")
        try await Task.sleep(for: .milliseconds(UpstreamPool.maximumIdleTime.nanoseconds / 1_000_000 + 100))
        _ = try await idleConnection(port: 8082)  // a connection given back after the idle time sweeps
        await loop.run()
        #expect(!old.isActive && !fresh.isActive)
        let forgotten = try await loop.executeInContext {
            pool.take(UpstreamPool.Key(host: "127.0.0.1", port: 8080, tls: nil)) == nil
        }
        #expect(forgotten)
    }
}
