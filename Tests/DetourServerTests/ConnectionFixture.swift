import DetourGateway
import NIOCore
import NIOHTTP1

@testable import DetourServer

/// Requests, plans and a readable spelling of the connection machine's actions, for the tests of
/// ``ConnectionStateMachine`` and ``RequestHandler``.
enum ConnectionFixture {
    /// A point on the connection's clock.
    static let start = NIODeadline.uptimeNanoseconds(1_000_000_000_000)

    static var limits: HTTPServer.Limits {
        var limits = HTTPServer.Limits(maximumRequestBody: 100)
        limits.headerTimeout = .seconds(10)
        limits.bodyTimeout = .seconds(20)
        limits.idleTimeout = .seconds(30)
        limits.maximumEndpointBody = 50
        return limits
    }

    static func head(
        _ method: HTTPMethod = .GET, _ uri: String = "/", version: HTTPVersion = .http1_1,
        _ headers: [(String, String)] = []
    ) -> HTTPRequestHead {
        HTTPRequestHead(version: version, method: method, uri: uri, headers: HTTPHeaders([("Host", "app")] + headers))
    }

    static func plan(port: Int = 8080, response: TimeAmount = .seconds(40)) -> ProxyPlan {
        ProxyPlan(
            host: "127.0.0.1", port: port, head: head(.GET, "/upstream"),
            rewriteResponse: { ClientResponseHead(passing: $0) },
            timeouts: UpstreamTimeouts(connect: .seconds(1), response: response), tls: nil)
    }

    static let answering: Dispatch = .respond { request in
        Answer(status: 200, headers: [("Content-Type", "text/plain")], body: "\(request.method) \(request.body.count)")
    }

    static func bytes(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    static func response(_ status: HTTPResponseStatus, _ headers: [(String, String)] = []) -> HTTPResponseHead {
        HTTPResponseHead(version: .http1_1, status: status, headers: HTTPHeaders(headers))
    }
}

extension ConnectionStateMachine.Action {
    /// The action in a few words, for comparing in tests (actions carry closures, so are not `Equatable`).
    var spelled: String {
        switch self {
        case .none: "none"
        case .dispatch(let head): "dispatch \(head.method) \(head.uri)"
        case .decide: "decide"
        case .answer(let request, _): "answer \(request.method) body \(request.body.count)"
        case .respond(let response):
            "respond \(response.answer.status) \(response.then)" + (response.closes ? " close" : "")
                + (response.closesUpstream ? " +upstream" : "")
        case .connect(_, _, let exchange, let fresh): "connect #\(exchange)" + (fresh ? " fresh" : "")
        case .send(let part, let flush): "send \(part.spelled)" + (flush ? " flush" : "")
        case .writeHead(let head, _):
            "head \(head.status.code)" + head.added.map { " \($0.name): \($0.value)" }.joined()
        case .writeBody(let chunk, let chunked): "body \(chunk.readableBytes)" + (chunked ? " chunked" : "")
        case .endResponse(let end): "end \(end.then)" + (end.keepsUpstream ? " pool" : " close-upstream")
        case .closeUpstream: "close upstream"
        case .openTunnel: "tunnel"
        case .refuseUnparsable(let status): "unparsable \(status.code)"
        case .close(let reason): "close \(reason)"
        }
    }
}

extension HTTPClientRequestPart {
    var spelled: String {
        switch self {
        case .head(let head): "head \(head.uri)"
        case .body(let body): "body \(body.readableBytes)"
        case .end: "end"
        }
    }
}
