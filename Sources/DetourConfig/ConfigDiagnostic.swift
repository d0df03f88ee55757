/// One problem in a configuration file, printed as `FILE:LINE:COLUMN: message`.
public struct ConfigDiagnostic: Sendable, Hashable, CustomStringConvertible {
    public let file: String
    /// 1-based; 0 when the problem belongs to no line (an unreadable file).
    public let line: Int
    public let column: Int
    public let message: String

    public init(file: String, line: Int, column: Int, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
    }

    public var description: String { line > 0 ? "\(file):\(line):\(column): \(message)" : "\(file): \(message)" }
}

/// A configuration that cannot be used: every problem found in the file, in file order.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public let diagnostics: [ConfigDiagnostic]
    /// True when the file could not be read at all (as opposed to read and found wrong).
    public let isUnreadable: Bool

    public init(diagnostics: [ConfigDiagnostic], isUnreadable: Bool = false) {
        self.diagnostics = diagnostics
        self.isUnreadable = isUnreadable
    }

    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}
