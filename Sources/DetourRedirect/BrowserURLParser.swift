extension BrowserURL {
    /// Parses `input` as a browser reads a link or `Location` value on a page whose URL is `base`.
    ///
    /// Follows the WHATWG basic URL parser for special schemes, state by state: leading and trailing
    /// C0 controls and spaces are stripped, tabs and newlines removed anywhere, `\` read as `/`,
    /// scheme-relative and path-relative references resolved against `base`, `https:x` (same scheme as
    /// the base: relative) and `http:/x` (other scheme: authority) spelled as the standard reads them,
    /// the host percent-decoded and normalised, dot segments (also `%2e`) removed, and the path, query
    /// and fragment percent-encoded with the standard's sets.
    public init(parsing input: String, against base: BrowserURL? = nil) throws(ParseError) {
        var parser = URLParser(input: input, base: base)
        self = try parser.parse()
    }
}

/// One run of the basic URL parser. Rather than a URL record, it writes the serialisation as it goes
/// (each component is final once written, in serialisation order), so a parse costs one buffer.
private struct URLParser {
    private enum State {
        case schemeStart, scheme, noScheme, specialRelativeOrAuthority, specialAuthoritySlashes
        case specialAuthorityIgnoreSlashes, relative, relativeSlash, authority, host, port
        case pathStart, path, query, fragment
    }

    private let input: [UInt8]
    private let base: BrowserURL?
    private var output: [UInt8] = []
    private var scheme = BrowserURL.Scheme.http
    private var host: Host?
    private var port: UInt16?
    private var hasCredentials = false
    private var pathStart = 0
    private var queryStart: Int?
    private var fragmentStart: Int?

    init(input: String, base: BrowserURL?) {
        self.input = Self.preprocess(input)
        self.base = base
        output.reserveCapacity(self.input.count + (base?.href.utf8.count ?? 0) + 8)
    }

    /// Strips leading and trailing C0 controls and spaces and removes every tab, LF and CR.
    private static func preprocess(_ input: String) -> [UInt8] {
        let bytes = input.utf8
        guard let first = bytes.firstIndex(where: { $0 > 0x20 }), let last = bytes.lastIndex(where: { $0 > 0x20 })
        else { return [] }
        return bytes[first...last].filter { $0 != 0x09 && $0 != 0x0A && $0 != 0x0D }
    }

    private static func isSlash(_ byte: UInt8?) -> Bool { byte == UInt8(ascii: "/") || byte == UInt8(ascii: "\\") }

    /// EOF, `/`, `\`, `?` or `#`: the bytes that end an authority, host or port.
    private static func endsAuthority(_ byte: UInt8?) -> Bool {
        byte == nil || isSlash(byte) || byte == UInt8(ascii: "?") || byte == UInt8(ascii: "#")
    }

    private func at(_ index: Int) -> UInt8? { index >= 0 && index < input.count ? input[index] : nil }

    mutating func parse() throws(BrowserURL.ParseError) -> BrowserURL {
        var state = State.schemeStart
        var pointer = 0
        var buffer: [UInt8] = []
        var atSignSeen = false
        var passwordTokenSeen = false
        var insideBrackets = false
        var username: [UInt8] = []
        var password: [UInt8] = []

        while true {
            let c = at(pointer)
            switch state {
            case .schemeStart:
                if let c, isASCIIAlpha(c) {
                    buffer.append(c | 0x20)
                    state = .scheme
                } else {
                    state = .noScheme
                    pointer -= 1
                }

            case .scheme:
                if let c, isASCIIAlpha(c) || isASCIIDigit(c) || c == UInt8(ascii: "+") || c == UInt8(ascii: "-")
                    || c == UInt8(ascii: ".")
                {
                    buffer.append(isASCIIAlpha(c) ? c | 0x20 : c)
                } else if c == UInt8(ascii: ":") {
                    let name = String(decoding: buffer, as: UTF8.self)
                    guard let parsed = BrowserURL.Scheme(rawValue: name) else {
                        throw BrowserURL.ParseError(.unsupportedScheme, scheme: name)
                    }
                    scheme = parsed
                    output.append(contentsOf: buffer)
                    output.append(UInt8(ascii: ":"))
                    buffer = []
                    state = base?.scheme == parsed ? .specialRelativeOrAuthority : .specialAuthoritySlashes
                } else {
                    // Not a scheme after all: start over as a relative reference.
                    buffer = []
                    state = .noScheme
                    pointer = -1
                }

            case .noScheme:
                guard base != nil else { throw .missingScheme }
                state = .relative
                pointer -= 1

            case .specialRelativeOrAuthority:
                if c == UInt8(ascii: "/"), at(pointer + 1) == UInt8(ascii: "/") {
                    state = .specialAuthorityIgnoreSlashes
                    pointer += 1
                } else {
                    state = .relative
                    pointer -= 1
                }

            case .specialAuthoritySlashes:
                state = .specialAuthorityIgnoreSlashes
                if c == UInt8(ascii: "/"), at(pointer + 1) == UInt8(ascii: "/") { pointer += 1 } else { pointer -= 1 }

            case .specialAuthorityIgnoreSlashes:
                if !Self.isSlash(c) {
                    state = .authority
                    pointer -= 1
                }

            case .relative:
                guard let base else { throw .missingScheme }
                scheme = base.scheme
                if Self.isSlash(c) {
                    output = Array(base.scheme.rawValue.utf8) + [UInt8(ascii: ":")]
                    state = .relativeSlash
                    break
                }
                copyBase(base, through: base.fragmentStart ?? base.href.utf8.count)
                pathStart = base.pathStart
                queryStart = base.queryStart
                if c == UInt8(ascii: "?") {
                    output.removeSubrange((base.queryStart ?? output.count)...)
                    startQuery()
                    state = .query
                } else if c == UInt8(ascii: "#") {
                    startFragment()
                    state = .fragment
                } else if c != nil {
                    output.removeSubrange((base.queryStart ?? output.count)...)
                    queryStart = nil
                    shortenPath()
                    state = .path
                    pointer -= 1
                }

            case .relativeSlash:
                guard let base else { throw .missingScheme }
                if Self.isSlash(c) {
                    state = .specialAuthorityIgnoreSlashes
                } else {
                    copyBase(base, through: base.pathStart)
                    pathStart = base.pathStart
                    state = .path
                    pointer -= 1
                }

            case .authority:
                if c == UInt8(ascii: "@") {
                    if atSignSeen { buffer.insert(contentsOf: Array("%40".utf8), at: 0) }
                    atSignSeen = true
                    for byte in buffer {
                        if byte == UInt8(ascii: ":"), !passwordTokenSeen {
                            passwordTokenSeen = true
                        } else if passwordTokenSeen {
                            password.appendPercentEncoded(byte, in: .userinfo)
                        } else {
                            username.appendPercentEncoded(byte, in: .userinfo)
                        }
                    }
                    buffer = []
                } else if Self.endsAuthority(c) {
                    if atSignSeen, buffer.isEmpty { throw .missingHost }
                    pointer -= buffer.count + 1
                    buffer = []
                    state = .host
                } else if let c {
                    buffer.append(c)
                }

            case .host:
                if c == UInt8(ascii: ":"), !insideBrackets {
                    guard !buffer.isEmpty else { throw .missingHost }
                    try writeAuthority(username: username, password: password, host: HostParser.parse(buffer[...]))
                    buffer = []
                    state = .port
                } else if Self.endsAuthority(c) {
                    pointer -= 1
                    guard !buffer.isEmpty else { throw .missingHost }
                    try writeAuthority(username: username, password: password, host: HostParser.parse(buffer[...]))
                    buffer = []
                    state = .pathStart
                } else if let c {
                    if c == UInt8(ascii: "[") { insideBrackets = true }
                    if c == UInt8(ascii: "]") { insideBrackets = false }
                    buffer.append(c)
                }

            case .port:
                if let c, isASCIIDigit(c) {
                    buffer.append(c)
                } else if Self.endsAuthority(c) {
                    if !buffer.isEmpty {
                        var value = 0
                        for digit in buffer { value = min(value * 10 + Int(digit - UInt8(ascii: "0")), 65_536) }
                        guard value <= 65_535 else { throw .invalidPort }
                        if value != Int(scheme.defaultPort) {
                            port = UInt16(value)
                            output.append(UInt8(ascii: ":"))
                            output.append(contentsOf: String(value).utf8)
                        }
                        buffer = []
                    }
                    state = .pathStart
                    pointer -= 1
                } else {
                    throw .invalidPort
                }

            case .pathStart:
                pathStart = output.count
                state = .path
                if !Self.isSlash(c) { pointer -= 1 }

            case .path:
                if Self.endsAuthority(c) {
                    let endsSegmentOnly = Self.isSlash(c)
                    if isDoubleDotSegment(buffer) {
                        shortenPath()
                        if !endsSegmentOnly { output.append(UInt8(ascii: "/")) }
                    } else if isSingleDotSegment(buffer) {
                        if !endsSegmentOnly { output.append(UInt8(ascii: "/")) }
                    } else {
                        output.append(UInt8(ascii: "/"))
                        output.append(contentsOf: buffer)
                    }
                    buffer = []
                    if c == UInt8(ascii: "?") {
                        startQuery()
                        state = .query
                    } else if c == UInt8(ascii: "#") {
                        startFragment()
                        state = .fragment
                    }
                } else if let c {
                    buffer.appendPercentEncoded(c, in: .path)
                }

            case .query:
                if c == UInt8(ascii: "#") {
                    startFragment()
                    state = .fragment
                } else if let c {
                    output.appendPercentEncoded(c, in: .specialQuery)
                }

            case .fragment:
                if let c { output.appendPercentEncoded(c, in: .fragment) }
            }

            if pointer >= input.count { break }
            pointer += 1
        }

        guard let host else { throw .missingHost }
        return BrowserURL(
            href: String(decoding: output, as: UTF8.self), scheme: scheme, host: host, port: port,
            hasCredentials: hasCredentials, pathStart: pathStart, queryStart: queryStart, fragmentStart: fragmentStart
        )
    }

    private mutating func copyBase(_ base: BrowserURL, through end: Int) {
        output = Array(base.href.utf8.prefix(end))
        host = base.host
        port = base.port
        hasCredentials = base.hasCredentials
    }

    private mutating func writeAuthority(username: [UInt8], password: [UInt8], host: Host) {
        output.append(contentsOf: "//".utf8)
        if !username.isEmpty || !password.isEmpty {
            hasCredentials = true
            output.append(contentsOf: username)
            if !password.isEmpty {
                output.append(UInt8(ascii: ":"))
                output.append(contentsOf: password)
            }
            output.append(UInt8(ascii: "@"))
        }
        output.append(contentsOf: host.description.utf8)
        self.host = host
    }

    /// Removes the path's last segment, if it has one (the standard's "shorten a URL's path").
    private mutating func shortenPath() {
        guard output.count > pathStart else { return }
        var end = output.count - 1
        while end > pathStart, output[end] != UInt8(ascii: "/") { end -= 1 }
        output.removeSubrange(end...)
    }

    private mutating func startQuery() {
        queryStart = output.count
        output.append(UInt8(ascii: "?"))
    }

    private mutating func startFragment() {
        fragmentStart = output.count
        output.append(UInt8(ascii: "#"))
    }

    private func isSingleDotSegment(_ segment: [UInt8]) -> Bool {
        segment == [UInt8(ascii: ".")] || (segment.count == 3 && isEncodedDot(segment[...]))
    }

    private func isDoubleDotSegment(_ segment: [UInt8]) -> Bool {
        switch segment.count {
        case 2: return segment == [UInt8(ascii: "."), UInt8(ascii: ".")]
        case 4:
            return (segment[0] == UInt8(ascii: ".") && isEncodedDot(segment[1...]))
                || (segment[3] == UInt8(ascii: ".") && isEncodedDot(segment[0..<3]))
        case 6: return isEncodedDot(segment[0..<3]) && isEncodedDot(segment[3...])
        default: return false
        }
    }

    private func isEncodedDot(_ bytes: ArraySlice<UInt8>) -> Bool {
        bytes.count == 3 && bytes.first == UInt8(ascii: "%") && bytes[bytes.startIndex + 1] == UInt8(ascii: "2")
            && bytes[bytes.startIndex + 2] | 0x20 == UInt8(ascii: "e")
    }
}

@inline(__always) func isASCIIAlpha(_ byte: UInt8) -> Bool { (byte | 0x20) >= 0x61 && (byte | 0x20) <= 0x7A }
@inline(__always) func isASCIIDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }
