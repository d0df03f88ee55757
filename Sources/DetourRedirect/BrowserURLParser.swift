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
        var input = input
        return input.withUTF8 { bytes in
            guard let first = bytes.firstIndex(where: { $0 > 0x20 }), let last = bytes.lastIndex(where: { $0 > 0x20 })
            else { return [] }
            let trimmed = UnsafeBufferPointer(rebasing: bytes[first...last])
            guard trimmed.contains(where: { $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }) else { return Array(trimmed) }
            return trimmed.filter { $0 != 0x09 && $0 != 0x0A && $0 != 0x0D }
        }
    }

    private static func isSlash(_ byte: UInt8?) -> Bool { byte == UInt8(ascii: "/") || byte == UInt8(ascii: "\\") }

    /// EOF, `/`, `\`, `?` or `#`: the bytes that end an authority, host or port.
    private static func endsAuthority(_ byte: UInt8?) -> Bool {
        byte == nil || isSlash(byte) || byte == UInt8(ascii: "?") || byte == UInt8(ascii: "#")
    }

    private static func scheme(_ name: [UInt8]) -> BrowserURL.Scheme? {
        guard name.count >= 4, name[0] == UInt8(ascii: "h"), name[1] == UInt8(ascii: "t"), name[2] == UInt8(ascii: "t"),
            name[3] == UInt8(ascii: "p")
        else { return nil }
        if name.count == 4 { return .http }
        return name.count == 5 && name[4] == UInt8(ascii: "s") ? .https : nil
    }

    private func at(_ index: Int) -> UInt8? { index >= 0 && index < input.count ? input[index] : nil }

    mutating func parse() throws(BrowserURL.ParseError) -> BrowserURL {
        var state = State.schemeStart
        var pointer = 0
        var buffer: [UInt8] = []  // the scheme
        var bufferStart = 0  // where the authority, host or port being read starts in the input
        var segmentStart: Int?  // where the path segment being read starts in the output
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
                if let c,
                    isASCIIAlpha(c) || isASCIIDigit(c) || c == UInt8(ascii: "+") || c == UInt8(ascii: "-")
                        || c == UInt8(ascii: ".")
                {
                    buffer.append(isASCIIAlpha(c) ? c | 0x20 : c)
                } else if c == UInt8(ascii: ":") {
                    guard let parsed = Self.scheme(buffer) else {
                        throw BrowserURL.ParseError(.unsupportedScheme, scheme: String(decoding: buffer, as: UTF8.self))
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
                    bufferStart = pointer
                    pointer -= 1
                }

            case .relative:
                guard let base else { throw .missingScheme }
                scheme = base.scheme
                if Self.isSlash(c) {
                    output.removeAll(keepingCapacity: true)
                    output.append(contentsOf: base.scheme.rawValue.utf8)
                    output.append(UInt8(ascii: ":"))
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
                    // An earlier "@" belongs to the userinfo, as "%40".
                    if atSignSeen, passwordTokenSeen {
                        password.append(contentsOf: "%40".utf8)
                    } else if atSignSeen {
                        username.append(contentsOf: "%40".utf8)
                    }
                    atSignSeen = true
                    for byte in input[bufferStart..<pointer] {
                        if byte == UInt8(ascii: ":"), !passwordTokenSeen {
                            passwordTokenSeen = true
                        } else if passwordTokenSeen {
                            password.appendPercentEncoded(byte, in: .userinfo)
                        } else {
                            username.appendPercentEncoded(byte, in: .userinfo)
                        }
                    }
                    bufferStart = pointer + 1
                } else if Self.endsAuthority(c) {
                    if atSignSeen, bufferStart == pointer { throw .missingHost }
                    pointer = bufferStart - 1
                    state = .host
                }

            case .host:
                if c == UInt8(ascii: ":"), !insideBrackets {
                    guard bufferStart < pointer else { throw .missingHost }
                    try writeAuthority(
                        username: username, password: password, host: HostParser.parse(input[bufferStart..<pointer]))
                    bufferStart = pointer + 1
                    state = .port
                } else if Self.endsAuthority(c) {
                    guard bufferStart < pointer else { throw .missingHost }
                    try writeAuthority(
                        username: username, password: password, host: HostParser.parse(input[bufferStart..<pointer]))
                    pointer -= 1
                    state = .pathStart
                } else if c == UInt8(ascii: "[") {
                    insideBrackets = true
                } else if c == UInt8(ascii: "]") {
                    insideBrackets = false
                }

            case .port:
                if let c, isASCIIDigit(c) {
                    break  // another digit of the port
                }
                guard Self.endsAuthority(c) else { throw .invalidPort }
                do {
                    if bufferStart < pointer {
                        var value = 0
                        for digit in input[bufferStart..<pointer] {
                            value = min(value * 10 + Int(digit - UInt8(ascii: "0")), 65_536)
                        }
                        guard value <= 65_535 else { throw .invalidPort }
                        if value != Int(scheme.defaultPort) {
                            port = UInt16(value)
                            output.append(UInt8(ascii: ":"))
                            output.append(contentsOf: String(value).utf8)
                        }
                    }
                    state = .pathStart
                    pointer -= 1
                }

            case .pathStart:
                pathStart = output.count
                state = .path
                if !Self.isSlash(c) { pointer -= 1 }

            case .path:
                // The segment is written to the output as it is read, after its "/", and taken back
                // out if it turns out to be a dot segment.
                if segmentStart == nil {
                    segmentStart = output.count
                    output.append(UInt8(ascii: "/"))
                }
                guard Self.endsAuthority(c), let start = segmentStart else {
                    if let c { output.appendPercentEncoded(c, in: .path) }
                    break
                }
                let endsSegmentOnly = Self.isSlash(c)
                let segment = output[(start + 1)...]
                if isDoubleDotSegment(segment) {
                    output.removeSubrange(start...)
                    shortenPath()
                    if !endsSegmentOnly { output.append(UInt8(ascii: "/")) }
                } else if isSingleDotSegment(segment) {
                    output.removeSubrange(start...)
                    if !endsSegmentOnly { output.append(UInt8(ascii: "/")) }
                }
                segmentStart = nil
                if c == UInt8(ascii: "?") {
                    startQuery()
                    state = .query
                } else if c == UInt8(ascii: "#") {
                    startFragment()
                    state = .fragment
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
        output.removeAll(keepingCapacity: true)
        var href = base.href
        href.withUTF8 { output.append(contentsOf: UnsafeBufferPointer(rebasing: $0[..<end])) }
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

    /// `.` or `%2e` (any case).
    private func isSingleDotSegment(_ segment: ArraySlice<UInt8>) -> Bool {
        (segment.count == 1 && segment.first == UInt8(ascii: ".")) || isEncodedDot(segment)
    }

    /// `..`, `.%2e`, `%2e.` or `%2e%2e` (any case).
    private func isDoubleDotSegment(_ segment: ArraySlice<UInt8>) -> Bool {
        let start = segment.startIndex
        switch segment.count {
        case 2: return segment.first == UInt8(ascii: ".") && segment.last == UInt8(ascii: ".")
        case 4:
            return (segment.first == UInt8(ascii: ".") && isEncodedDot(segment.dropFirst()))
                || (segment.last == UInt8(ascii: ".") && isEncodedDot(segment.dropLast()))
        case 6: return isEncodedDot(segment[start..<start + 3]) && isEncodedDot(segment[(start + 3)...])
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
