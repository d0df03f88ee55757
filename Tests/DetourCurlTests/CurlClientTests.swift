import DetourCurl
import Foundation
import Testing

@Suite struct CurlClientTests {
    struct Stats: Decodable {
        let hits: [String: Int]
        let connections: Int
        let maxInFlight: Int

        enum CodingKeys: String, CodingKey {
            case hits, connections
            case maxInFlight = "max_in_flight"
        }
    }

    static func stats(_ server: FixtureServer, _ client: CurlClient) async throws -> Stats {
        try JSONDecoder().decode(
            Stats.self, from: Data(try await client.send(HTTPRequest(url: server.url("/stats"))).body))
    }

    @Test func getsAResponse() async throws {
        let server = try FixtureServer()
        let response = try await CurlClient().send(HTTPRequest(url: server.url("/json")))
        #expect(response.status == 200)
        #expect(String(decoding: response.body, as: UTF8.self) == #"{"ok":true}"#)
        #expect(response.header("content-type") == "application/json")
    }

    @Test func postsABodyWithHeadersAndNoExpectContinue() async throws {
        let server = try FixtureServer()
        let body = Array("grant_type=authorization_code&code=abc".utf8)
        let response = try await CurlClient().send(
            HTTPRequest(
                method: "POST", url: server.url("/echo"),
                headers: [("Content-Type", "application/x-www-form-urlencoded"), ("Authorization", "Basic eDp5")],
                body: body))
        let echo = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
        let headers = echo?["headers"] as? [String: String]
        #expect(echo?["method"] as? String == "POST")
        #expect(echo?["body"] as? String == "grant_type=authorization_code&code=abc")
        #expect(headers?["authorization"] == "Basic eDp5")
        #expect(headers?["expect"] == nil)
    }

    @Test func sendsOtherMethods() async throws {
        let server = try FixtureServer()
        let response = try await CurlClient().send(HTTPRequest(method: "DELETE", url: server.url("/echo")))
        let echo = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
        #expect(echo?["method"] as? String == "DELETE")
    }

    @Test(arguments: [301, 302, 303, 307, 308])
    func neverFollowsARedirect(status: Int) async throws {
        let server = try FixtureServer()
        let client = CurlClient()
        await #expect(throws: CurlError(.redirectRefused, "")) {
            try await client.send(HTTPRequest(method: "POST", url: server.url("/redirect/\(status)"), body: [1, 2, 3]))
        }
        #expect(try await Self.stats(server, client).hits["/json"] == nil, "the Location was not requested")
    }

    @Test func refusesResponsesOverTheSizeLimit() async throws {
        let server = try FixtureServer()
        let client = CurlClient(options: .init(maximumResponseSize: 1000))
        #expect(try await client.send(HTTPRequest(url: server.url("/big?bytes=1000"))).body.count == 1000)
        await #expect(throws: CurlError(.responseTooLarge, "")) {
            try await client.send(HTTPRequest(url: server.url("/big?bytes=1001")))
        }
    }

    @Test func timesOut() async throws {
        let server = try FixtureServer()
        let client = CurlClient(options: .init(timeout: .milliseconds(200)))
        await #expect(throws: CurlError(.timedOut, "")) {
            try await client.send(HTTPRequest(url: server.url("/slow?ms=2000")))
        }
    }

    @Test func reportsARefusedConnection() async throws {
        let port: Int
        do {
            let server = try FixtureServer()
            port = server.port
        }
        await #expect(throws: CurlError(.connectFailed, "")) {
            try await CurlClient().send(HTTPRequest(url: "http://127.0.0.1:\(port)/json"))
        }
    }

    @Test(arguments: ["file:///etc/passwd", "ftp://127.0.0.1/", "gopher://127.0.0.1/"])
    func speaksOnlyHTTP(url: String) async throws {
        await #expect(throws: CurlError(.unsupportedURL, "")) { try await CurlClient().send(HTTPRequest(url: url)) }
    }

    @Test func cancellationEndsATransferAtOnce() async throws {
        let server = try FixtureServer()
        let client = CurlClient()
        let task = Task { try await client.send(HTTPRequest(url: server.url("/slow?ms=5000"))) }
        try await Task.sleep(for: .milliseconds(200))
        task.cancel()
        let clock = ContinuousClock()
        let start = clock.now
        await #expect(throws: CurlError(.cancelled, "")) { try await task.value }
        #expect(clock.now - start < .seconds(3), "the transfer did not wait for the server's 5 seconds")
    }

    @Test func anAlreadyCancelledTaskSendsNothing() async throws {
        let server = try FixtureServer()
        let client = CurlClient()
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await client.send(HTTPRequest(url: server.url("/json")))
        }
        await #expect(throws: CurlError(.cancelled, "")) { try await task.value }
        #expect(try await Self.stats(server, client).hits["/json"] == nil)
    }

    @Test func runsTransfersConcurrently() async throws {
        let server = try FixtureServer()
        let client = CurlClient()
        try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<20 {
                group.addTask { try await client.send(HTTPRequest(url: server.url("/slow?ms=300"))).status }
            }
            for try await status in group { #expect(status == 200) }
        }
        #expect(try await Self.stats(server, client).maxInFlight >= 5)
    }

    @Test func reusesConnections() async throws {
        let server = try FixtureServer()
        let client = CurlClient()
        for _ in 0..<10 { _ = try await client.send(HTTPRequest(url: server.url("/json"))) }
        #expect(try await Self.stats(server, client).connections == 1)
    }

    @Test func verifiesTLSAndHonoursTheCAFile() async throws {
        let certificate = try SelfSignedCertificate()
        let server = try FixtureServer(tls: (certificate.certificate, certificate.key))
        await #expect(throws: CurlError(.tlsFailed, "")) {
            try await CurlClient().send(HTTPRequest(url: server.url("/json", host: "localhost")))
        }
        let trusting = CurlClient(options: .init(caFile: certificate.certificate))
        #expect(try await trusting.send(HTTPRequest(url: server.url("/json", host: "localhost"))).status == 200)
    }
}
