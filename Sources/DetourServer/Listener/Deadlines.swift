import NIOCore

/// The deadlines one connection keeps, one per concern; `nil` where none runs.
struct Deadlines: Equatable {
    /// When the client must have sent what it owes; `nil` while Detour owes the next step.
    var read: NIODeadline?
    /// When a client that stopped reading what it is sent is closed; `nil` while it reads.
    var stalled: NIODeadline?
    /// When a connection that is closing (or dropping the rest of an answered request) is closed anyway, whether or
    /// not the client took its last response.
    var closing: NIODeadline?
    /// When the upstream's response must have started (504 after that), from the end of the request.
    var response: NIODeadline?

    /// The soonest of them.
    var soonest: NIODeadline? { Self.sooner(Self.sooner(read, stalled), Self.sooner(closing, response)) }

    private static func sooner(_ one: NIODeadline?, _ other: NIODeadline?) -> NIODeadline? {
        guard let one else { return other }
        guard let other else { return one }
        return min(one, other)
    }
}
