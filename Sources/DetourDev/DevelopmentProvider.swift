import Crypto
import CryptoExtras
import DetourGateway
import DetourOIDC
import DetourRedirect
import DetourServer
import DetourSessions
import Foundation
import Synchronization

/// A minimal OpenID provider for `detour dev`: FOR LOCAL DEVELOPMENT ONLY.
///
/// It signs real RS256 ID tokens with a key made at start-up, checks PKCE S256, the client secret, the
/// redirect URI and single use of codes, and offers fixed test users on a sign-in page without
/// passwords. It listens on loopback only; `detour dev` refuses anything else.
public final class DevelopmentProvider: Sendable {
    /// A test user offered on the sign-in page.
    public struct User: Sendable {
        public let subject: String
        public let email: String
        public let name: String
        public let groups: [String]
    }

    public static let users = [
        User(subject: "alice", email: "alice@example.com", name: "Alice Admin", groups: ["admins", "developers"]),
        User(subject: "bob", email: "bob@example.com", name: "Bob Developer", groups: ["developers"]),
        User(subject: "carol", email: "carol@partner.example", name: "Carol Contractor", groups: []),
    ]

    private struct Grant: Sendable {
        let user: User
        let clientID: String
        let redirectURI: String
        let nonce: String?
        let challenge: String
        let expiry: Date
    }

    public let issuer: String
    public let clientID: String
    public let clientSecret: String
    private let key: _RSA.Signing.PrivateKey
    private let keyID: String
    private let grants = Mutex<[String: Grant]>([:])
    private let tokens = Mutex<[String: User]>([:])

    public init(issuer: String, clientID: String, clientSecret: String) throws {
        self.issuer = issuer
        self.clientID = clientID
        self.clientSecret = clientSecret
        key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        keyID = "dev-" + String(Base64URL.encode(SHA256.hash(data: Array(key.publicKey.derRepresentation))).prefix(8))
    }

    public func handle(_ request: EndpointRequest) async -> Answer {
        let path = request.target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.target
        switch (request.method, path) {
        case ("GET", "/.well-known/openid-configuration"): return discovery()
        case ("GET", "/jwks"): return jwks()
        case ("GET", "/authorize"): return signInPage(request)
        case ("POST", "/authorize"): return authorize(request)
        case ("POST", "/token"): return token(request)
        case ("GET", "/userinfo"): return userinfo(request)
        case ("GET", "/end_session"): return endSession(request)
        default: return Self.json(404, #"{"error":"not_found"}"#)
        }
    }

    private func discovery() -> Answer {
        Self.json(
            200,
            """
            {"issuer":\(JSON.string(issuer)),"authorization_endpoint":\(JSON.string(issuer + "/authorize")),\
            "token_endpoint":\(JSON.string(issuer + "/token")),"jwks_uri":\(JSON.string(issuer + "/jwks")),\
            "userinfo_endpoint":\(JSON.string(issuer + "/userinfo")),"end_session_endpoint":\(JSON.string(issuer + "/end_session")),\
            "response_types_supported":["code"],"subject_types_supported":["public"],\
            "id_token_signing_alg_values_supported":["RS256"],"code_challenge_methods_supported":["S256"],\
            "authorization_response_iss_parameter_supported":true}
            """)
    }

    private func jwks() -> Answer {
        guard let primitives = try? key.publicKey.getKeyPrimitives() else { return Self.json(500, "{}") }
        return Self.json(
            200,
            """
            {"keys":[{"kty":"RSA","use":"sig","alg":"RS256","kid":"\(keyID)",\
            "n":"\(Base64URL.encode(primitives.modulus))","e":"\(Base64URL.encode(primitives.publicExponent))"}]}
            """)
    }

    private func parameters(_ request: EndpointRequest) -> [String: String] {
        var values: [String: String] = [:]
        let query = request.target.split(separator: "?", maxSplits: 1).dropFirst().first.map(String.init) ?? ""
        for (name, value) in FormEncoding.decode(query)
            + FormEncoding.decode(String(decoding: request.body, as: UTF8.self))
        where values[name] == nil {
            values[name] = value
        }
        return values
    }

    private func signInPage(_ request: EndpointRequest) -> Answer {
        let query = request.target.split(separator: "?", maxSplits: 1).dropFirst().first.map(String.init) ?? ""
        let buttons = Self.users.map { user in
            """
            <button name="user" value="\(user.subject)">\(user.name) &lt;\(user.email)&gt; \
            groups: \(user.groups.isEmpty ? "none" : user.groups.joined(separator: ", "))</button>
            """
        }.joined(separator: "<br>\n")
        let page = """
            <!DOCTYPE html>
            <html><head><meta charset="utf-8"><title>Detour development sign-in</title></head>
            <body><h1>Development identity provider</h1>
            <p><strong>For local development only.</strong> Pick a test user; there are no passwords.</p>
            <form method="post" action="/authorize?\(query.replacingOccurrences(of: "\"", with: "%22"))">
            \(buttons)
            </form></body></html>

            """
        return Answer(status: 200, headers: [("Content-Type", "text/html; charset=utf-8")], body: page)
    }

    private func authorize(_ request: EndpointRequest) -> Answer {
        let values = parameters(request)
        guard values["client_id"] == clientID, let redirect = values["redirect_uri"], let state = values["state"],
            values["code_challenge_method"] == "S256", let challenge = values["code_challenge"],
            let user = Self.users.first(where: { $0.subject == values["user"] })
        else { return Self.json(400, #"{"error":"invalid_request"}"#) }
        let code = AuthorizationRequest.challenge(for: UUID().uuidString + UUID().uuidString)
        grants.withLock {
            $0[code] = Grant(
                user: user, clientID: clientID, redirectURI: redirect, nonce: values["nonce"], challenge: challenge,
                expiry: Date().addingTimeInterval(60))
        }
        let location =
            redirect + (redirect.contains("?") ? "&" : "?")
            + FormEncoding.encode([("code", code), ("state", state), ("iss", issuer)])
        return Answer(status: 302, headers: [("Location", location), ("Cache-Control", "no-store")])
    }

    private func token(_ request: EndpointRequest) -> Answer {
        let values = parameters(request)
        let basic = request.header("authorization").flatMap { header -> (String, String)? in
            guard header.hasPrefix("Basic "), let data = Data(base64Encoded: String(header.dropFirst(6))),
                let text = String(data: data, encoding: .utf8), let colon = text.firstIndex(of: ":")
            else { return nil }
            return (
                FormEncoding.decode("a=" + text[..<colon]).first?.1 ?? "",
                FormEncoding.decode("a=" + text[text.index(after: colon)...]).first?.1 ?? ""
            )
        }
        let (id, secret) = basic ?? (values["client_id"] ?? "", values["client_secret"] ?? "")
        guard id == clientID, secret == clientSecret else { return Self.json(401, #"{"error":"invalid_client"}"#) }
        guard values["grant_type"] == "authorization_code", let code = values["code"],
            let grant = grants.withLock({ $0.removeValue(forKey: code) }), grant.expiry > Date(),
            grant.redirectURI == values["redirect_uri"],
            let verifier = values["code_verifier"], AuthorizationRequest.challenge(for: verifier) == grant.challenge
        else { return Self.json(400, #"{"error":"invalid_grant"}"#) }
        let accessToken = AuthorizationRequest.challenge(for: UUID().uuidString)
        tokens.withLock { $0[accessToken] = grant.user }
        let now = Int(Date().timeIntervalSince1970)
        var claims = """
            {"iss":\(JSON.string(issuer)),"sub":\(JSON.string(grant.user.subject)),"aud":\(JSON.string(clientID)),\
            "iat":\(now),"exp":\(now + 3600),"email":\(JSON.string(grant.user.email)),"email_verified":true,\
            "name":\(JSON.string(grant.user.name)),"preferred_username":\(JSON.string(grant.user.subject)),\
            "groups":[\(grant.user.groups.map(JSON.string).joined(separator: ","))]
            """
        if let nonce = grant.nonce { claims += ",\"nonce\":\(JSON.string(nonce))" }
        claims += "}"
        guard let idToken = sign(claims) else { return Self.json(500, #"{"error":"server_error"}"#) }
        return Self.json(
            200, #"{"access_token":"\#(accessToken)","token_type":"Bearer","expires_in":3600,"id_token":"\#(idToken)"}"#
        )
    }

    private func userinfo(_ request: EndpointRequest) -> Answer {
        guard let header = request.header("authorization"), header.hasPrefix("Bearer "),
            let user = tokens.withLock({ $0[String(header.dropFirst(7))] })
        else { return Self.json(401, #"{"error":"invalid_token"}"#) }
        return Self.json(
            200,
            """
            {"sub":\(JSON.string(user.subject)),"email":\(JSON.string(user.email)),"email_verified":true,\
            "name":\(JSON.string(user.name)),"groups":[\(user.groups.map(JSON.string).joined(separator: ","))]}
            """)
    }

    private func endSession(_ request: EndpointRequest) -> Answer {
        if let next = parameters(request)["post_logout_redirect_uri"] {
            return Answer(status: 302, headers: [("Location", next)])
        }
        return Answer(status: 200, headers: [("Content-Type", "text/plain")], body: "Signed out.\n")
    }

    private func sign(_ claims: String) -> String? {
        let input =
            Base64URL.encode(Array(#"{"alg":"RS256","typ":"JWT","kid":"\#(keyID)"}"#.utf8)) + "."
            + Base64URL.encode(Array(claims.utf8))
        guard let signature = try? key.signature(for: SHA256.hash(data: Array(input.utf8)), padding: .insecurePKCS1v1_5)
        else { return nil }
        return input + "." + Base64URL.encode(signature.rawRepresentation)
    }

    private static func json(_ status: Int, _ body: String) -> Answer {
        Answer(
            status: status, headers: [("Content-Type", "application/json"), ("Cache-Control", "no-store")], body: body)
    }
}
