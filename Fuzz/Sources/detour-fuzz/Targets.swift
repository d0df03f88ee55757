import Crypto
import DetourConfig
import DetourOIDC
import DetourPolicy
import DetourRedirect
import DetourSessions
import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1

@testable import DetourServer

/// The parsers Detour runs on what clients and providers send, each as one fuzz target: a function of bytes
/// that traps when an invariant breaks. Built with `-sanitize=fuzzer` they are libFuzzer targets; built plainly
/// they replay a corpus (`scripts/fuzz` does both).
enum FuzzTarget: String, CaseIterable {
    case url, path, cookie, jwt, config, head

    func run(_ data: [UInt8]) {
        let text = String(decoding: data, as: UTF8.self)
        switch self {
        case .url: Self.url(text)
        case .path: Self.path(text)
        case .cookie: Self.cookie(text)
        case .jwt: Self.jwt(text)
        case .config: _ = try? Configuration.parse(text, file: "fuzz.yaml", environment: ["SECRET": "x"])
        case .head: Self.head(data)
        }
    }

    static let base: BrowserURL = {
        guard let url = try? BrowserURL(parsing: "https://auth.example.com/") else { preconditionFailure("a base URL") }
        return url
    }()
    static let targets = ReturnTargetPolicy(
        base: base,
        allowedHosts: ["app.example.com", "*.corp.example", ".example.org", "localhost:*"].compactMap {
            try? AllowedHost(parsing: $0)
        })

    /// The URL reader and the return-target policy: an allowed target's `Location` is itself allowed, and reads
    /// back to the same URL.
    static func url(_ text: String) {
        if let parsed = try? BrowserURL(parsing: text) {
            precondition((try? BrowserURL(parsing: parsed.href))?.href == parsed.href, "href is a fixed point")
        }
        if case .allowed(let location) = targets.evaluate(text) {
            guard case .allowed(let again) = targets.evaluate(location.href), again.href == location.href else {
                preconditionFailure("an allowed Location is allowed again, unchanged: \(location.href)")
            }
        }
    }

    /// Request-path normalisation: the result is normal (normalising it again changes nothing) and holds none of
    /// the spellings that are refused.
    static func path(_ text: String) {
        guard let normal = try? RequestPath(normalizing: text) else { return }
        let again = try? RequestPath(normalizing: normal.description)
        precondition(again?.description == normal.description, "normalisation is idempotent: \(normal)")
        for refused in [";", "#", "\\", "%2F", "%2f", "%5C", "/./", "/../"] {
            precondition(!normal.path.contains(refused), "\(refused) in a normalised path: \(normal.path)")
        }
    }

    static let codec: SealedCookieCodec = {
        guard let codec = try? SealedCookieCodec(secrets: ["MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="]) else {
            preconditionFailure("a valid secret")
        }
        return codec
    }()

    static let sessions = SessionCookies(
        codec: codec, policy: CookiePolicy(cookieName: "_detour", domain: nil, secure: true),
        lifetime: .seconds(3600), store: CookieSessionStore(codec: codec))

    /// A server-side store holding one session, which forged handles must never name.
    static let memory: MemorySessionStore = {
        let store = MemorySessionStore(codec: codec)
        _ = store.save(
            Session(subject: "u", signedInAt: Date(), expiry: Date().addingTimeInterval(3600)), replacing: nil,
            now: Date())
        return store
    }()

    /// The cookie header parser and the sealed-cookie opener, chunks included, for the cookie store's sealed
    /// sessions and the server-side stores' sealed handles: never a trap, never a session.
    static func cookie(_ header: String) {
        let cookies = RequestCookies(headers: [header, "__Host-_detour_0=" + header])
        let value = sessions.sessionValue(in: cookies)
        precondition(
            value.flatMap { CookieSessionStore(codec: codec).session($0, now: Date()) } == nil,
            "forged bytes never open as a session")
        precondition(value.flatMap { memory.session($0, now: Date()) } == nil, "nor as a session's handle")
        precondition(sessions.loginState(in: cookies, now: Date()) == nil, "nor as sign-in state")
        _ = Base64URL.decode(header)
    }

    static let keys: KeySet = {
        let key = P256.Signing.PrivateKey().publicKey.rawRepresentation
        let jwks =
            "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"k\",\"alg\":\"ES256\",\"x\":\"\(Base64URL.encode(key.prefix(32)))\",\"y\":\"\(Base64URL.encode(key.suffix(32)))\"}]}"
        guard let keys = try? KeySet(json: Array(jwks.utf8)) else { preconditionFailure("a valid key set") }
        return keys
    }()

    /// The JOSE/JWT reader: nothing but a signature by the key passes, and no input traps.
    static func jwt(_ token: String) {
        let validator = AccessTokenValidator(issuer: "https://idp.example", audiences: ["api"], clientID: "detour")
        precondition((try? validator.validate(token, keys: keys, now: Date())) == nil, "forged tokens never pass")
        _ = try? KeySet(json: Array(token.utf8))
    }

    /// The request head as Detour reads it: SwiftNIO's parser, then Detour's framing rules and one decision.
    static func head(_ bytes: [UInt8]) {
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
        guard (try? channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder()))) != nil,
            (try? channel.writeInbound(ByteBuffer(bytes: bytes))) != nil
        else { return }
        let engine = PolicyEngine(policies: PolicySet(), settings: PolicyEngine.Settings(publicURL: base))
        while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
            guard case .head(let head) = part else { continue }
            _ = RequestFraming.problem(head)
            _ = ProxyHeaders.forUpstream(head.headers, cookiePrefix: "_detour")
            _ = engine.decide(
                PolicyEngine.Request(
                    method: head.method.rawValue, scheme: .https, host: head.headers.first(name: "host") ?? "",
                    target: head.uri, identity: nil, header: { head.headers.first(name: $0) }))
        }
    }
}
