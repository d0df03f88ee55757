import Crypto
import Foundation

/// Values under keys made from strings, each until its expiry, remembered in the order they were added: the one
/// mechanism behind ``ReplayGuard`` and ``SignInCounter``, bounded by age and never by refusal.
///
/// Guarantees: ``removeExpired(now:)`` and the room made by ``add(_:for:expiry:capacity:)`` drop entries oldest
/// first, each in amortised constant time; an entry added again after it expired has an order slot of its own, and
/// only that slot removes it. A key is a string's SHA-256, 32 bytes in place (``key(_:)``, made before taking a
/// lock): an entry costs the same whatever its string, and a table filled to its capacity by a flood holds no string
/// of the flood's.
struct ExpiringTable<Value> {
    typealias Key = SHA256Digest

    private(set) var entries: [Key: (value: Value, expiry: Date)] = [:]
    private var order: [(key: Key, expiry: Date)] = []
    private var oldest = 0

    /// The key `string` is kept under.
    static func key(_ string: String) -> Key {
        var string = string
        return string.withUTF8 { SHA256.hash(data: UnsafeRawBufferPointer($0)) }
    }

    /// The live entry under `key`, if any.
    subscript(key: Key) -> (value: Value, expiry: Date)? { entries[key] }

    /// Drops the entries, oldest first, that expired by `now` (stopping at the first that has not).
    mutating func removeExpired(now: Date) {
        while oldest < order.count, order[oldest].expiry <= now { removeOldest() }
    }

    /// Adds (or replaces) `value` under `key` until `expiry`, first dropping the oldest entries to stay under
    /// `capacity`.
    mutating func add(_ value: Value, for key: Key, expiry: Date, capacity: Int) {
        while entries.count >= capacity, oldest < order.count { removeOldest() }
        entries[key] = (value, expiry)
        order.append((key, expiry))
    }

    /// Changes the value under a live `key`, keeping its expiry and place.
    mutating func update(_ key: Key, to value: Value) {
        entries[key]?.value = value
    }

    private mutating func removeOldest() {
        let (key, expiry) = order[oldest]
        oldest += 1
        if entries[key]?.expiry == expiry { entries[key] = nil }
        if oldest > 1024, oldest * 2 > order.count {
            order.removeFirst(oldest)
            oldest = 0
        }
    }
}
