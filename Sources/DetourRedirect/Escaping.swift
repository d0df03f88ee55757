/// Escaping for text and attribute values in HTML.
public enum HTML {
    public static func escape(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 == 0x26 || $0 == 0x3C || $0 == 0x3E || $0 == 0x22 || $0 == 0x27 }) else {
            return text
        }
        // Byte by byte: the five are ASCII, so no UTF-8 sequence is ever split; a URL full of `&` (an authorization
        // request) is escaped in one pass over its bytes, not a scalar at a time.
        var escaped: [UInt8] = []
        escaped.reserveCapacity(text.utf8.count + 64)
        for byte in text.utf8 {
            switch byte {
            case 0x26: escaped.append(contentsOf: "&amp;".utf8)
            case 0x3C: escaped.append(contentsOf: "&lt;".utf8)
            case 0x3E: escaped.append(contentsOf: "&gt;".utf8)
            case 0x22: escaped.append(contentsOf: "&quot;".utf8)
            case 0x27: escaped.append(contentsOf: "&#39;".utf8)
            default: escaped.append(byte)
            }
        }
        return String(decoding: escaped, as: UTF8.self)
    }
}

/// The few JSON objects Detour writes itself: flat, string-valued, keys in the given order.
public enum JSON {
    public static func object(_ fields: KeyValuePairs<String, String>) -> String {
        object(fields.map { (name: $0.key, value: $0.value) })
    }

    public static func object(_ fields: [(name: String, value: String)]) -> String {
        "{" + fields.map { "\(string($0.name)):\(string($0.value))" }.joined(separator: ",") + "}"
    }

    /// A JSON string literal (RFC 8259 section 7); `<`, `>` and `&` are escaped too, so the text is
    /// inert if a browser ever sniffs it as HTML, and so are C1 controls, line separators and bidirectional
    /// overrides, so that a line read raw shows what it holds.
    public static func string(_ value: String) -> String {
        var output = ""
        append(value, to: &output)
        return output
    }

    /// Appends `value` as a JSON string literal (as ``string(_:)`` writes it), or `null` for `nil`.
    public static func append(_ value: String?, to output: inout String) {
        guard let value else {
            output += "null"
            return
        }
        // Most values (times, ids, addresses, paths) need no escape: appended whole.
        if value.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F && !needsEscape($0) }) {
            output += "\""
            output += value
            output += "\""
            return
        }
        output += "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": output += "\\\""
            case "\\": output += "\\\\"
            case "\n": output += "\\n"
            case "\r": output += "\\r"
            case "\t": output += "\\t"
            case "<", ">", "&", "\u{00}"..."\u{1F}", "\u{7F}"..."\u{9F}", "\u{200E}", "\u{200F}",
                "\u{2028}"..."\u{202E}", "\u{2066}"..."\u{2069}":
                let hex = String(scalar.value, radix: 16)
                output += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: output.unicodeScalars.append(scalar)
            }
        }
        output += "\""
    }

    /// `"`, `\`, `<`, `>` and `&`: the printable ASCII bytes ``append(_:to:)`` escapes.
    private static func needsEscape(_ byte: UInt8) -> Bool {
        byte == 0x22 || byte == 0x5C || byte == 0x3C || byte == 0x3E || byte == 0x26
    }
}
