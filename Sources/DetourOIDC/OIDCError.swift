/// Why an OpenID Connect step failed; ``code`` is stable and safe to log (no token, no secret).
public struct OIDCError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable {
        // ID tokens (OIDC Core 3.1.3.7)
        case malformedToken = "malformed-token"
        case unsupportedAlgorithm = "unsupported-algorithm"
        case unknownKey = "unknown-key"
        case keyAlgorithmMismatch = "key-algorithm-mismatch"
        case badSignature = "bad-signature"
        case wrongType = "wrong-token-type"
        case unsupportedCriticalHeader = "unsupported-critical-header"
        case wrongIssuer = "wrong-issuer"
        case wrongAudience = "wrong-audience"
        case wrongAuthorizedParty = "wrong-authorized-party"
        case expired
        case notYetValid = "not-yet-valid"
        case issuedInTheFuture = "issued-in-the-future"
        case nonceMismatch = "nonce-mismatch"
        case missingSubject = "missing-subject"
        case subjectMismatch = "subject-mismatch"
        // The provider and its answers
        case providerUnavailable = "provider-unavailable"
        /// The provider took longer than `oidc.timeout` to answer.
        case providerTimedOut = "provider-timed-out"
        case badProviderResponse = "bad-provider-response"
        case discoveryIssuerMismatch = "discovery-issuer-mismatch"
        case tokenRequestRefused = "token-request-refused"
        // The authorization response (RFC 9207, RFC 6749 4.1.2.1)
        case authorizationResponseIssuerMismatch = "authorization-response-issuer-mismatch"
        case providerError = "provider-error"
    }

    public let code: Code
    public let detail: String

    public init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    public var description: String { "\(code.rawValue): \(detail)" }

    public static func == (lhs: OIDCError, rhs: OIDCError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
}
