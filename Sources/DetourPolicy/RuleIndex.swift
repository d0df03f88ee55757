/// Rules indexed by host, then by path prefix, so that finding the most specific rule for a request
/// costs a few hash look-ups whatever the number of rules.
///
/// Specificity (CONTRACT 5.1): an exact host before a wildcard host (longer suffix first) before no
/// host; within a host, the longest matching path prefix. Rules with the same host and prefix keep
/// their written order, so the first one wins and the others are shadowed (`policy check` says so).
/// With `foldingSpellings` (routes), a path meets the rules of every spelling an upstream may serve as
/// it: prefixes compare in ``routingKey(_:)``'s form (ASCII lower case, segments without trailing dots or
/// spaces), and a prefix ending in `/` also takes the path without that slash (`/admin` is Express's and
/// Spring's `/admin/`).
struct RuleIndex<Rule: Sendable>: Sendable {
    /// Rules by exact prefix, each list in written order, and the prefix lengths present, so that a
    /// candidate of another length costs no hashing.
    struct PathTable: Sendable {
        var rules: [Substring: [Rule]] = [:]
        var lengths: Set<Int> = []

        var isEmpty: Bool { rules.isEmpty }

        mutating func add(_ rule: Rule, prefix: Substring) {
            rules[prefix, default: []].append(rule)
            lengths.insert(prefix.utf8.count)
        }

        func first(_ candidate: Substring, where accepts: (Rule) -> Bool) -> Rule? {
            guard lengths.contains(candidate.utf8.count) else { return nil }
            return rules[candidate]?.first(where: accepts)
        }
    }

    // Substring keys: a candidate prefix or host suffix is looked up without building a String.
    private var exact: [Substring: PathTable] = [:]
    private var wildcard: [Substring: PathTable] = [:]
    private var anyHost = PathTable()
    private let foldsSpellings: Bool

    init(
        _ rules: [Rule], host: (Rule) -> HostPattern, path: (Rule) -> PathPrefix, foldingSpellings: Bool = false
    ) {
        foldsSpellings = foldingSpellings
        for rule in rules {
            let written = path(rule).value
            let prefix = Substring(foldingSpellings ? Self.routingKey(written) : written)
            switch host(rule) {
            case .exactly(let name): exact[Substring(name), default: PathTable()].add(rule, prefix: prefix)
            case .subdomains(let suffix): wildcard[Substring(suffix), default: PathTable()].add(rule, prefix: prefix)
            case .any: anyHost.add(rule, prefix: prefix)
            }
        }
    }

    /// Whether a rule names `host` (lower case, no port) exactly or by a wildcard; rules for any host do not count.
    func names(host: Substring) -> Bool {
        if exact[host] != nil { return true }
        guard !wildcard.isEmpty else { return false }
        let utf8 = host.utf8
        var index = utf8.startIndex
        while let dot = utf8[index...].firstIndex(of: UInt8(ascii: ".")) {
            index = utf8.index(after: dot)
            if wildcard[host[index...]] != nil { return true }
        }
        return false
    }

    /// The most specific rule for `host` (lower case, no port) and the normalised `path` that `accepts`.
    ///
    /// - Parameter key: with `foldingSpellings`, ``routingKey(_:)`` of `path` when the caller has it already.
    func first(
        host: Substring, path written: String, key: String? = nil, where accepts: (Rule) -> Bool = { _ in true }
    ) -> Rule? {
        // Most policies have no redirect rules: no host to hash then.
        if exact.isEmpty, wildcard.isEmpty, anyHost.isEmpty { return nil }
        let path = foldsSpellings ? key ?? Self.routingKey(written) : written
        if let table = exact[host], let rule = longestPrefix(in: table, path: path, accepts) { return rule }
        if !wildcard.isEmpty {
            // Suffixes of the host at label boundaries, longest first: a.b.example.com -> b.example.com -> ...
            let utf8 = host.utf8
            var index = utf8.startIndex
            while let dot = utf8[index...].firstIndex(of: UInt8(ascii: ".")) {
                index = utf8.index(after: dot)
                if let table = wildcard[host[index...]], let rule = longestPrefix(in: table, path: path, accepts) {
                    return rule
                }
            }
        }
        return longestPrefix(in: anyHost, path: path, accepts)
    }

    /// Tries the prefixes that can match `path`, longest first: the path itself, then at each `/`
    /// from the right the prefix with and without that slash (`/a/b` -> `/a/`, `/a`, `/`).
    private func longestPrefix(in table: PathTable, path: String, _ accepts: (Rule) -> Bool) -> Rule? {
        guard !table.isEmpty else { return nil }
        if let rule = table.first(path[...], where: accepts) { return rule }
        if foldsSpellings, table.lengths.contains(path.utf8.count + 1), path.utf8.last != UInt8(ascii: "/"),
            let rule = table.first(Substring(path + "/"), where: accepts)
        {
            return rule
        }
        let utf8 = path.utf8
        var end = utf8.endIndex
        while let slash = utf8[..<end].lastIndex(of: UInt8(ascii: "/")) {
            let afterSlash = utf8.index(after: slash)
            if afterSlash != utf8.endIndex, let rule = table.first(path[..<afterSlash], where: accepts) {
                return rule
            }
            if slash != utf8.startIndex, let rule = table.first(path[..<slash], where: accepts) {
                return rule
            }
            end = slash
        }
        return nil
    }

    /// The form route prefixes and paths compare in: ASCII lower case, and every segment without its trailing dots
    /// and encoded spaces (Windows servers serve `/ADMIN./` and `/admin%20/` as `/admin/`). The same string, not a
    /// copy, for the usual path that has none of these.
    static func routingKey(_ path: String) -> String {
        var previous: UInt8 = 0
        var usual = true
        for byte in path.utf8 {
            if byte &- UInt8(ascii: "A") < 26 || byte == UInt8(ascii: "%")
                || (byte == UInt8(ascii: "/") && previous == UInt8(ascii: "."))
            {
                usual = false
                break
            }
            previous = byte
        }
        guard !usual || previous == UInt8(ascii: ".") else { return path }
        var key: [UInt8] = []
        key.reserveCapacity(path.utf8.count)
        /// Drops the trailing dots and `%20`s of the segment `key` ends with.
        func trimSegment() {
            while let last = key.last, last != UInt8(ascii: "/") {
                if last == UInt8(ascii: ".") {
                    key.removeLast()
                } else if key.count >= 3, key.suffix(3).elementsEqual("%20".utf8) {
                    key.removeLast(3)
                } else {
                    return
                }
            }
        }
        for byte in path.utf8 {
            if byte == UInt8(ascii: "/") { trimSegment() }
            key.append(byte &- UInt8(ascii: "A") < 26 ? byte | 0x20 : byte)
        }
        trimSegment()
        return String(decoding: key, as: UTF8.self)
    }
}
