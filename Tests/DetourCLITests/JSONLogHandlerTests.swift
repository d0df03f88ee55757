import Foundation
import Logging
import Synchronization
import Testing

@testable import detour

@Suite struct JSONLogHandlerTests {
    /// The lines a handler wrote, and a logger that writes through it.
    func logger() -> (Logger, @Sendable () -> [String]) {
        let lines = Mutex<[String]>([])
        let handler = JSONLogHandler(label: "detour", level: .info) { line in lines.withLock { $0.append(line) } }
        return (Logger(label: "detour") { _ in handler }, { lines.withLock { $0 } })
    }

    func object(_ line: String) throws -> [String: Any] {
        #expect(line.hasSuffix("}\n") && line.dropLast().contains("\n") == false, "one line: \(line)")
        return try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }

    @Test func aLineIsOneObjectWithTheEventAndItsMetadata() throws {
        let (logger, lines) = logger()
        logger.info("listening", metadata: ["address": "127.0.0.1:4180", "routes": .array(["a", "b"])])
        logger.debug("below the level")
        #expect(lines().count == 1)
        let fields = try object(try #require(lines().first))
        #expect(fields["level"] as? String == "info")
        #expect(fields["logger"] as? String == "detour")
        #expect(fields["message"] as? String == "listening")
        #expect(fields["address"] as? String == "127.0.0.1:4180")
        #expect(fields["routes"] as? [String] == ["a", "b"])
        #expect((fields["time"] as? String)?.hasSuffix("Z") == true)
    }

    @Test func nothingInAValueEndsTheLineOrHidesWhatItHolds() throws {
        let (logger, lines) = logger()
        let forged = "x\r\n{\"level\":\"critical\"}\u{2028}\u{202E}\u{85}\"\\"
        logger.warning("\(forged)", metadata: ["error": "\(forged)", "\(forged)": .dictionary(["k": "\(forged)"])])
        let line = try #require(lines().first)
        for raw in ["\r", "\n{", "\u{2028}", "\u{202E}", "\u{85}"] {
            #expect(!line.dropLast().contains(raw), "escaped: \(raw.unicodeScalars.first?.value ?? 0)")
        }
        let fields = try object(line)
        #expect(fields["message"] as? String == forged)
        #expect(fields["error"] as? String == forged, "read back byte for byte")
        #expect((fields[forged] as? [String: String])?["k"] == forged)
    }
}

extension JSONLogHandlerTests {
    @Test func metadataCannotPassForTheLinesOwnFields() throws {
        let (logger, lines) = logger()
        logger.error("real", metadata: ["level": "info", "message": "forged", "time": "0", "logger": "x"])
        let fields = try object(try #require(lines().first))
        #expect(fields["level"] as? String == "error")
        #expect(fields["message"] as? String == "real")
        #expect(fields["logger"] as? String == "detour")
        #expect(fields["_message"] as? String == "forged" && fields["_level"] as? String == "info")
    }

    @Test func levelsAreReadInAnyCase() {
        #expect(LogSetup.level("INFO") == .info)
        #expect(LogSetup.level("warn") == .warning)
        #expect(LogSetup.level("Debug") == .debug)
        #expect(LogSetup.level("loud") == nil)
    }
}
