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
///
/// A class: a decision reads it through one reference, copying none of its tables.
final class RuleIndex<Rule: Sendable>: Sendable {
    /// Rules by exact prefix, each list in written order, and the prefix lengths present, so that a
    /// candidate of another length costs no hashing.
    struct PathTable: Sendable {
        var rules = Keyed<[Rule]>()

        var isEmpty: Bool { rules.isEmpty }

        mutating func add(_ rule: Rule, prefix: Substring) {
            rules.update(prefix, default: []) { $0.append(rule) }
        }

        /// The first rule `accepts` among those for the first `length` bytes of `path`.
        func first(_ path: String, length: Int, where accepts: (Rule) -> Bool) -> Rule? {
            guard rules.hasKey(ofLength: length) else { return nil }
            return rules[path.utf8Prefix(length)]?.first(where: accepts)
        }
    }

    // Substring keys: a candidate prefix or host suffix is looked up without building a String.
    private let exact: Keyed<PathTable>
    private let wildcard: Keyed<PathTable>
    private let anyHost: PathTable
    private let foldsSpellings: Bool

    init(
        _ rules: [Rule], host: (Rule) -> HostPattern, path: (Rule) -> PathPrefix, foldingSpellings: Bool = false
    ) {
        var exact = Keyed<PathTable>()
        var wildcard = Keyed<PathTable>()
        var anyHost = PathTable()
        for rule in rules {
            let written = path(rule).value
            let prefix = Substring(foldingSpellings ? Self.routingKey(written) : written)
            switch host(rule) {
            case .exactly(let name):
                exact.update(Substring(name), default: PathTable()) { $0.add(rule, prefix: prefix) }
            case .subdomains(let suffix):
                wildcard.update(Substring(suffix), default: PathTable()) { $0.add(rule, prefix: prefix) }
            case .any:
                anyHost.add(rule, prefix: prefix)
            }
        }
        self.exact = exact
        self.wildcard = wildcard
        self.anyHost = anyHost
        foldsSpellings = foldingSpellings
    }

    /// Whether a rule names `host` (lower case, no port) exactly or by a wildcard; rules for any host do not count.
    func names(host: Substring) -> Bool {
        if exact[host] != nil { return true }
        return wildcardTables(of: host) { _ in true } ?? false
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
        if let rule = wildcardTables(of: host, { longestPrefix(in: $0, path: path, accepts) }) { return rule }
        return longestPrefix(in: anyHost, path: path, accepts)
    }

    /// The first answer `body` gives for the wildcard tables of `host`'s suffixes at label boundaries, longest
    /// first (a.b.example.com -> b.example.com -> example.com -> com); suffixes no wildcard has the length of are
    /// not looked up.
    private func wildcardTables<Answer>(of host: Substring, _ body: (PathTable) -> Answer?) -> Answer? {
        guard !wildcard.isEmpty else { return nil }
        let utf8 = host.utf8
        let count = utf8.count
        var offset = 0
        for byte in utf8 {
            offset += 1
            guard byte == UInt8(ascii: "."), wildcard.hasKey(ofLength: count - offset) else { continue }
            let suffix = Substring(utf8.suffix(count - offset))
            if let table = wildcard[suffix], let answer = body(table) { return answer }
        }
        return nil
    }

    /// Tries the prefixes that can match `path`, longest first: the path itself, then at each `/`
    /// from the right the prefix with and without that slash (`/a/b` -> `/a/`, `/a`, `/`).
    private func longestPrefix(in table: PathTable, path: String, _ accepts: (Rule) -> Bool) -> Rule? {
        guard !table.isEmpty else { return nil }
        let count = path.utf8.count
        if let rule = table.first(path, length: count, where: accepts) { return rule }
        if foldsSpellings, table.rules.hasKey(ofLength: count + 1), path.utf8.last != UInt8(ascii: "/"),
            let rule = table.first(path + "/", length: count + 1, where: accepts)
        {
            return rule
        }
        var end = count
        for byte in path.utf8.reversed() {
            end -= 1
            guard byte == UInt8(ascii: "/") else { continue }
            if end + 1 != count, let rule = table.first(path, length: end + 1, where: accepts) { return rule }
            if end != 0, let rule = table.first(path, length: end, where: accepts) { return rule }
        }
        return nil
    }

    /// The form route prefixes and paths compare in: ASCII lower case, and every segment without its trailing dots
    /// and encoded spaces (Windows servers serve `/ADMIN./` and `/admin%20/` as `/admin/`). The same string, not a
    /// copy, for the usual path that has none of these.
    static func routingKey(_ path: String) -> String {
        var path = path
        guard !path.withUTF8(isUsualKey) else { return path }
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

    /// Whether a path is its own routing key: no upper case, no `%`, no segment ending with a dot.
    private static func isUsualKey(_ path: UnsafeBufferPointer<UInt8>) -> Bool {
        var previous: UInt8 = 0
        for byte in path {
            if byte &- UInt8(ascii: "A") < 26 || byte == UInt8(ascii: "%")
                || (byte == UInt8(ascii: "/") && previous == UInt8(ascii: "."))
            {
                return false
            }
            previous = byte
        }
        return previous != UInt8(ascii: ".")
    }
}

extension String {
    /// The first `length` bytes, as a substring: `length` falls after a `/` or a `.` of ASCII, so on a character.
    fileprivate func utf8Prefix(_ length: Int) -> Substring {
        length == utf8.count ? self[...] : Substring(utf8.prefix(length))
    }
}

/// A table by substring key that also keeps which key lengths it holds, so that a key of a length it has none of is
/// ruled out without hashing.
struct Keyed<Value: Sendable>: Sendable {
    private var values: [Substring: Value] = [:]
    /// By length: whether some key has it.
    private var lengths: [Bool] = []

    var isEmpty: Bool { values.isEmpty }

    func hasKey(ofLength length: Int) -> Bool { length < lengths.count && lengths[length] }

    subscript(key: Substring) -> Value? { hasKey(ofLength: key.utf8.count) ? values[key] : nil }

    /// Changes the value for `key` (made from `initial` first, if there is none).
    mutating func update(_ key: Substring, default initial: Value, _ change: (inout Value) -> Void) {
        change(&values[key, default: initial])
        let length = key.utf8.count
        if lengths.count <= length { lengths += repeatElement(false, count: length + 1 - lengths.count) }
        lengths[length] = true
    }
}
