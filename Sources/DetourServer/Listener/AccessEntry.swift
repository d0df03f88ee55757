import DetourGateway
import Foundation
import NIOCore
import NIOHTTP1

/// One request's access-log line while it is served: what the head and the dispatcher said at the start, the
/// decision's note as it becomes known, and the times that make `upstream_ms` and `total_ms`.
struct AccessEntry {
    let started: NIODeadline
    let time: Date
    let requestID: String
    let client: String
    let method: String
    let host: String
    let path: String
    var note: AccessNote?
    /// When the request went upstream (a connection was asked for).
    var forwarded: NIODeadline?
    var status = 0
    var upstreamMilliseconds: Double?
    var aborted = false

    init(_ head: HTTPRequestHead, _ current: (requestID: String, client: String), now: NIODeadline, note: AccessNote?) {
        started = now
        time = Date()
        requestID = current.requestID
        client = current.client
        method = head.method.rawValue
        host = Self.capped(head.headers.first(name: "host") ?? "-")
        path = Self.capped(String(head.uri.prefix { $0 != "?" }))
        self.note = note
    }

    /// The response's status is known (its head is written, or Detour answered).
    mutating func answered(_ status: Int, now: NIODeadline) {
        self.status = status
        if let forwarded, upstreamMilliseconds == nil { upstreamMilliseconds = Self.milliseconds(now - forwarded) }
    }

    func record(now: NIODeadline) -> AccessRecord {
        AccessRecord(
            time: time, requestID: requestID, client: client, method: method, host: host, path: path, status: status,
            note: note, upstreamMilliseconds: upstreamMilliseconds, totalMilliseconds: Self.milliseconds(now - started),
            aborted: aborted)
    }

    /// A value a client chose, at most 2 KiB, so that a few huge requests cannot fill the log's buffer.
    static func capped(_ value: String) -> String {
        guard value.utf8.count > 2048 else { return value }
        return String(decoding: value.utf8.prefix(2048), as: UTF8.self) + "..."
    }

    private static func milliseconds(_ amount: TimeAmount) -> Double { Double(amount.nanoseconds) / 1_000_000 }
}

extension Dispatch {
    /// The access-log note a dispatch carries already (a proxied request's, or an answer known from the head).
    var note: AccessNote? {
        switch self {
        case .answer(let answer): answer.note
        case .proxy(let plan): plan.note
        case .respond, .respondReading, .later: nil
        }
    }
}
