public import Foundation
import Synchronization

/// Remembers values that may be used once (login `state`s) until they expire, so that a replayed
/// callback is refused even when the browser still holds the state cookie.
///
/// Bounded by age, never by refusal: past ``capacity`` live entries the oldest is forgotten to make
/// room, so no amount of abandoned sign-ins can make a legitimate one fail (CONTRACT section 7). A
/// state forgotten that way could be presented twice, but its authorization code is single-use at the
/// provider and bound to the PKCE verifier sealed in that browser's cookie, so a second redemption
/// still fails there. Callers record a value only after its seal and browser binding verified.
public final class ReplayGuard: Sendable {
    /// The values in the order they were first used, and when each expires.
    private struct Table {
        var expiries: [String: Date] = [:]
        var order: [(value: String, expiry: Date)] = []
        var oldest = 0

        var isEmpty: Bool { oldest == order.count }

        mutating func removeOldest() {
            let (value, expiry) = order[oldest]
            oldest += 1
            // A value used again after it expired has a later entry of its own: only its own entry removes it.
            if expiries[value] == expiry { expiries[value] = nil }
            if oldest > 1024, oldest * 2 > order.count {
                order.removeFirst(oldest)
                oldest = 0
            }
        }
    }

    private let table = Mutex(Table())
    public let capacity: Int

    public init(capacity: Int = 100_000) {
        precondition(capacity > 0, "a replay guard holds at least one value")
        self.capacity = capacity
    }

    /// True the first time `value` is seen before `expiry`; false for a replay of a value still held.
    public func firstUse(of value: String, expiry: Date, now: Date) -> Bool {
        table.withLock { table in
            while !table.isEmpty, table.order[table.oldest].expiry <= now { table.removeOldest() }
            if let seen = table.expiries[value], seen > now { return false }
            while table.expiries.count >= capacity, !table.isEmpty { table.removeOldest() }
            table.expiries[value] = expiry
            table.order.append((value, expiry))
            return true
        }
    }

    /// How many values are held now (for tests and metrics).
    public var count: Int { table.withLock { $0.expiries.count } }
}
