import DetourGateway

/// Why a connection answered a request itself, before the gateway or in place of the upstream's answer.
struct ConnectionError: ResponseError, Hashable {
    let status: Int
    let code: String
    let message: String

    private init(_ status: Int, _ code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    /// A head two servers could read two ways (RFC 9112 6.3; CONTRACT section 7): answered, then the connection
    /// closes.
    static func malformed(_ problem: RequestFraming.Problem) -> ConnectionError {
        ConnectionError(400, "malformed-request", "The request is malformed (\(problem)).")
    }

    static let bodyTooLarge = ConnectionError(413, "body-too-large", "The request body is too large.")
    /// An opening handshake is a GET without a body (RFC 6455 4.1).
    static let upgradeWithBody = ConnectionError(
        400, "upgrade-with-body", "A WebSocket upgrade request cannot have a body.")
    static let tooSlow = ConnectionError(408, "request-timeout", "The request took too long to arrive.")
    static let upstreamFailed = ConnectionError(
        502, "upstream-failed", "The application behind Detour cannot be reached or failed to answer.")
    static let upstreamTimedOut = ConnectionError(
        504, "upstream-timeout", "The application behind Detour did not answer in time.")
    static let upgradeRefused = ConnectionError(
        502, "upgrade-refused", "The application behind Detour refused the WebSocket upgrade.")

    static func == (lhs: ConnectionError, rhs: ConnectionError) -> Bool { lhs.code == rhs.code }
    func hash(into hasher: inout Hasher) { hasher.combine(code) }
}
