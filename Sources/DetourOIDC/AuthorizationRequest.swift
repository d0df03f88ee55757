import Crypto
public import DetourSessions
public import Foundation

/// The secrets of one sign-in attempt and the authorization URL that carries their public halves.
///
/// Guarantees: `state`, `nonce` and the PKCE verifier are 256 random bits each, base64url; only the
/// S256 challenge of the verifier leaves Detour (RFC 7636 4.2); the return target is not in the URL
/// (it stays in the sealed login state); extra parameters (`oidc.auth_params`) come after Detour's own, and the
/// configuration refuses any that would name one of them.
public struct AuthorizationRequest: Sendable {
    public let loginState: LoginState
    public let url: String

    public enum ResponseMode: String, Sendable {
        case query
        case formPost = "form_post"
    }

    public init(
        metadata: ProviderMetadata, clientID: String, redirectURI: String, scopes: [String],
        responseMode: ResponseMode, extraParameters: [(String, String)] = [], returnTo: String, now: Date
    ) {
        let secrets = SecureRandom.bytes(96)
        let state = Base64URL.encode(secrets[0..<32])
        let nonce = Base64URL.encode(secrets[32..<64])
        let verifier = Base64URL.encode(secrets[64..<96])
        loginState = LoginState(state: state, nonce: nonce, codeVerifier: verifier, returnTo: returnTo, startedAt: now)
        var parameters = [
            ("response_type", "code"), ("client_id", clientID), ("redirect_uri", redirectURI),
            ("scope", scopes.joined(separator: " ")), ("state", state), ("nonce", nonce),
            ("code_challenge", Self.challenge(for: verifier)), ("code_challenge_method", "S256"),
        ]
        if responseMode == .formPost { parameters.append(("response_mode", "form_post")) }
        // `oidc.auth_params` (prompt, acr_values, login_hint...): the configuration refuses any named above.
        parameters += extraParameters
        let separator = metadata.authorizationEndpoint.utf8.contains(UInt8(ascii: "?")) ? "&" : "?"
        url = metadata.authorizationEndpoint + separator + FormEncoding.encode(parameters)
    }

    /// The S256 code challenge: base64url(SHA-256(verifier)).
    public static func challenge(for verifier: String) -> String {
        Base64URL.encode(SHA256.hash(data: Array(verifier.utf8)))
    }
}

/// `application/x-www-form-urlencoded` (WHATWG URL section 5), for query strings and token requests.
public enum FormEncoding {
    public static func encode(_ pairs: [(String, String)]) -> String {
        var output: [UInt8] = []
        output.reserveCapacity(pairs.reduce(0) { $0 + $1.0.utf8.count + $1.1.utf8.count + 2 } * 2)
        for (index, (name, value)) in pairs.enumerated() {
            if index > 0 { output.append(UInt8(ascii: "&")) }
            append(name, to: &output)
            output.append(UInt8(ascii: "="))
            append(value, to: &output)
        }
        return String(decoding: output, as: UTF8.self)
    }

    public static func escape(_ text: String) -> String {
        var output: [UInt8] = []
        output.reserveCapacity(text.utf8.count * 3)
        append(text, to: &output)
        return String(decoding: output, as: UTF8.self)
    }

    private static func append(_ text: String, to output: inout [UInt8]) {
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "*"):
                output.append(byte)
            case UInt8(ascii: " "): output.append(UInt8(ascii: "+"))
            default:
                output.append(UInt8(ascii: "%"))
                Hex.appendUppercase(byte, to: &output)
            }
        }
    }

    /// Decodes a form or query string; malformed escapes are kept as written, as browsers do.
    public static func decode(_ text: some StringProtocol) -> [(String, String)] {
        text.split(separator: "&", omittingEmptySubsequences: true).map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (unescape(parts[0]), parts.count > 1 ? unescape(parts[1]) : "")
        }
    }

    static func unescape(_ text: some StringProtocol) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8)[...]
        while let byte = iterator.popFirst() {
            if byte == UInt8(ascii: "+") {
                bytes.append(UInt8(ascii: " "))
            } else if byte == UInt8(ascii: "%"), iterator.count >= 2,
                let high = hexDigit(iterator[iterator.startIndex]),
                let low = hexDigit(iterator[iterator.startIndex + 1])
            {
                bytes.append(high << 4 | low)
                iterator = iterator.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexDigit(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
