import Metrics
import Synchronization

/// `detour_requests_total{route,status}` and `detour_redirects_total{status}`, each counter made once and then
/// found by a dictionary lookup instead of through the metrics factory on every request.
final class RequestCounters: Sendable {
    private struct Key: Hashable {
        let route: String
        let status: Int
    }

    private let factory: any MetricsFactory
    private let requestCounters = Mutex<[Key: Counter]>([:])
    private let redirectCounters = Mutex<[Int: Counter]>([:])

    /// - Parameter factory: where the counters are made (the process's Prometheus registry in `detour serve`).
    init(factory: any MetricsFactory) { self.factory = factory }

    func count(route: String, status: Int, redirect: Bool) {
        requests(route: route, status: status).increment()
        if redirect, (300..<400).contains(status) { redirects(status: status).increment() }
    }

    private func requests(route: String, status: Int) -> Counter {
        let key = Key(route: route, status: status)
        return requestCounters.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = Counter(
                label: "detour_requests_total", dimensions: [("route", route), ("status", String(status))],
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
