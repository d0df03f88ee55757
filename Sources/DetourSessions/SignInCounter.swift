public import Foundation
import Synchronization

/// Row S2's loop guard in one process: how many sign-ins a browser started for one target within a window.
///
/// Bounded by age, never by refusal: an entry lives for one window from its first start; past ``capacity`` entries
/// the oldest is forgotten (a loop it was counting starts again from one, and is caught a window later), so no
/// amount of sign-in starts makes memory grow without bound or a legitimate sign-in fail.
public final class SignInCounter: Sendable {
    private struct Entry {
        var count: Int
        let firstAt: Date
    }

    private struct Table {
        var entries: [String: Entry] = [:]
        /// Keys in the order their entries began (so, by expiry: every entry lives one window).
        var order: [(key: String, firstAt: Date)] = []
        var oldest = 0

        mutating func removeOldest() {
            let (key, firstAt) = order[oldest]
            oldest += 1
            if entries[key]?.firstAt == firstAt { entries[key] = nil }
            if oldest > 1024, oldest * 2 > order.count {
                order.removeFirst(oldest)
                oldest = 0
            }
        }
    }

    private let table = Mutex(Table())
    public let capacity: Int

    public init(capacity: Int = 100_000) {
        precondition(capacity > 0, "a counter holds at least one entry")
        self.capacity = capacity
    }

    /// Counts one start under `key`: the number of starts within `window` of the first, this one included.
    public func count(_ key: String, window: Duration, now: Date) -> Int {
        let seconds = Double(window.components.seconds)
        return table.withLock { table in
            while table.oldest < table.order.count, now.timeIntervalSince(table.order[table.oldest].firstAt) >= seconds
            {
                table.removeOldest()
            }
            if var entry = table.entries[key] {
                entry.count += 1
                table.entries[key] = entry
                return entry.count
            }
            while table.entries.count >= capacity, table.oldest < table.order.count { table.removeOldest() }
            table.entries[key] = Entry(count: 1, firstAt: now)
            table.order.append((key, now))
            return 1
        }
    }

    /// How many keys are held now (for tests).
    public var count: Int { table.withLock { $0.entries.count } }
}
