import Crypto
import DetourCurl
import DetourGateway
import DetourOIDC
import DetourPolicy
import DetourSessions
import Foundation
import Testing

@testable import DetourServer

/// Row C1 of CONTRACT section 6 in Swift, without a socket: a sign-in started at `/oauth2/start`, the provider's
/// callback with a code, the code redeemed at a scripted token endpoint for an ES256-signed ID token, then a 303
/// to the return target with a session cookie that opens to the signed-in user.
@Suite struct CallbackRowTests {
    /// A provider on a script. Its authorization codes are `nonce.challenge`: the token endpoint answers only a
    /// request whose PKCE verifier hashes to the challenge, with an ID token for that nonce, signed by its P-256 key.
    struct ScriptedProvider: ProviderTransport {
        static let key = P256.Signing.PrivateKey()

        func send(_ request: HTTPRequest) async throws(CurlError) -> HTTPResponse {
            switch request.url {
            case "https://idp.example/.well-known/openid-configuration":
                return Self.json(
                    #"{"issuer":"https://idp.example","authorization_endpoint":"https://idp.example/auth","#
                        + #""token_endpoint":"https://idp.example/token","jwks_uri":"https://idp.example/jwks"}"#)
            case "https://idp.example/jwks":
                let raw = Self.key.publicKey.rawRepresentation
                return Self.json(
                    #"{"keys":[{"kty":"EC","crv":"P-256","kid":"ec-1","use":"sig","alg":"ES256","#
                        + #""x":"\#(Base64URL.encode(raw.prefix(32)))","y":"\#(Base64URL.encode(raw.suffix(32)))"}]}"#)
            case "https://idp.example/token":
                return Self.token(for: URLComponents(string: "?" + String(decoding: request.body ?? [], as: UTF8.self)))
            default:
                throw CurlError(.connectFailed, "not scripted")
            }
        }

        static func token(for form: URLComponents?) -> HTTPResponse {
            func field(_ name: String) -> String? { form?.queryItems?.first { $0.name == name }?.value }
            let code = field("code")?.split(separator: ".").map(String.init) ?? []
            let verifier = field("code_verifier") ?? ""
            guard code.count == 2, Base64URL.encode(SHA256.hash(data: Data(verifier.utf8))) == code[1] else {
                return HTTPResponse(status: 400, headers: [], body: Array(#"{"error":"invalid_grant"}"#.utf8))
            }
            let now = Date().timeIntervalSince1970
            let claims: [String: Any] = [
                "iss": "https://idp.example", "aud": "detour", "sub": "u-1", "email": "ann@example.com",
                "iat": now, "exp": now + 300, "nonce": code[0],
            ]
            let head = Base64URL.encode(try! JSONSerialization.data(withJSONObject: ["alg": "ES256", "kid": "ec-1"]))
            let body = Base64URL.encode(try! JSONSerialization.data(withJSONObject: claims))
            let signature = try! key.signature(for: SHA256.hash(data: Data("\(head).\(body)".utf8)))
            let token = "\(head).\(body).\(Base64URL.encode(signature.rawRepresentation))"
            return json(#"{"access_token":"at-1","token_type":"Bearer","expires_in":300,"id_token":"\#(token)"}"#)
        }

        static func json(_ text: String) -> HTTPResponse {
            HTTPResponse(status: 200, headers: [("Content-Type", "application/json")], body: Array(text.utf8))
        }
    }

    static func endpoints() async throws -> Endpoints {
        try await SignInFloodTests.endpoints(capacity: 100, transport: ScriptedProvider())
    }

    /// Starts a sign-in returning to `rd`; the state cookie and the authorization request's parameters.
    static func start(_ endpoints: Endpoints, rd: String, now: Date) async -> (cookie: String, query: [String: String])
    {
        let started = await endpoints.handle(
            .start,
            EndpointRequest(method: "GET", target: "/oauth2/start?rd=\(rd)", headers: EndpointRowTests.browser),
            now: now)
        let location = started.header("Location") ?? ""
        let items = URLComponents(string: location)?.queryItems ?? []
        return (EndpointRowTests.cookie(started) ?? "", Dictionary(items.map { ($0.name, $0.value ?? "") }) { $1 })
    }

    static func callback(_ endpoints: Endpoints, query: String, cookie: String, now: Date) async -> Answer {
        await endpoints.handle(
            .callback,
            EndpointRequest(
                method: "GET", target: "/oauth2/callback?\(query)",
                headers: EndpointRowTests.browser + [("Cookie", cookie)]),
            now: now)
    }

    @Test func c1TheCallbackIsASeeOtherToTheReturnTargetWithASession() async throws {
        let endpoints = try await Self.endpoints()
        let now = Date()
        let (cookie, query) = await Self.start(endpoints, rd: "%2Freports%3Fq%3D1", now: now)
        let code = "\(query["nonce"] ?? "").\(query["code_challenge"] ?? "")"
        let answer = await Self.callback(
            endpoints, query: "state=\(query["state"] ?? "")&code=\(code)", cookie: cookie, now: now)
        #expect(answer.status == 303, "C1: See Other, so the browser follows with GET")
        #expect(answer.header("Location") == "https://auth.example.com/reports?q=1")
        #expect(answer.header("Cache-Control") == "no-store")
        let setCookies = answer.headers.filter { $0.name == "Set-Cookie" }.map(\.value)
        let session = setCookies.first { $0.hasPrefix("__Host-_detour=") }.map { String($0.split(separator: ";")[0]) }
        let cookieHeader = try #require(session)
        let opened = try await endpoints.sessions.session(in: RequestCookies(headers: [cookieHeader]), now: now)
        #expect(opened?.subject == "u-1")
        #expect(
            setCookies.contains { $0.hasPrefix("__Host-_detour_state=;") && $0.contains("Max-Age=0") }, "state cleared")
    }

    @Test func c1AStolenCodeWithoutTheVerifierSignsNobodyIn() async throws {
        let endpoints = try await Self.endpoints()
        let now = Date()
        let (cookie, query) = await Self.start(endpoints, rd: "%2F", now: now)
        let answer = await Self.callback(
            endpoints, query: "state=\(query["state"] ?? "")&code=\(query["nonce"] ?? "").wrong-challenge",
            cookie: cookie, now: now)
        #expect(answer.status == 502)
        #expect(!answer.headers.contains { $0.name == "Set-Cookie" && $0.value.hasPrefix("__Host-_detour=") })
    }
}
