public import Foundation
import Synchronization

/// Remembers values that may be used once (login `state`s) until they expire, so that a replayed
/// callback is refused even when the browser still holds the state cookie.
///
/// Bounded: past ``capacity`` live entries, new values are refused (fail closed) rather than letting
/// the memory grow without limit.
public final class ReplayGuard: Sendable {
    private let used = Mutex<[String: Date]>([:])
    public let capacity: Int

    public init(capacity: Int = 100_000) {
        self.capacity = capacity
    }

    /// True the first time `value` is seen before `expiry`; false for a replay (or when full).
    public func firstUse(of value: String, expiry: Date, now: Date) -> Bool {
        used.withLock { entries in
            if entries.count >= capacity { entries = entries.filter { $0.value > now } }
            if let seen = entries[value], seen > now { return false }
            guard entries.count < capacity else { return false }
            entries[value] = expiry
            return true
        }
    }
}
