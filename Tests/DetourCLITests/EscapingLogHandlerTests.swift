import Logging
import Testing

@testable import detour

@Suite struct EscapingLogHandlerTests {
    @Test func controlCharactersAndBackslashesAreEscaped() {
        #expect(EscapingLogHandler.escape("plain text, ünïcode") == "plain text, ünïcode")
        #expect(EscapingLogHandler.escape("a\r\nINFO forged") == "a\\r\\nINFO forged")
        #expect(
            EscapingLogHandler.escape("t\tb\u{0}\u{1b}[31m\u{7f}\u{85}\u{2028}\u{2029}")
                == "t\\tb\\u{0}\\u{1b}[31m\\u{7f}\\u{85}\\u{2028}\\u{2029}")
        #expect(EscapingLogHandler.escape("a\\nb") == "a\\\\nb", "an escaped line reads back to one original")
        #expect(EscapingLogHandler.escape("evil\u{202E}txt.exe") == "evil\\u{202e}txt.exe", "no bidirectional override")
        #expect(
            EscapingLogHandler.escape(.string("/x sub=root \"y\"")) == .string("\"/x sub=root \\\"y\\\"\""),
            "a value cannot pass for fields of its own")
        #expect(EscapingLogHandler.escape(.string("plain")) == .string("plain"))
        let nested = EscapingLogHandler.escape(.dictionary(["k": .array([.stringConvertible("x\ny")])]))
        guard case .dictionary(let values) = nested, case .array(let items)? = values["k"],
            case .string(let text)? = items.first
        else {
            Issue.record("the shape is kept: \(nested)")
            return
        }
        #expect(text == "x\\ny")
    }
}
