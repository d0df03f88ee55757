public import DetourGateway
import DetourRedirect
import Foundation
import Metrics
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One request's line in the access log (CONTRACT section 8).
public struct AccessRecord: Sendable {
    public var time: Date
    public var requestID: String
    public var client: String
    public var method: String
    public var host: String
    /// The path as sent, without its query (which may carry tokens).
    public var path: String
    public var status: Int
    public var note: AccessNote?
    /// From sending the request upstream to its response head; `nil` when nothing was forwarded.
    public var upstreamMilliseconds: Double?
    /// From the request head to the response's last byte handed to the connection.
    public var totalMilliseconds: Double
    /// The connection went before the response ended (the client left, a failure midway, a WebSocket tunnel).
    public var aborted = false
}

/// `server.access_log`: one line per request on standard output, as JSON or as text.
///
/// Guarantees: a line is written whole, never interleaved with another (nor, on a pipe, with Detour's own log lines
/// on standard error); an event loop never waits on the output:
/// lines go to a buffer that a thread of its own writes out, and while 8 MiB of lines wait (output that cannot keep
/// up), further lines are dropped and counted (`detour_access_log_dropped_total`), never held; every value is
/// escaped (JSON strings, or quoted text with control bytes as `\xNN`), so a request cannot forge a line.
public final class AccessLog: Sendable {
    public enum Format: String, Sendable, CaseIterable {
        case json
        case text
    }

    public let format: Format
    private let pending = Mutex<[UInt8]>([])
    /// Held while lines go out, so that the final flush at shutdown never interleaves with the writer thread's.
    private let writing = Mutex(())
    private let dropped = Counter(label: "detour_access_log_dropped_total")
    private let output: @Sendable ([UInt8]) -> Void
    static let capacity = 8 * 1024 * 1024

    /// - Parameter output: where lines go, whole lines at a time (standard output unless a test says otherwise).
    public init(format: Format, output: (@Sendable ([UInt8]) -> Void)? = nil) {
        self.format = format
        self.output = output ?? Self.standardOutput
        let thread = Thread { [weak self] in
            while let log = self {
                log.flush()
                Thread.sleep(forTimeInterval: 0.02)
            }
        }
        thread.name = "detour access log"
        thread.start()
    }

    public func record(_ record: AccessRecord) {
        let line = format == .json ? Self.json(record) : Self.text(record)
        let kept = pending.withLock { pending -> Bool in
            guard pending.count + line.utf8.count <= Self.capacity else { return false }
            pending.append(contentsOf: line.utf8)
            return true
        }
        if !kept { dropped.increment() }
    }

    /// Writes out what waits (the writer thread does this every 20 ms; shutdown once more).
    public func flush() {
        writing.withLock { _ in
            var lines: [UInt8] = []
            pending.withLock { swap(&lines, &$0) }
            if !lines.isEmpty { output(lines) }
        }
    }

    /// `write(2)` to standard output until all is written: a failure (a closed pipe, a full disk) drops the lines and
    /// counts them, never stops Detour (SIGPIPE is ignored, so a closed pipe is an error here, not a signal).
    ///
    /// Written in pieces of whole lines of at most `PIPE_BUF` bytes (a longer line alone), each of which a pipe takes
    /// whole: with standard error on the same pipe (`2>&1`), Detour's own log lines fall between access-log lines,
    /// never inside one.
    static let standardOutput: @Sendable ([UInt8]) -> Void = { bytes in
        for piece in pieces(of: bytes) where !writeAll(bytes[piece]) {
            Counter(label: "detour_access_log_dropped_total").increment()
            return
        }
    }

    /// `bytes` (whole lines) cut into runs of whole lines of at most `limit` bytes; a longer line is a run alone.
    static func pieces(of bytes: [UInt8], limit: Int = Int(PIPE_BUF)) -> [Range<Int>] {
        var pieces: [Range<Int>] = []
        var start = 0
        while start < bytes.count {
            var end = min(start + limit, bytes.count)
            if end < bytes.count {
                if let lineEnd = bytes[start..<end].lastIndex(of: UInt8(ascii: "\n")) {
                    end = lineEnd + 1
                } else {
                    end = bytes[end...].firstIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? bytes.count
                }
            }
            pieces.append(start..<end)
            start = end
        }
        return pieces
    }

    /// Whether all of `bytes` reached standard output.
    private static func writeAll(_ bytes: ArraySlice<UInt8>) -> Bool {
        var offset = bytes.startIndex
        while offset < bytes.endIndex {
            let written = bytes[offset...].withUnsafeBytes { Glibc.write(1, $0.baseAddress, $0.count) }
            if written > 0 {
                offset += written
            } else if written < 0, errno == EINTR {
                continue
            } else {
                return false
            }
        }
        return true
    }

    /// The record as one JSON object and a newline, written into one string (no array of fields, no string per
    /// value: this runs for every request).
    static func json(_ record: AccessRecord) -> String {
        var line = "{\"time\":"
        line.reserveCapacity(320)
        JSON.append(timestamp(record.time), to: &line)
        line += ",\"request_id\":"
        JSON.append(record.requestID, to: &line)
        line += ",\"client\":"
        JSON.append(record.client, to: &line)
        line += ",\"method\":"
        JSON.append(record.method, to: &line)
        line += ",\"host\":"
        JSON.append(record.host, to: &line)
        line += ",\"path\":"
        JSON.append(record.path, to: &line)
        line += ",\"status\":"
        line += String(record.status)
        line += ",\"route\":"
        JSON.append(record.note?.route, to: &line)
        line += ",\"decision\":"
        JSON.append(record.note?.decision, to: &line)
        line += ",\"user\":"
        JSON.append(record.note?.user, to: &line)
        line += ",\"upstream_ms\":"
        line += record.upstreamMilliseconds.map(milliseconds) ?? "null"
        line += ",\"total_ms\":"
        line += milliseconds(record.totalMilliseconds)
        line += record.aborted ? ",\"aborted\":true}\n" : "}\n"
        return line
    }

    static func text(_ record: AccessRecord) -> String {
        var line = [
            timestamp(record.time), quoted(record.client), quoted(record.method), quoted(record.host),
            quoted(record.path), "\(record.status)",
        ]
        line.append("route=" + quoted(record.note?.route ?? "-"))
        line.append("decision=" + quoted(record.note?.decision ?? "-"))
        line.append("user=" + quoted(record.note?.user ?? "-"))
        line.append("upstream_ms=" + (record.upstreamMilliseconds.map(milliseconds) ?? "-"))
        line.append("total_ms=" + milliseconds(record.totalMilliseconds))
        line.append("request_id=" + quoted(record.requestID))
        if record.aborted { line.append("aborted=true") }
        return line.joined(separator: " ") + "\n"
    }

    /// A text field as is when it is plain, else in quotes with `"`, `\` and control bytes escaped.
    static func quoted(_ value: String) -> String {
        let plain = !value.isEmpty && value.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != 0x22 && $0 != 0x5C }
        if plain { return value }
        var escaped = "\""
        for byte in value.utf8 {
            switch byte {
            case 0x22: escaped += "\\\""
            case 0x5C: escaped += "\\\\"
            case 0x20...0x7E: escaped.unicodeScalars.append(Unicode.Scalar(byte))
            default: escaped += String(format: "\\x%02X", byte)
            }
        }
        return escaped + "\""
    }

    /// `value` with three decimals, rounded half away from zero (`%.3f` may round an exact half the other way), without
    /// `String(format:)`, which cost a microsecond or more.
    static func milliseconds(_ value: Double) -> String {
        let thousandths = Int((max(value, 0) * 1000).rounded())
        return "\(thousandths / 1000)." + digits(thousandths % 1000, width: 3)
    }

    /// `value` (not negative) in decimal, zeros before it up to `width` digits.
    static func digits(_ value: Int, width: Int) -> String {
        let text = String(value)
        return text.utf8.count >= width ? text : String(repeating: "0", count: width - text.utf8.count) + text
    }

    /// RFC 3339 in UTC with milliseconds: `2026-12-06T03:50:24.123Z`.
    public static func timestamp(_ date: Date) -> String {
        let interval = date.timeIntervalSince1970
        var seconds = time_t(interval.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let millis = Int((interval - interval.rounded(.down)) * 1000)
        return digits(Int(parts.tm_year) + 1900, width: 4) + "-" + digits(Int(parts.tm_mon) + 1, width: 2) + "-"
            + digits(Int(parts.tm_mday), width: 2) + "T" + digits(Int(parts.tm_hour), width: 2) + ":"
            + digits(Int(parts.tm_min), width: 2) + ":" + digits(Int(parts.tm_sec), width: 2) + "."
            + digits(millis, width: 3) + "Z"
    }
}
