import Crypto
public import Foundation

/// Answers about secrets (tokens), each computed once at a time and kept until its own deadline.
///
/// Guarantees: concurrent requests for one secret share a single computation; a kept answer is returned
/// until its deadline, and one whose deadline is not after `now` is not kept at all; secrets are kept
/// only as SHA-256 digests, never in the clear; at most ``capacity`` answers are kept (expired ones are
/// dropped first, then all).
public actor SecretKeyedCache<Value: Sendable> {
    public let capacity: Int
    private var answers: [SHA256Digest: (value: Value, until: Date)] = [:]
    private var inFlight: [SHA256Digest: Task<(Value, until: Date), Never>] = [:]

    public init(capacity: Int = 10_000) { self.capacity = capacity }

    /// The kept answer for `secret`, or the one `compute` gives (shared with concurrent callers).
    public func value(
        for secret: String, now: Date, compute: @escaping @Sendable () async -> (Value, until: Date)
    ) async -> Value {
        let key = SHA256.hash(data: Data(secret.utf8))
        if let answer = answers[key], answer.until > now { return answer.value }
        let call: Task<(Value, until: Date), Never>
        if let running = inFlight[key] {
            call = running
        } else {
            call = Task { await compute() }
            inFlight[key] = call
        }
        let (value, until) = await call.value
        inFlight[key] = nil
        if until > now {
            if answers.count >= capacity {
                answers = answers.filter { $0.value.until > now }
                if answers.count >= capacity { answers.removeAll() }
            }
            answers[key] = (value, until)
        }
        return value
    }
}
