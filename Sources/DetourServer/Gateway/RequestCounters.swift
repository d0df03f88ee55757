import Metrics
import Synchronization

/// `detour_requests_total{route,decision,status}` and `detour_redirects_total{status}`, each counter made once and
/// then found by a dictionary lookup instead of through the metrics factory on every request. `decision` is the
/// access log's: a matrix row, `proxied`, or a refusal's code.
final class RequestCounters: Sendable {
    private struct Key: Hashable {
        let route: String
        let decision: String
        let status: Int
    }

    private let factory: any MetricsFactory
    private let requestCounters = Mutex<[Key: Counter]>([:])
    private let redirectCounters = Mutex<[Int: Counter]>([:])

    /// - Parameter factory: where the counters are made (the process's Prometheus registry in `detour serve`).
    init(factory: any MetricsFactory) { self.factory = factory }

    func count(route: String, decision: String, status: Int, redirect: Bool) {
        requests(Key(route: route, decision: decision, status: status)).increment()
        if redirect, (300..<400).contains(status) { redirects(status: status).increment() }
    }

    private func requests(_ key: Key) -> Counter {
        requestCounters.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = Counter(
                label: "detour_requests_total",
                dimensions: [("route", key.route), ("decision", key.decision), ("status", String(key.status))],
                factory: factory)
            counters[key] = counter
            return counter
        }
    }

    private func redirects(status: Int) -> Counter {
        redirectCounters.withLock { counters in
            if let counter = counters[status] { return counter }
            let counter = Counter(
                label: "detour_redirects_total", dimensions: [("status", String(status))], factory: factory)
            counters[status] = counter
            return counter
        }
    }
}
