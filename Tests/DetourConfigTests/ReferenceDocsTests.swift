import DetourPolicy
import Foundation
import Testing

@testable import DetourConfig

/// The reference pages list every key the loaders accept, so the docs cannot fall behind the code.
@Suite struct ReferenceDocsTests {
    static func document(_ name: String) throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return try String(contentsOf: root.appendingPathComponent("docs/\(name)"), encoding: .utf8)
    }

    @Test func everyConfigurationKeyIsDocumented() throws {
        let page = try Self.document("configuration.md")
        let missing = Configuration.allKeys.filter { !page.contains("`\($0)`") }
        #expect(missing.isEmpty, "docs/configuration.md does not document \(missing)")
    }

    @Test func everyPolicyKeyIsDocumented() throws {
        let page = try Self.document("policies.md")
        let missing = PolicySet.allKeys.filter { !page.contains("`\($0)") }
        #expect(missing.isEmpty, "docs/policies.md does not document \(missing)")
    }
}
