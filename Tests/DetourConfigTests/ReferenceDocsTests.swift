import DetourPolicy
import Foundation
import Testing

@testable import DetourConfig

/// The reference pages list every key the loaders accept, so the docs cannot fall behind the code.
@Suite struct ReferenceDocsTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func document(_ name: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent("docs/\(name)"), encoding: .utf8)
    }

    /// The README and the docs link only files of the repository, and every one exists (issue 18).
    @Test(arguments: ["README.md", "docs/forward-auth.md", "docs/sessions.md", "docs/signin.md"])
    func linksStayInTheRepositoryAndResolve(page: String) throws {
        let file = Self.root.appendingPathComponent(page)
        let text = try String(contentsOf: file, encoding: .utf8)
        var links: [Substring] = []
        var rest = text[...]
        while let open = rest.range(of: "](") {
            let after = rest[open.upperBound...]
            guard let close = after.firstIndex(of: ")") else { break }
            links.append(after[..<close])
            rest = after[close...]
        }
        #expect(!links.isEmpty)
        for link in links {
            let path = link.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0]
            #expect(!link.contains("://") && !path.hasPrefix("/") && !path.hasPrefix(".."), "\(page): \(link)")
            if path.isEmpty { continue }
            let target = file.deletingLastPathComponent().appendingPathComponent(String(path)).path
            #expect(FileManager.default.fileExists(atPath: target), "\(page) links \(link), which does not exist")
        }
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
