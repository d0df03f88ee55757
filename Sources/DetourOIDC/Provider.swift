public import DetourCurl
import Foundation

/// What discovery says about a provider (OpenID Connect Discovery 1.0 section 3).
public struct ProviderMetadata: Sendable, Hashable {
    public let issuer: String
    public let authorizationEndpoint: String
    public let tokenEndpoint: String
    public let jwksURI: String
    public let userinfoEndpoint: String?
    public let endSessionEndpoint: String?
    public let introspectionEndpoint: String?
    /// RFC 9207: the provider puts `iss` in authorization responses, which must then be checked.
    public let authorizationResponseIssParameterSupported: Bool

    /// Reads a discovery document; its `issuer` must equal `expectedIssuer` exactly (section 4.3).
    public init(json: [UInt8], expectedIssuer: String) throws(OIDCError) {
        guard let document = try? JSONDecoder().decode(JSONValue.self, from: Data(json)) else {
            throw OIDCError(.badProviderResponse, "the discovery document is not JSON")
        }
        guard let issuer = document["issuer"]?.string, issuer == expectedIssuer else {
            throw OIDCError(
                .discoveryIssuerMismatch,
                "discovery says the issuer is \(document["issuer"]?.string ?? "nothing"), not \(expectedIssuer)")
        }
        guard let authorization = document["authorization_endpoint"]?.string,
            let token = document["token_endpoint"]?.string, let jwks = document["jwks_uri"]?.string
        else {
            throw OIDCError(.badProviderResponse, "discovery lacks authorization_endpoint, token_endpoint or jwks_uri")
        }
        self.issuer = issuer
        authorizationEndpoint = authorization
        tokenEndpoint = token
        jwksURI = jwks
        userinfoEndpoint = document["userinfo_endpoint"]?.string
        endSessionEndpoint = document["end_session_endpoint"]?.string
        introspectionEndpoint = document["introspection_endpoint"]?.string
        authorizationResponseIssParameterSupported =
            document["authorization_response_iss_parameter_supported"]?.bool ?? false
    }
}

/// Sends requests to the provider: the libcurl client in production.
public protocol ProviderTransport: Sendable {
    func send(_ request: HTTPRequest) async throws(CurlError) -> HTTPResponse
}

extension CurlClient: ProviderTransport {}

/// The provider's signing keys, fetched on demand and cached.
///
/// Guarantees: concurrent requests for keys share one fetch; an unknown `kid` in a token that strangers
/// present (a bearer token) triggers a refetch (key rotation) at most once per ``minimumRefetchInterval``,
/// so forged `kid`s cannot hammer the provider; an unknown `kid` in an ID token the token endpoint just
/// returned refetches at once (a provider that rotates its keys just before signing must not fail the
/// sign-in: OpenID RP certification); a fetched set replaces the old one whole; a failed fetch keeps the
/// old set.
public actor KeyCache {
    private let transport: any ProviderTransport
    private let jwksURI: String
    public let minimumRefetchInterval: Duration
    private var current: KeySet?
    private var lastFetch: ContinuousClock.Instant?
    private var inFlight: Task<KeySet, any Error>?

    public init(transport: any ProviderTransport, jwksURI: String, minimumRefetchInterval: Duration = .seconds(30)) {
        self.transport = transport
        self.jwksURI = jwksURI
        self.minimumRefetchInterval = minimumRefetchInterval
    }

    /// Keys that contain `keyID` if the provider has it (refetching once if needed), else the current set.
    ///
    /// - Parameter fromProvider: the token came from the provider itself (the token endpoint's answer), so an
    ///   unknown `kid` is a rotation, refetched at once rather than after ``minimumRefetchInterval``.
    public func keys(containing keyID: String?, fromProvider: Bool = false) async throws(OIDCError) -> KeySet {
        if let current, keyID.map({ current.keys[$0] != nil }) ?? true { return current }
        // Strangers' tokens refetch at most once per interval, also while no set has loaded yet.
        if !fromProvider, let lastFetch, ContinuousClock.now - lastFetch < minimumRefetchInterval {
            guard let current else { throw OIDCError(.providerUnavailable, "the key set has not loaded yet") }
            return current
        }
        return try await fetch()
    }

    /// Fetches the key set now (at start-up, for `/ready`), sharing a fetch already under way.
    @discardableResult
    public func fetch() async throws(OIDCError) -> KeySet {
        let task: Task<KeySet, any Error>
        if let inFlight {
            task = inFlight
        } else {
            let transport = transport
            let uri = jwksURI
            task = Task {
                let response = try await transport.send(
                    HTTPRequest(url: uri, headers: [("Accept", "application/json")]))
                guard response.status == 200 else {
                    throw OIDCError(.badProviderResponse, "the JWKS endpoint answered \(response.status)")
                }
                return try KeySet(json: response.body)
            }
            inFlight = task
        }
        // Cleared by the fetch that set it: one started after it finished must not be forgotten while it runs.
        defer { if inFlight == task { inFlight = nil } }
        do {
            let keys = try await task.value
            current = keys
            lastFetch = .now
            return keys
        } catch let error as OIDCError {
            lastFetch = .now
            throw error
        } catch {
            lastFetch = .now
            throw OIDCError(.providerUnavailable, "fetching the JWKS failed: \(error)")
        }
    }

    public var isLoaded: Bool { current != nil }
}
