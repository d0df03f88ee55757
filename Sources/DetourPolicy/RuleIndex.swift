/// Rules indexed by host, then by path prefix, so that finding the most specific rule for a request
/// costs a few hash look-ups whatever the number of rules.
///
/// Specificity (CONTRACT 5.1): an exact host before a wildcard host (longer suffix first) before no
/// host; within a host, the longest matching path prefix. Rules with the same host and prefix keep
/// their written order, so the first one wins and the others are shadowed (`policy check` says so).
struct RuleIndex<Rule: Sendable>: Sendable {
    /// Rules by exact prefix, each list in written order.
    typealias PathTable = [String: [Rule]]

    private var exact: [String: PathTable] = [:]
    private var wildcard: [String: PathTable] = [:]
    private var anyHost: PathTable = [:]

    init(_ rules: [Rule], host: (Rule) -> HostPattern, path: (Rule) -> PathPrefix) {
        for rule in rules {
            let prefix = path(rule).value
            switch host(rule) {
            case .exactly(let name): exact[name, default: [:]][prefix, default: []].append(rule)
            case .subdomains(let suffix): wildcard[suffix, default: [:]][prefix, default: []].append(rule)
            case .any: anyHost[prefix, default: []].append(rule)
            }
        }
    }

    /// The most specific rule for `host` (lower case, no port) and the normalised `path` that `accepts`.
    func first(host: String, path: String, where accepts: (Rule) -> Bool = { _ in true }) -> Rule? {
        if let table = exact[host], let rule = Self.longestPrefix(in: table, path: path, accepts) { return rule }
        if !wildcard.isEmpty {
            // Suffixes of the host at label boundaries, longest first: a.b.example.com -> b.example.com -> ...
            var index = host.startIndex
            while let dot = host[index...].firstIndex(of: ".") {
                let suffix = host[host.index(after: dot)...]
                if let table = wildcard[String(suffix)], let rule = Self.longestPrefix(in: table, path: path, accepts) {
                    return rule
                }
                index = host.index(after: dot)
            }
        }
        return Self.longestPrefix(in: anyHost, path: path, accepts)
    }

    /// Tries the prefixes that can match `path`, longest first: the path itself, then at each `/`
    /// from the right the prefix with and without that slash (`/a/b` -> `/a/`, `/a`, `/`).
    private static func longestPrefix(in table: PathTable, path: String, _ accepts: (Rule) -> Bool) -> Rule? {
        guard !table.isEmpty else { return nil }
        if let rule = table[path]?.first(where: accepts) { return rule }
        var end = path.endIndex
        while let slash = path[..<end].lastIndex(of: "/") {
            let withSlash = path[...slash]
            if withSlash.endIndex != path.endIndex, let rule = table[String(withSlash)]?.first(where: accepts) {
                return rule
            }
            if slash != path.startIndex, let rule = table[String(path[..<slash])]?.first(where: accepts) {
                return rule
            }
            end = slash
        }
        return nil
    }
}
