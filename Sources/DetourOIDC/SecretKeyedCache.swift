import Crypto
public import Foundation
import Synchronization

/// Answers about secrets (tokens), each computed once at a time and kept until its own deadline.
///
/// Guarantees: concurrent requests for one secret share a single computation; a kept answer is returned
/// until its deadline, and one whose deadline is not after `now` is not kept at all; a kept answer can
/// be read without suspending (``cached(_:now:)``, for event loops); secrets are kept only as SHA-256
/// digests, never in the clear; at most ``capacity`` answers are kept (expired ones are dropped first,
/// then all).
public final class SecretKeyedCache<Value: Sendable>: Sendable {
    private struct State: ~Copyable {
        var answers: [SHA256Digest: (value: Value, until: Date)] = [:]
        var inFlight: [SHA256Digest: Task<(Value, until: Date), Never>] = [:]
    }

    private enum Lookup {
        case kept(Value)
        case running(Task<(Value, until: Date), Never>)
    }

    public let capacity: Int
    private let state = Mutex(State())

    public init(capacity: Int = 10_000) { self.capacity = capacity }

    /// The kept answer for `secret`, if there is one still valid at `now`.
    public func cached(_ secret: String, now: Date) -> Value? {
        let key = SHA256.hash(data: Data(secret.utf8))
        return state.withLock { state in
            guard let answer = state.answers[key], answer.until > now else { return nil }
            return answer.value
        }
    }

    /// The kept answer for `secret`, or the one `compute` gives (shared with concurrent callers).
    public func value(
        for secret: String, now: Date, compute: @escaping @Sendable () async -> (Value, until: Date)
    ) async -> Value {
        let key = SHA256.hash(data: Data(secret.utf8))
        let lookup: Lookup = state.withLock { state in
            if let answer = state.answers[key], answer.until > now { return .kept(answer.value) }
            if let running = state.inFlight[key] { return .running(running) }
            let call = Task { await compute() }
            state.inFlight[key] = call
            return .running(call)
        }
        let call: Task<(Value, until: Date), Never>
        switch lookup {
        case .kept(let value): return value
        case .running(let running): call = running
        }
        let (value, until) = await call.value
        state.withLock { state in
            if state.inFlight[key] == call { state.inFlight[key] = nil }
            guard until > now else { return }
            if state.answers.count >= capacity {
                state.answers = state.answers.filter { $0.value.until > now }
                if state.answers.count >= capacity { state.answers.removeAll() }
            }
            state.answers[key] = (value, until)
        }
        return value
    }
}
