import Foundation
public import Logging

/// A log handler that writes through another with every control character escaped, so that nothing a
/// client or provider sends (a path, a provider's `error_description`) can end a log line early and forge
/// the next one (CONTRACT section 7).
///
/// Guarantees: in the message and in every metadata value (nested ones included), CR, LF and tab become
/// `\r`, `\n` and `\t`, every other C0 or C1 control, DEL, the Unicode line and paragraph separators and the
/// bidirectional overrides (which reorder what a reader sees) become `\u{XX}`, and a backslash becomes `\\`,
/// so each escaped line reads back to one original. A metadata value holding a space, `=` or `"` is written
/// in double quotes (its quotes escaped), so no value can pass for a `key=value` field of its own.
public struct EscapingLogHandler: LogHandler {
    private var wrapped: any LogHandler

    public init(_ wrapped: any LogHandler) { self.wrapped = wrapped }

    public var metadataProvider: Logger.MetadataProvider? {
        get { wrapped.metadataProvider }
        set { wrapped.metadataProvider = newValue }
    }

    public var metadata: Logger.Metadata {
        get { wrapped.metadata }
        set { wrapped.metadata = newValue }
    }

    public var logLevel: Logger.Level {
        get { wrapped.logLevel }
        set { wrapped.logLevel = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { wrapped[metadataKey: key] }
        set { wrapped[metadataKey: key] = newValue }
    }

    public func log(event: LogEvent) {
        var escaped = event
        escaped.message = Logger.Message(stringLiteral: Self.escape(event.message.description))
        escaped.metadata = event.metadata?.mapValues(Self.escape)
        wrapped.log(event: escaped)
    }

    static func escape(_ value: Logger.Metadata.Value) -> Logger.Metadata.Value {
        switch value {
        case .string(let text): .string(quoted(escape(text)))
        case .stringConvertible(let convertible): .string(quoted(escape(convertible.description)))
        case .array(let values): .array(values.map(escape))
        case .dictionary(let values): .dictionary(values.mapValues(escape))
        }
    }

    /// `text` with control characters and backslashes escaped; the same string when it has none.
    static func escape(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var escaped = ""
        escaped.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            case "\r": escaped += "\\r"
            case "\t": escaped += "\\t"
            case _ where needsEscape(scalar): escaped += "\\u{\(String(scalar.value, radix: 16))}"
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }

    private static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0..<0x20, 0x5C, 0x7F...0x9F, 0x200E, 0x200F, 0x2028...0x202E, 0x2066...0x2069: true
        default: false
        }
    }

    /// `text` in double quotes when it holds a space, `=` or `"` (escaped `\"`); as it is otherwise.
    static func quoted(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 == 0x20 || $0 == UInt8(ascii: "=") || $0 == UInt8(ascii: "\"") }) else {
            return text
        }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}
