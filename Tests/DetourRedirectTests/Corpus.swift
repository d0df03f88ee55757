import Foundation

@testable import DetourRedirect

/// The target corpora in `Tests/corpus/` and the allowlist they are written for.
enum Corpus {
    struct Entry {
        let source: String
        let target: String
    }

    private struct Group: Decodable {
        let source: String
        let targets: [String]
    }

    static func load(_ name: String) -> [Entry] {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("corpus/\(name).json")
        do {
            let groups = try JSONDecoder().decode([Group].self, from: Data(contentsOf: file))
            return groups.flatMap { group in group.targets.map { Entry(source: group.source, target: $0) } }
        } catch {
            fatalError("cannot read \(file.path): \(error)")
        }
    }

    static let allowedHostEntries = ["app.example.com", "*.corp.example", "localhost:8080"]

    static func policy() throws -> ReturnTargetPolicy {
        ReturnTargetPolicy(
            base: try BrowserURL(parsing: "https://auth.example.com/"),
            allowedHosts: try allowedHostEntries.map { try AllowedHost(parsing: $0) }
        )
    }

    /// Whether Node's reading of a URL lands on an origin the corpus allowlist allows, checked
    /// independently of Detour's matcher.
    static func isAllowedOrigin(_ answer: NodeURL.Answer) -> Bool {
        guard let host = answer.host, let scheme = answer.protocolName else { return false }
        if host == "localhost:8080" { return scheme == "http:" || scheme == "https:" }
        guard scheme == "https:" else { return false }
        if host == "auth.example.com" || host == "app.example.com" { return true }
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        return host.hasSuffix(".corp.example") && labels.count > 2 && !labels.contains(where: \.isEmpty)
            && !host.contains(":")
    }
}
