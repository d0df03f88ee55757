/// One problem in a configuration or policy file, printed as `FILE:LINE:COLUMN: message`.
public struct Diagnostic: Sendable, Hashable, CustomStringConvertible {
    /// Errors make a file unusable; warnings are advice (`detour policy check` prints both).
    public enum Severity: String, Sendable, Hashable {
        case error
        case warning
    }

    public let file: String
    /// 1-based; 0 when the problem belongs to no line (an unreadable file).
    public let line: Int
    public let column: Int
    public let message: String
    public let severity: Severity

    public init(file: String, line: Int, column: Int, message: String, severity: Severity = .error) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
        self.severity = severity
    }

    /// The diagnostic with its severity spelled out: `FILE:LINE:COLUMN: warning: message`.
    public var descriptionWithSeverity: String {
        line > 0
            ? "\(file):\(line):\(column): \(severity.rawValue): \(message)"
            : "\(file): \(severity.rawValue): \(message)"
    }

    public var description: String { line > 0 ? "\(file):\(line):\(column): \(message)" : "\(file): \(message)" }
}

/// A configuration or policy file that cannot be used: every problem found, in file order.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public let diagnostics: [Diagnostic]
    /// True when the file could not be read at all (as opposed to read and found wrong).
    public let isUnreadable: Bool

    public init(diagnostics: [Diagnostic], isUnreadable: Bool = false) {
        self.diagnostics = diagnostics
        self.isUnreadable = isUnreadable
    }

    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}
