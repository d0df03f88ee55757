import ArgumentParser
import Foundation
import Logging

/// How Detour's own log lines (not the access log) are written to standard error: `DETOUR_LOG_FORMAT` (`json` or
/// `text`) when set, else the caller's default; `DETOUR_LOG_LEVEL` (`trace` ... `critical`, default `info`), in
/// any case.
enum LogSetup {
    enum Format: String {
        case json
        case text
    }

    /// A level's name in any case; `warn` is `warning`.
    static func level(_ name: String) -> Logger.Level? {
        let name = name.lowercased()
        return name == "warn" ? .warning : Logger.Level(rawValue: name)
    }

    /// Bootstraps swift-log once for the process.
    ///
    /// - Throws: exit status 2, after saying so, for a `DETOUR_LOG_FORMAT` or `DETOUR_LOG_LEVEL` that is neither.
    static func bootstrap(default: Format, environment: [String: String] = ProcessInfo.processInfo.environment)
        throws
    {
        guard let format = environment["DETOUR_LOG_FORMAT"].map({ Format(rawValue: $0.lowercased()) }) ?? `default`
        else {
            FileHandle.standardError.write(Data("DETOUR_LOG_FORMAT must be json or text\n".utf8))
            throw ExitCode(2)
        }
        guard let level = environment["DETOUR_LOG_LEVEL"].map(Self.level) ?? .info else {
            FileHandle.standardError.write(
                Data("DETOUR_LOG_LEVEL must be trace, debug, info, notice, warning, error or critical\n".utf8))
            throw ExitCode(2)
        }
        LoggingSystem.bootstrap { label in
            switch format {
            case .json: return JSONLogHandler(label: label, level: level)
            case .text:
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return EscapingLogHandler(handler)
            }
        }
    }
}
