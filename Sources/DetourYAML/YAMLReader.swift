import Foundation
public import Yams

/// Reads typed values out of a YAML node tree, collecting a diagnostic for every problem instead of
/// stopping at the first, so that a file's errors are all reported at once.
///
/// Scalars have `${NAME}` replaced by the environment variable NAME (an unset one is an error);
/// mappings are strict: an unknown or repeated key is an error, with a suggestion when it looks
/// like a misspelling of a known one.
public struct YAMLReader {
    public let file: String
    public let environment: [String: String]
    public private(set) var diagnostics: [Diagnostic] = []

    public init(file: String, environment: [String: String]) {
        self.file = file
        self.environment = environment
    }

    /// A file named in this file: `text` as written when absolute, else in this file's folder.
    public func path(_ text: String) -> String {
        if text.hasPrefix("/") { return text }
        let folder = file.split(separator: "/", omittingEmptySubsequences: false).dropLast()
        return folder.isEmpty ? text : folder.joined(separator: "/") + "/" + text
    }

    /// Records a problem at `node`'s position (line 1, column 1 without a node).
    public mutating func report(_ node: Node?, _ message: String, severity: Diagnostic.Severity = .error) {
        let mark = node?.mark
        diagnostics.append(
            Diagnostic(
                file: file, line: mark?.line ?? 1, column: mark?.column ?? 1, message: message, severity: severity))
    }

    /// The error for everything reported so far, in file order; `nil` when nothing was.
    public var error: ConfigError? {
        guard !diagnostics.isEmpty else { return nil }
        let ordered = diagnostics.enumerated().sorted {
            ($0.element.line, $0.element.column, $0.offset) < ($1.element.line, $1.element.column, $1.offset)
        }
        return ConfigError(diagnostics: ordered.map(\.element))
    }

    /// Parses YAML text into a node tree; a syntax error is thrown with its position.
    public static func compose(_ text: String, file: String) throws(ConfigError) -> Node? {
        do {
            return try Yams.compose(yaml: text)
        } catch {
            let diagnostic: Diagnostic
            switch error as? YamlError {
            case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
                .composer(_, let problem, let mark, _):
                diagnostic = Diagnostic(
                    file: file, line: mark.line, column: mark.column, message: "YAML syntax: \(problem)")
            default:
                diagnostic = Diagnostic(file: file, line: 1, column: 1, message: "YAML syntax: \(error)")
            }
            throw ConfigError(diagnostics: [diagnostic])
        }
    }

    /// Reads a whole file as text, or throws an "unreadable" error naming it.
    public static func readFile(_ path: String) throws(ConfigError) -> String {
        do {
            return try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(
                diagnostics: [Diagnostic(file: path, line: 0, column: 0, message: "cannot read the file")],
                isUnreadable: true)
        }
    }

    /// The entries of a mapping whose keys must all be in `keys`; `nil` (reported) if it is not a mapping.
    public mutating func mapping(_ node: Node, _ path: String, keys: [String]) -> [String: Node]? {
        if case .scalar = node, node.tag.rawValue == Tag.Name.null.rawValue { return [:] }
        guard case .mapping(let mapping) = node else {
            report(node, "\(path) must be a mapping of keys to values")
            return nil
        }
        var entries: [String: Node] = [:]
        for (keyNode, value) in mapping {
            guard let key = keyNode.string else {
                report(keyNode, "\(path) has a key that is not a string")
                continue
            }
            let qualified = path.isEmpty ? key : "\(path).\(key)"
            guard keys.contains(key) else {
                let suggestion =
                    keys.min { editDistance(key, $0) < editDistance(key, $1) }
                    .flatMap { editDistance(key, $0) <= 2 ? " (did you mean \"\($0)\"?)" : nil } ?? ""
                report(keyNode, "unknown key \"\(qualified)\"\(suggestion)")
                continue
            }
            guard entries[key] == nil else {
                report(keyNode, "key \"\(qualified)\" appears twice")
                continue
            }
            entries[key] = value
        }
        return entries
    }

    public func isNull(_ node: Node) -> Bool {
        if case .scalar(let scalar) = node {
            return node.tag.rawValue == Tag.Name.null.rawValue && scalar.style == .plain
        }
        return false
    }

    /// A string scalar with `${NAME}` interpolated; numbers and booleans are refused, not coerced.
    public mutating func string(_ node: Node, _ path: String) -> String? {
        guard case .scalar(let scalar) = node, node.tag.rawValue == Tag.Name.str.rawValue || scalar.style != .plain
        else {
            report(node, "\(path) must be a string")
            return nil
        }
        return interpolate(scalar.string, node, path)
    }

    public mutating func bool(_ node: Node, _ path: String) -> Bool? {
        guard case .scalar = node, let value = node.bool, node.tag.rawValue == Tag.Name.bool.rawValue else {
            report(node, "\(path) must be true or false")
            return nil
        }
        return value
    }

    public mutating func strings(_ node: Node, _ path: String) -> [(String, Node)]? {
        guard case .sequence(let sequence) = node else {
            report(node, "\(path) must be a list")
            return nil
        }
        return sequence.enumerated().compactMap { index, item in string(item, "\(path)[\(index)]").map { ($0, item) } }
    }

    public mutating func int(_ node: Node, _ path: String) -> Int? {
        guard case .scalar = node, node.tag.rawValue == Tag.Name.int.rawValue, let value = node.int else {
            report(node, "\(path) must be a whole number")
            return nil
        }
        return value
    }

    /// The items of a list.
    public mutating func sequence(_ node: Node, _ path: String) -> [Node]? {
        guard case .sequence(let sequence) = node else {
            report(node, "\(path) must be a list")
            return nil
        }
        return Array(sequence)
    }

    /// `30s`, `5m`, `8h`, `1h30m`, `250ms`.
    public mutating func duration(_ node: Node, _ path: String) -> Duration? {
        guard let text = string(node, path) else { return nil }
        guard let duration = parseDuration(text) else {
            report(node, "\(path) must be a duration such as 30s, 5m, 8h or 1h30m, not \"\(text)\"")
            return nil
        }
        return duration
    }

    /// A size in bytes: `1048576`, `512KiB`, `10MiB`, `1GiB` (also `KB`/`MB`/`GB`, read as the same powers of 1024).
    public mutating func byteSize(_ node: Node, _ path: String) -> Int? {
        if case .scalar = node, node.tag.rawValue == Tag.Name.int.rawValue, let bytes = node.int, bytes >= 0 {
            return bytes  // a plain number of bytes, as CONTRACT section 3 writes `max_header_bytes: 32768`
        }
        guard let text = string(node, path) else { return nil }
        guard let size = parseByteSize(text) else {
            report(node, "\(path) must be a size such as 512KiB, 10MiB or 1GiB, not \"\(text)\"")
            return nil
        }
        return size
    }

    public mutating func choice<T: RawRepresentable<String> & CaseIterable>(_ node: Node, _ path: String, as: T.Type)
        -> T?
    {
        guard let text = string(node, path) else { return nil }
        guard let value = T(rawValue: text) else {
            report(node, "\(path) must be one of \(T.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", "))")
            return nil
        }
        return value
    }

    private mutating func interpolate(_ text: String, _ node: Node, _ path: String) -> String? {
        guard text.contains("${") else { return text }
        var output = ""
        var rest = Substring(text)
        while let start = rest.range(of: "${") {
            output += rest[..<start.lowerBound]
            guard let end = rest[start.upperBound...].firstIndex(of: "}") else {
                report(node, "\(path) has \"${\" without a closing \"}\"")
                return nil
            }
            let name = String(rest[start.upperBound..<end])
            guard let value = environment[name] else {
                report(node, "\(path) uses ${\(name)}, but the environment variable \(name) is not set")
                return nil
            }
            output += value
            rest = rest[rest.index(after: end)...]
        }
        return output + rest
    }
}

/// Parses `1048576`, `512KiB`, `10MiB`, `1GiB` (or `KB`, `MB`, `GB`, the same powers of 1024); `nil` otherwise.
public func parseByteSize(_ text: String) -> Int? {
    let digits = text.prefix { $0.isASCII && $0.isNumber }
    guard let number = Int(digits) else { return nil }
    let units: [String: Int] = [
        "": 1, "B": 1, "KB": 1 << 10, "KiB": 1 << 10, "MB": 1 << 20, "MiB": 1 << 20, "GB": 1 << 30, "GiB": 1 << 30,
    ]
    guard let unit = units[String(text.dropFirst(digits.count))] else { return nil }
    let (size, overflow) = number.multipliedReportingOverflow(by: unit)
    return overflow ? nil : size
}

/// Parses `30s`, `5m`, `8h`, `1h30m`, `250ms`; `nil` for anything else.
public func parseDuration(_ text: String) -> Duration? {
    var total = Duration.zero
    var number = ""
    var rest = Substring(text)
    guard !rest.isEmpty else { return nil }
    while let character = rest.first {
        if character.isASCII, character.isNumber {
            number.append(character)
            rest.removeFirst()
            continue
        }
        guard let value = Int(number) else { return nil }
        number = ""
        if rest.hasPrefix("ms") {
            total += .milliseconds(value)
            rest.removeFirst(2)
            continue
        }
        switch rest.removeFirst() {
        case "s": total += .seconds(value)
        case "m": total += .seconds(value * 60)
        case "h": total += .seconds(value * 3600)
        default: return nil
        }
    }
    return number.isEmpty ? total : nil
}

/// Levenshtein distance, for "did you mean" suggestions on short keys.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a)
    let b = Array(b)
    var previous = Array(0...b.count)
    for (i, ca) in a.enumerated() {
        var current = [i + 1]
        for (j, cb) in b.enumerated() {
            current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (ca == cb ? 0 : 1)))
        }
        previous = current
    }
    return previous[b.count]
}
