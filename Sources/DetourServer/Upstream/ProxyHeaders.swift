import DetourGateway
import DetourRedirect
import NIOHTTP1

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The header rules between a client and an upstream (RFC 9110 7.6.1; CONTRACT sections 2 and 7).
///
/// Guarantees:
/// - Names are compared the way servers compare them: ASCII case-insensitively, with `_` read as `-`. No spelling
///   of a hop-by-hop or identity header gets through.
/// - A forwarded body keeps the framing the parser read it by: `Content-Length` is passed on whatever `Connection`
///   says, and a chunked body is announced as chunked again. Otherwise the upstream would read the body as the next
///   request (request smuggling).
/// - ``firstInvalidValue(in:)`` finds the values that cannot be sent (RFC 9110 5.5: a CR, LF, NUL or other control
///   byte). The gateway applies it to what Detour adds (claims, tokens), so values from claims cannot add a
///   header; the client's and the upstream's own headers were already refused by SwiftNIO's HTTP/1.1 parser or,
///   over HTTP/2, by ``RequestFraming``.
/// - The usual request and response (no `Connection` tokens beyond `keep-alive` and `close`, no identity headers)
///   are handled without building any string but the ones forwarded.
enum ProxyHeaders {
    /// Hop-by-hop headers (RFC 9110 7.6.1), in their normalised spelling.
    static let hopByHop = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
        "proxy-authorization", "proxy-authenticate",
    ]

    /// Headers only Detour may send upstream, in their normalised spelling (CONTRACT section 7): besides the
    /// identity headers (all of them start with a prefix below), who the client is (`Forwarded`, `X-Real-IP`),
    /// and the URL and method overrides some frameworks obey (`X-Original-URL`, `X-Rewrite-URL`; Express's,
    /// Symfony's and ASP.NET's `X-HTTP-Method-Override` and kin, which would get around a route's `methods`). A
    /// client's are removed, whoever it is; Detour sends its own `X-Forwarded-For` (the chain, from trusted
    /// proxies), `-Proto` and `-Host`.
    static let identity = [
        "forwarded", "x-real-ip", "x-original-url", "x-rewrite-url", "x-http-method-override", "x-http-method",
        "x-method-override",
    ]
    /// `X-Auth-Request-*` (forward-auth's identity headers) and every `X-Forwarded-*`.
    static let identityPrefixes = ["x-auth-request-", "x-forwarded-"]

    /// Whether `name` is a spelling of `normalized` (lower case, `-`).
    static func name(_ name: some StringProtocol, spells normalized: String) -> Bool {
        name.utf8.count == normalized.utf8.count && startsWithSpelling(name, of: normalized)
    }

    /// Whether `name` starts with a spelling of `normalized` (lower case, `-`). Compared over contiguous bytes: it
    /// runs for every header of every request, and iterating a generic string's view byte by byte costs a call each.
    private static func startsWithSpelling(_ name: some StringProtocol, of normalized: String) -> Bool {
        let spelled = normalized.utf8.withContiguousStorageIfAvailable { expected in
            name.utf8.withContiguousStorageIfAvailable { bytes in
                bytes.count >= expected.count && zip(bytes, expected).allSatisfy { normalizedByte($0) == $1 }
            }
        }
        return (spelled ?? nil) ?? name.utf8.starts(with: normalized.utf8) { normalizedByte($0) == $1 }
    }

    private static func normalizedByte(_ byte: UInt8) -> UInt8 {
        byte == UInt8(ascii: "_") ? UInt8(ascii: "-") : (byte &- UInt8(ascii: "A") < 26 ? byte | 0x20 : byte)
    }

    /// Lower case, `_` as `-`: the spelling servers treat all others as.
    static func normalized(_ name: some StringProtocol) -> String {
        String(decoding: name.utf8.map(normalizedByte), as: UTF8.self)
    }

    /// Whether a header is hop-by-hop (RFC 9110 7.6.1); most names are ruled out by their length alone.
    static func isHopByHop(_ name: String) -> Bool {
        switch name.utf8.count {
        case 2, 7, 10, 16, 17, 18, 19: hopByHop.contains { self.name(name, spells: $0) }
        default: false
        }
    }

    /// Whether only Detour may set this header.
    static func isIdentity(_ name: String) -> Bool {
        // Only names starting with "x" or "f" can be; most headers leave here.
        guard let first = name.utf8.first, first | 0x20 == UInt8(ascii: "x") || first | 0x20 == UInt8(ascii: "f")
        else { return false }
        return identityPrefixes.contains { name.utf8.count > $0.utf8.count && startsWithSpelling(name, of: $0) }
            || identity.contains { self.name(name, spells: $0) }
    }

    /// Headers the `Connection` header names as hop-by-hop (RFC 9110 7.6.1) beyond the usual ones, normalised;
    /// empty, and nothing allocated, for `keep-alive` and `close`. `Content-Length` is never one: it frames the body
    /// the parser read, and a request sent on without it would leave its body to be read as the next request.
    static func connectionNamed(_ headers: HTTPHeaders) -> [String] {
        var named: [String] = []
        for (name, value) in headers where self.name(name, spells: "connection") {
            var rest = Substring(value)
            while !rest.isEmpty {
                let comma = rest.utf8.firstIndex(of: UInt8(ascii: ",")) ?? rest.endIndex
                let token = trimmed(rest[..<comma])
                if !token.isEmpty, !self.name(token, spells: "keep-alive"), !self.name(token, spells: "close"),
                    !self.name(token, spells: "content-length")
                {
                    named.append(normalized(token))
                }
                rest = comma == rest.endIndex ? "" : rest[rest.utf8.index(after: comma)...]
            }
        }
        return named
    }

    /// Whether a header is not passed on: hop-by-hop, or named by `Connection` (`named`, normalised).
    static func isDropped(_ name: String, named: [String]) -> Bool {
        isHopByHop(name) || (!named.isEmpty && named.contains { self.name(name, spells: $0) })
    }

    /// The client's headers as the upstream gets them: without hop-by-hop headers, identity headers and Detour's
    /// cookies. A list, with room for Detour's own, that becomes one `HTTPHeaders` at the end (`add` checks
    /// each name again; these names were read by the parser or are Detour's).
    ///
    /// A body the client sent chunked is forwarded chunked, whatever the method: `Transfer-Encoding` is hop-by-hop,
    /// but without it a GET's or DELETE's body would reach the upstream unframed, and be read there as the next
    /// request (request smuggling). The request parser decoded the client's chunks (it refuses any other final
    /// coding, and `Transfer-Encoding` beside `Content-Length`), so `chunked` is the whole story. Only the name the
    /// parser frames by counts: a `Transfer_Encoding` is dropped like any spelling of a hop-by-hop header, but its
    /// body was framed by `Content-Length`, which stays the only framing.
    static func forUpstream(_ headers: HTTPHeaders, cookiePrefix: String) -> [(String, String)] {
        let named = connectionNamed(headers)
        var result: [(String, String)] = []
        result.reserveCapacity(headers.count + 8)
        var chunked = false
        for (name, value) in headers {
            if isDropped(name, named: named) {
                chunked = chunked || isTransferEncoding(name)
            } else if isIdentity(name) {
                continue
            } else if self.name(name, spells: "cookie") {
                if let kept = removingOwnCookies(from: value, prefix: cookiePrefix) { result.append((name, kept)) }
            } else {
                result.append((name, value))
            }
        }
        if chunked { result.append(("Transfer-Encoding", "chunked")) }
        return result
    }

    /// Whether `name` is `Transfer-Encoding` in some letter case: the header HTTP parsers frame a body by.
    static func isTransferEncoding(_ name: String) -> Bool {
        name.utf8.elementsEqual("transfer-encoding".utf8) { byte, expected in
            (byte &- UInt8(ascii: "A") < 26 ? byte | 0x20 : byte) == expected
        }
    }

    /// A `Cookie` value without Detour's cookies (named `prefix`, or `prefix_` and more: chunks, state),
    /// read byte by byte (`memchr` finds each `;`: a browser's sealed session cookie is kilobytes long);
    /// `nil` when no cookie is left.
    static func removingOwnCookies(from value: String, prefix: String) -> String? {
        var text = value
        var prefix = prefix
        let (removed, kept) = text.withUTF8 { bytes in
            prefix.withUTF8 { prefixBytes in
                var kept: [UInt8] = []
                var removed = false
                var start = 0
                while start < bytes.count {
                    let end = nextSemicolon(in: bytes, from: start)
                    var first = start
                    while first < end, bytes[first] == UInt8(ascii: " ") || bytes[first] == UInt8(ascii: "\t") {
                        first += 1
                    }
                    let pair = UnsafeBufferPointer(rebasing: bytes[first..<end])
                    if pair.count > prefixBytes.count, pair.starts(with: prefixBytes),
                        pair[prefixBytes.count] == UInt8(ascii: "=") || pair[prefixBytes.count] == UInt8(ascii: "_")
                    {
                        removed = true
                    } else if !pair.isEmpty {
                        if !kept.isEmpty { kept.append(contentsOf: [UInt8(ascii: ";"), UInt8(ascii: " ")]) }
                        kept.append(contentsOf: pair)
                    }
                    start = end + 1
                }
                return (removed, kept)
            }
        }
        if !removed { return value }
        return kept.isEmpty ? nil : String(decoding: kept, as: UTF8.self)
    }

    /// Where the first `;` at or after `start` is, or the end.
    private static func nextSemicolon(in bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
        guard let base = bytes.baseAddress, start < bytes.count,
            let found = memchr(base + start, Int32(UInt8(ascii: ";")), bytes.count - start)
        else { return bytes.count }
        return UnsafeRawPointer(base).distance(to: UnsafeRawPointer(found))
    }

    /// The first header whose value cannot be sent as it is (RFC 9110 5.5: a control byte other than tab), if any.
    static func firstInvalidValue(in headers: some Sequence<(name: String, value: String)>) -> String? {
        headers.first { !HeaderValue.isSendable($0.value) }?.name
    }

    /// Row U1: same status; hop-by-hop headers removed; a `Location` on the upstream's origin moved to the public one.
    /// Nothing is copied: the client's head is written from the upstream's as it is read (``ClientResponseHead``).
    static func forClient(
        _ head: HTTPResponseHead, upstreamRequest: String, publicRequest: @autoclosure () -> String
    ) -> ClientResponseHead {
        var location: String?
        if let upstreamLocation = head.headers.first(name: "location"),
            let upstreamRequest = try? BrowserURL(parsing: upstreamRequest),
            let publicRequest = try? BrowserURL(parsing: publicRequest())
        {
            location = UpstreamRedirect.rewriteLocation(
                upstreamLocation, upstreamRequest: upstreamRequest, publicRequest: publicRequest)
        }
        return ClientResponseHead(upstream: head, named: connectionNamed(head.headers), location: location)
    }

    /// `text` without leading and trailing spaces and tabs (RFC 9110 5.6.3's optional whitespace).
    static func trimmed(_ text: Substring) -> Substring {
        let isSpace = { (byte: UInt8) in byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
        guard let first = text.utf8.firstIndex(where: { !isSpace($0) }),
            let last = text.utf8.lastIndex(where: { !isSpace($0) })
        else { return "" }
        return text[first...last]
    }
}

/// An upstream's response head as the client gets it (row U1): the upstream's status and headers, less the
/// hop-by-hop ones, with `Location` moved to the public origin, and then the headers Detour adds.
///
/// Guarantees: ``forEachField(_:)`` never yields a hop-by-hop header (RFC 9110 7.6.1) or one the upstream's
/// `Connection` names; an upstream `Location` that was rewritten is yielded once, with its new value, in its place.
struct ClientResponseHead {
    let upstream: HTTPResponseHead
    /// What the upstream's `Connection` header names (normalised).
    fileprivate let named: [String]
    /// The rewritten `Location`; `nil` to pass the upstream's as it is.
    fileprivate let location: String?
    /// Detour's own headers (`Set-Cookie` for a refreshed session), after the upstream's.
    var added: [(name: String, value: String)] = []

    /// The upstream's head less its hop-by-hop headers, nothing else changed (an informational response: 100, 103).
    init(passing head: HTTPResponseHead) {
        self.init(upstream: head, named: ProxyHeaders.connectionNamed(head.headers), location: nil)
    }

    fileprivate init(upstream: HTTPResponseHead, named: [String], location: String?) {
        self.upstream = upstream
        self.named = named
        self.location = location
    }

    var status: HTTPResponseStatus { upstream.status }

    /// Whether the upstream framed the body by its length; otherwise Detour frames it (see ``RequestHandler``).
    var hasContentLength: Bool { upstream.headers.contains(name: "content-length") }

    /// Each header the client gets, in order.
    func forEachField(_ body: (_ name: String, _ value: String) -> Void) {
        var locationWritten = false
        for (name, value) in upstream.headers where !ProxyHeaders.isDropped(name, named: named) {
            guard let location, ProxyHeaders.name(name, spells: "location") else {
                body(name, value)
                continue
            }
            if !locationWritten { body("Location", location) }
            locationWritten = true
        }
        for (name, value) in added { body(name, value) }
    }
}
