import DetourGateway
import Foundation
import Synchronization
import Testing

@testable import DetourServer

/// `server.access_log`: the contract's fields, escaped so that no request can forge or split a line, and written
/// whole.
@Suite struct AccessLogTests {
    static let record = AccessRecord(
        time: Date(timeIntervalSince1970: 1_800_000_000.25), requestID: "r-1", client: "203.0.113.7", method: "GET",
        host: "app.example.com", path: "/a \"b\"\n{\"status\":1}", status: 200,
        note: AccessNote(route: "app", decision: AccessNote.proxied, user: "ann"), upstreamMilliseconds: 1.5,
        totalMilliseconds: 2.25)

    @Test func jsonLinesCarryTheContractsFieldsEscaped() throws {
        let line = AccessLog.json(Self.record)
        #expect(line.hasSuffix("}\n") && line.dropLast().contains("\n") == false, "one line, whatever the path")
        let object = try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["time"] as? String == "2027-01-15T08:00:00.250Z")
        #expect(object["path"] as? String == "/a \"b\"\n{\"status\":1}")
        #expect(object["status"] as? Int == 200 && object["user"] as? String == "ann")
        #expect(object["upstream_ms"] as? Double == 1.5 && object["total_ms"] as? Double == 2.25)
        var anonymous = Self.record
        anonymous.note = nil
        anonymous.upstreamMilliseconds = nil
        let bare = try #require(
            JSONSerialization.jsonObject(with: Data(AccessLog.json(anonymous).utf8)) as? [String: Any])
        #expect(bare["user"] is NSNull && bare["upstream_ms"] is NSNull && bare["decision"] is NSNull)
    }

    @Test func textQuotesWhatIsNotPlain() {
        #expect(AccessLog.quoted("plain/path") == "plain/path")
        #expect(AccessLog.quoted("a b") == "\"a b\"")
        #expect(AccessLog.quoted("x\ny\u{7F}\"\\") == "\"x\\x0Ay\\x7F\\\"\\\\\"")
        #expect(AccessLog.quoted("") == "\"\"")
        let line = AccessLog.text(Self.record)
        #expect(line.filter { $0 == "\n" }.count == 1 && line.hasSuffix("\n"))
    }

    @Test func linesAreWrittenWhole() {
        let written = Mutex<[UInt8]>([])
        let log = AccessLog(format: .json) { bytes in written.withLock { $0 += bytes } }
        log.record(Self.record)
        log.record(Self.record)
        log.flush()
        let text = written.withLock { String(decoding: $0, as: UTF8.self) }
        #expect(text.split(separator: "\n").count == 2)
    }
}

extension AccessLogTests {
    /// On a pipe shared with standard error, each `write(2)` of at most `PIPE_BUF` bytes arrives whole: lines are
    /// written in such runs, so Detour's own log lines fall between access-log lines.
    @Test func linesGoOutInRunsOfWholeLinesAPipeTakesWhole() {
        let line = Array(repeating: UInt8(ascii: "a"), count: 9) + [UInt8(ascii: "\n")]  // 10 bytes
        let long = Array(repeating: UInt8(ascii: "b"), count: 44) + [UInt8(ascii: "\n")]  // 45 bytes
        let bytes = line + line + line + long + line
        let pieces = AccessLog.pieces(of: bytes, limit: 25)
        #expect(pieces == [0..<20, 20..<30, 30..<75, 75..<85])
        #expect(pieces.allSatisfy { bytes[$0.upperBound - 1] == UInt8(ascii: "\n") })
        #expect(AccessLog.pieces(of: line + line, limit: 4096) == [0..<20])
        #expect(AccessLog.pieces(of: [], limit: 25).isEmpty)
    }
}

extension AccessLogTests {
    @Test func timesAndDurationsHaveFixedDigits() {
        for value in [0, 0.0004, 0.0005, 1.5, 2.598, 12.3456, 999.9999, 123_456.789] {
            #expect(AccessLog.milliseconds(value) == String(format: "%.3f", value), "\(value)")
        }
        #expect(AccessLog.timestamp(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
        #expect(AccessLog.timestamp(Date(timeIntervalSince1970: 1_796_519_409.5)) == "2026-12-06T01:10:09.500Z")
    }
}
