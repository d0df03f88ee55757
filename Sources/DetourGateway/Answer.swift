public import DetourRedirect

/// A whole answer Detour writes itself: status, headers and a body small enough to hold.
///
/// The server adds the framing (`Content-Length`, `Connection`) and drops the body of an answer to HEAD.
public struct Answer: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// How the access log records it: the matrix's row for the matrix's answers; the server adds the route.
    public var note: AccessNote?

    public init(status: Int, headers: [(name: String, value: String)] = [], body: String = "") {
        self.status = status
        self.headers = headers
        self.body = Array(body.utf8)
    }

    /// The matrix's answer, with `headers` after its own.
    public init(_ answer: MatrixAnswer, adding headers: [(name: String, value: String)] = []) {
        status = answer.status
        self.headers = answer.headers.map { ($0.name, $0.value) } + headers
        body = Array((answer.body ?? "").utf8)
        note = AccessNote(decision: answer.row.rawValue)
    }

    /// The first value of the header `name`, compared ASCII case-insensitively.
    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
}
