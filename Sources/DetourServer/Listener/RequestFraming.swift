import NIOHTTP1

/// The request-head rules that keep Detour and an upstream reading one message the same way (CONTRACT
/// section 7, request smuggling): every head that breaks one is answered 400 and its connection closed.
///
/// Guarantees, beyond what SwiftNIO's HTTP/1.1 parser already refuses (bare CR or LF, obs-fold, control bytes,
/// two different `Content-Length`s): exactly one `Host` in HTTP/1.1 and at most one in HTTP/1.0; at most one
/// `Authorization` (Detour checks the first bearer token, and an upstream that reads the last would trust one nobody
/// checked);
/// `Transfer-Encoding` only in HTTP/1.1, only as exactly `chunked`, and never beside `Content-Length`; at most one
/// `Content-Length`, spelled with `-`, and only digits (`+5`, `5, 5` and `-0` are refused, not passed on). An
/// HTTP/2 stream's head, which SwiftNIO's HTTP/2 codec checks only for CR, LF and NUL, also has no other control
/// byte in any value.
enum RequestFraming {
    /// Why a head cannot be served; a stable, kebab-case code.
    enum Problem: String, Sendable, CustomStringConvertible {
        case hostCount = "host-count"
        case authorizationCount = "authorization-count"
        case transferEncoding = "transfer-encoding"
        case transferEncodingAndLength = "transfer-encoding-and-content-length"
        case contentLength = "content-length"
        case controlByte = "control-byte"

        var description: String { rawValue }
    }

    /// The first rule `head` breaks, or `nil`.
    static func problem(_ head: HTTPRequestHead) -> Problem? {
        var hosts = 0
        var authorizations = 0
        var codings: [Substring] = []
        var lengths = 0
        for (name, value) in head.headers {
            if ProxyHeaders.name(name, spells: "host") {
                hosts += 1
            } else if ProxyHeaders.name(name, spells: "authorization") {
                authorizations += 1
                guard authorizations == 1 else { return .authorizationCount }
            } else if ProxyHeaders.name(name, spells: "content-length") {
                lengths += 1
                // `Content_Length` frames nothing here but would to an upstream that reads `_` as `-` (CGI does).
                guard lengths == 1, !name.utf8.contains(UInt8(ascii: "_")), isDecimalLength(value) else {
                    return .contentLength
                }
            } else if ProxyHeaders.isTransferEncoding(name) {  // the parser frames by this spelling alone
                for coding in value.split(separator: ",", omittingEmptySubsequences: false) {
                    codings.append(ProxyHeaders.trimmed(coding))
                }
            }
        }
        // HTTP/1.1 and later (an HTTP/2 stream arrives as version 2.0, its :authority as Host) must name a host.
        let atLeastHTTP11 = head.version.major > 1 || head.version.minor >= 1
        if hosts > 1 || (hosts == 0 && atLeastHTTP11) { return .hostCount }
        if head.version.major >= 2, ProxyHeaders.firstInvalidValue(in: head.headers) != nil { return .controlByte }
        guard !codings.isEmpty else { return nil }
        guard atLeastHTTP11, codings.count == 1, ProxyHeaders.name(codings[0], spells: "chunked") else {
            return .transferEncoding
        }
        return lengths > 0 ? .transferEncodingAndLength : nil
    }

    /// `1*DIGIT` (RFC 9110 8.6), short enough to be a length a server can hold.
    private static func isDecimalLength(_ value: String) -> Bool {
        let digits = value.utf8
        return (1...18).contains(digits.count) && digits.allSatisfy { $0 &- UInt8(ascii: "0") < 10 }
    }
}
