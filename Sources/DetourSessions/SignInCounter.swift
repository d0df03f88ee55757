public import Foundation
import Synchronization

/// Row S2's loop guard in one process: how many sign-ins a browser started for one target within a window.
///
/// Bounded by age, never by refusal: an entry lives for one window from its first start; past ``capacity`` entries
/// the oldest is forgotten (a loop it was counting starts again from one, and is caught a window later), so no
/// amount of sign-in starts makes memory grow without bound or a legitimate sign-in fail.
public final class SignInCounter: Sendable {
    /// Starts so far under each key, until a window after its first.
    private let table = Mutex(ExpiringTable<Int>())
    public let capacity: Int

    public init(capacity: Int = 100_000) {
        precondition(capacity > 0, "a counter holds at least one entry")
        self.capacity = capacity
    }

    /// Counts one start under `key`: the number of starts within `window` of the first, this one included.
    public func count(_ key: String, window: Duration, now: Date) -> Int {
        let key = ExpiringTable<Int>.key(key)
        return table.withLock { table in
            table.removeExpired(now: now)
            if let (count, expiry) = table[key], expiry > now {
                table.update(key, to: count + 1)
                return count + 1
            }
            table.add(1, for: key, expiry: now + Double(window.components.seconds), capacity: capacity)
            return 1
        }
    }

    /// How many keys are held now (for tests).
    public var count: Int { table.withLock { $0.entries.count } }
}
