import DetourRedirect

/// A request's path and query after Detour's one normalisation (CONTRACT section 7).
///
/// Routing, `public` prefixes and the upstream all see this same path, so no spelling of a path can be
/// matched as one thing and served as another. Normalisation: dot segments removed (RFC 3986 5.2.4),
/// repeated slashes merged, percent-encoded unreserved characters decoded and other escapes upper-cased
/// (RFC 3986 6.2.2), raw non-ASCII bytes percent-encoded. Spellings whose meaning differs between
/// servers are refused instead (CONTRACT section 7): encoded slashes and backslashes, backslashes,
/// encoded dot segments, `;` path parameters (Tomcat and Spring drop them, so `/admin;x/` would reach
/// `/admin/`), a `#` anywhere in the target (no client sends a fragment, and an upstream would cut
/// the path there), NUL and other control characters.
public struct RequestPath: Sendable, Hashable, CustomStringConvertible {
    /// The normalised path, starting with `/`.
    public let path: String
    /// The query as the client sent it, without `?`.
    public let query: String?

    /// The path and query, as forwarded upstream.
    public var description: String { appended(to: "") }

    /// `origin` followed by the path and query, built in one buffer.
    public func appended(to origin: String) -> String {
        var url = origin
        url.reserveCapacity(origin.utf8.count + path.utf8.count + (query.map { $0.utf8.count + 1 } ?? 0))
        url += path
        if let query {
            url += "?"
            url += query
        }
        return url
    }

    /// Why a request target was refused (answered 400); the raw value is a stable reason code.
    public enum Rejection: String, Sendable, Hashable, Error {
        case notOriginForm = "bad-path-not-origin-form"
        case controlCharacter = "bad-path-control-character"
        case backslash = "bad-path-backslash"
        case encodedSlash = "bad-path-encoded-slash"
        case encodedBackslash = "bad-path-encoded-backslash"
        case encodedDotSegment = "bad-path-encoded-dot-segment"
        case pathParameters = "bad-path-parameters"
        case fragment = "bad-path-fragment"
        case malformedPercentEncoding = "bad-path-percent-encoding"
    }

    /// Normalises an origin-form request target (`/path?query`).
    public init(normalizing target: String) throws(Rejection) {
        var target = target
        // Read in place: where the query starts, whether it is sendable, and whether the path needs any work.
        let (pathLength, queryProblem, normal) = target.withUTF8(Self.survey)
        guard target.utf8.first == UInt8(ascii: "/") else { throw .notOriginForm }
        if let queryProblem { throw queryProblem }
        guard pathLength < target.utf8.count else {
            (path, query) = (normal ? target : try Self.normalizedPath(target[...]), nil)
            return
        }
        // Split where the bytes are: `?` is ASCII, so both halves are whole characters.
        let (pathPart, queryPart) = target.withUTF8 { bytes in
            (
                String(decoding: UnsafeBufferPointer(rebasing: bytes[..<pathLength]), as: UTF8.self),
                String(decoding: UnsafeBufferPointer(rebasing: bytes[(pathLength + 1)...]), as: UTF8.self)
            )
        }
        path = normal ? pathPart : try Self.normalizedPath(pathPart[...])
        query = queryPart
    }

    /// A path that needs work: dot segments, repeated slashes, escapes (see the type's guarantees).
    private static func normalizedPath(_ pathPart: Substring) throws(Rejection) -> String {
        var segments: [String] = []
        let raw = pathPart.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).dropFirst()
        var endsWithSlash = false
        for (index, rawSegment) in raw.enumerated() {
            let isLast = index == raw.count - 1
            guard !rawSegment.isEmpty else {
                if isLast { endsWithSlash = !segments.isEmpty }
                continue  // "//" is "/"
            }
            let (segment, hadEncodedDot) = try normalizeSegment(rawSegment)
            if segment == "." || segment == ".." {
                guard !hadEncodedDot else { throw .encodedDotSegment }
                if segment == "..", !segments.isEmpty { segments.removeLast() }
                if isLast { endsWithSlash = !segments.isEmpty }
                continue
            }
            segments.append(segment)
        }
        return "/" + segments.joined(separator: "/") + (endsWithSlash ? "/" : "")
    }

    /// One pass over a target: the length of its path (up to the first `?`), what is wrong with its query, if
    /// anything (a control character, or a `#`), and whether the path is in the common case that needs no work:
    /// printable ASCII without `%`, `\`, `;`, `#`, `//` or any segment starting with a dot (so no dot segment).
    private static func survey(_ target: UnsafeBufferPointer<UInt8>) -> (Int, Rejection?, Bool) {
        var previous: UInt8 = 0
        var normal = true
        var index = 0
        while index < target.count, target[index] != UInt8(ascii: "?") {
            let byte = target[index]
            switch byte {
            case 0...0x20, 0x7F..., UInt8(ascii: "%"), UInt8(ascii: "\\"), UInt8(ascii: ";"), UInt8(ascii: "#"):
                normal = false
            default:
                if previous == UInt8(ascii: "/"), byte == UInt8(ascii: "/") || byte == UInt8(ascii: ".") {
                    normal = false
                }
            }
            previous = byte
            index += 1
        }
        for byte in target[min(index + 1, target.count)...] {
            if byte < 0x20 || byte == 0x7F { return (index, .controlCharacter, normal) }
            if byte == UInt8(ascii: "#") { return (index, .fragment, normal) }
        }
        return (index, nil, normal)
    }

    /// One segment, percent-encoding normalised; reports whether an escape decoded to ".".
    private static func normalizeSegment(_ bytes: Substring.UTF8View.SubSequence) throws(Rejection) -> (String, Bool) {
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var hadEncodedDot = false
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            index = bytes.index(after: index)
            switch byte {
            case 0x00..<0x20, 0x7F: throw .controlCharacter
            case UInt8(ascii: "\\"): throw .backslash
            case UInt8(ascii: ";"): throw .pathParameters
            case UInt8(ascii: "#"): throw .fragment
            case UInt8(ascii: "%"):
                guard index < bytes.endIndex, let high = hexValue(bytes[index]),
                    bytes.index(after: index) < bytes.endIndex, let low = hexValue(bytes[bytes.index(after: index)])
                else { throw .malformedPercentEncoding }
                index = bytes.index(index, offsetBy: 2)
                let decoded = high << 4 | low
                switch decoded {
                case 0x00..<0x20, 0x7F: throw .controlCharacter
                case UInt8(ascii: "/"): throw .encodedSlash
                case UInt8(ascii: "\\"): throw .encodedBackslash
                case _ where isUnreserved(decoded):
                    if decoded == UInt8(ascii: ".") { hadEncodedDot = true }
                    output.append(decoded)
                default: appendEscaped(decoded, to: &output)
                }
            case 0x80...: appendEscaped(byte, to: &output)
            default: output.append(byte)
            }
        }
        return (String(decoding: output, as: UTF8.self), hadEncodedDot)
    }

    /// RFC 3986 2.3.
    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
            UInt8(ascii: "~"):
            true
        default: false
        }
    }

    private static func appendEscaped(_ byte: UInt8, to output: inout [UInt8]) {
        let digits = Array("0123456789ABCDEF".utf8)
        output.append(contentsOf: [UInt8(ascii: "%"), digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]])
    }
}
