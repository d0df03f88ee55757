import Synchronization

/// Bytes that requests may hold in memory at once, shared by every connection: what keeps a flood of large bodies
/// that Detour reads whole (forms kept across sign-in, row A2b) from exhausting memory.
///
/// Guarantees: reservations never exceed ``capacity`` together; a ``Reservation`` gives its bytes back when it is
/// released, however the request ends (its connection closed mid-body included), since it does so when it goes.
final class ByteBudget: Sendable {
    let capacity: Int
    private let used = Atomic<Int>(0)

    init(capacity: Int) { self.capacity = capacity }

    /// `bytes` reserved until the answer is dropped, or `nil` when that would go past ``capacity``.
    func reserve(_ bytes: Int) -> Reservation? {
        var current = used.load(ordering: .relaxed)
        while current + bytes <= capacity {
            let (exchanged, original) = used.compareExchange(
                expected: current, desired: current + bytes, ordering: .relaxed)
            if exchanged { return Reservation(budget: self, bytes: bytes) }
            current = original
        }
        return nil
    }

    /// Bytes reserved now (for tests).
    var reserved: Int { used.load(ordering: .relaxed) }

    fileprivate func release(_ bytes: Int) { used.subtract(bytes, ordering: .relaxed) }

    /// Reserved bytes, given back when this goes.
    final class Reservation: Sendable {
        private let budget: ByteBudget
        private let bytes: Int

        fileprivate init(budget: ByteBudget, bytes: Int) {
            self.budget = budget
            self.bytes = bytes
        }

        deinit { budget.release(bytes) }
    }
}
