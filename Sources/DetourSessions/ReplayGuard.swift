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
    private let table = Mutex(ExpiringTable<Void>())
    public let capacity: Int

    public init(capacity: Int = 100_000) {
        precondition(capacity > 0, "a replay guard holds at least one value")
        self.capacity = capacity
    }

    /// True the first time `value` is seen before `expiry`; false for a replay of a value still held.
    public func firstUse(of value: String, expiry: Date, now: Date) -> Bool {
        let key = ExpiringTable<Void>.key(value)
        return table.withLock { table in
            table.removeExpired(now: now)
            if let seen = table[key], seen.expiry > now { return false }
            table.add((), for: key, expiry: expiry, capacity: capacity)
            return true
        }
    }

    /// How many values are held now (for tests and metrics).
    public var count: Int { table.withLock { $0.entries.count } }
}
