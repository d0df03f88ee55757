import NIOHTTP1

/// The request-head rules that keep Detour and an upstream reading one message the same way (CONTRACT
/// section 7, request smuggling): every head that breaks one is answered 400 and its connection closed.
///
/// Guarantees, beyond what SwiftNIO's parser already refuses (bare CR or LF, obs-fold, control bytes,
/// two different `Content-Length`s): exactly one `Host` in HTTP/1.1 and at most one in HTTP/1.0;
/// `Transfer-Encoding` only in HTTP/1.1, only as exactly `chunked`, and never beside `Content-Length`.
enum RequestFraming {
    /// Why a head cannot be served; a stable, kebab-case code.
    enum Problem: String, Sendable, CustomStringConvertible {
        case hostCount = "host-count"
        case transferEncoding = "transfer-encoding"
        case transferEncodingAndLength = "transfer-encoding-and-content-length"

        var description: String { rawValue }
    }

    /// The first rule `head` breaks, or `nil`.
    static func problem(_ head: HTTPRequestHead) -> Problem? {
        var hosts = 0
        var codings: [Substring] = []
        var hasLength = false
        for (name, value) in head.headers {
            if ProxyHeaders.name(name, spells: "host") {
                hosts += 1
            } else if ProxyHeaders.name(name, spells: "content-length") {
                hasLength = true
            } else if ProxyHeaders.isTransferEncoding(name) {  // the parser frames by this spelling alone
                for coding in value.split(separator: ",", omittingEmptySubsequences: false) {
                    codings.append(ProxyHeaders.trimmed(coding))
                }
            }
        }
        // HTTP/1.1 and later (an HTTP/2 stream arrives as version 2.0, its :authority as Host) must name a host.
        let atLeastHTTP11 = head.version.major > 1 || head.version.minor >= 1
        if hosts > 1 || (hosts == 0 && atLeastHTTP11) { return .hostCount }
        guard !codings.isEmpty else { return nil }
        guard atLeastHTTP11, codings.count == 1, ProxyHeaders.name(codings[0], spells: "chunked") else {
            return .transferEncoding
        }
        return hasLength ? .transferEncodingAndLength : nil
    }
}
