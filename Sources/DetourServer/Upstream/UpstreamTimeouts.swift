public import NIOCore

/// How long Detour waits for an upstream: to connect (502 after that), and from the end of the request
/// to the start of the response (504 after that).
public struct UpstreamTimeouts: Sendable {
    public var connect: TimeAmount = .seconds(5)
    public var response: TimeAmount = .seconds(60)

    public init(connect: TimeAmount = .seconds(5), response: TimeAmount = .seconds(60)) {
        self.connect = connect
        self.response = response
    }
}
