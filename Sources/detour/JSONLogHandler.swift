import DetourRedirect
import DetourServer
import Foundation
public import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Detour's own log lines as JSON objects, one per line on standard error (`DETOUR_LOG_FORMAT=json`, the default
/// beside `server.access_log: json`): `time`, `level`, `logger`, `message`, then the metadata's fields.
///
/// Guarantees: every line is one JSON object written whole with one `write(2)`, never interleaved with another;
/// every string (keys included) is a JSON string literal with control characters, line separators and `<>&`
/// escaped, so nothing a client or provider sends can end a line early or forge the next (CONTRACT section 7).
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    public var logLevel: Logger.Level
    private let label: String
    private let output: @Sendable (String) -> Void

    /// - Parameter output: where whole lines go (standard error unless a test says otherwise).
    public init(label: String, level: Logger.Level, output: (@Sendable (String) -> Void)? = nil) {
        self.label = label
        logLevel = level
        self.output = output ?? Self.standardError
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let provided = metadataProvider?.get() { fields.merge(provided) { _, new in new } }
        if let given = event.metadata { fields.merge(given) { _, new in new } }
        var line =
            "{\"time\":\(JSON.string(AccessLog.timestamp(Date()))),\"level\":\(JSON.string(event.level.rawValue))"
        line += ",\"logger\":\(JSON.string(label)),\"message\":\(JSON.string(event.message.description))"
        for (key, value) in fields.sorted(by: { $0.key < $1.key }) {
            // A field may not pass for the line's own: `message` in the metadata is written `_message`.
            let name = Self.ownFields.contains(key) ? "_" + key : key
            line += ",\(JSON.string(name)):\(Self.json(value))"
        }
        output(line + "}\n")
    }

    static let ownFields: Set<String> = ["time", "level", "logger", "message"]

    static func json(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let text): JSON.string(text)
        case .stringConvertible(let convertible): JSON.string(convertible.description)
        case .array(let values): "[" + values.map(json).joined(separator: ",") + "]"
        case .dictionary(let values):
            "{"
                + values.sorted { $0.key < $1.key }.map { "\(JSON.string($0.key)):\(json($0.value))" }
                .joined(separator: ",") + "}"
        }
    }

    private static let writing = Mutex(())

    /// One `write(2)` per line where the kernel takes it whole (short lines to a pipe or file always are).
    static let standardError: @Sendable (String) -> Void = { line in
        writing.withLock { _ in
            var bytes = Array(line.utf8)[...]
            while !bytes.isEmpty {
                let written = bytes.withUnsafeBytes { Glibc.write(2, $0.baseAddress, $0.count) }
                if written > 0 {
                    bytes = bytes.dropFirst(written)
                } else if written < 0, errno == EINTR {
                    continue
                } else {
                    return
                }
            }
        }
    }
}
