import DetourCurl
public import DetourSessions
public import Foundation
import Metrics
import Synchronization

/// This client's registration at the provider (`oidc:` in `detour.yaml`).
public struct ClientRegistration: Sendable {
    public enum Authentication: Sendable {
        /// RFC 6749 2.3.1: HTTP Basic with the form-encoded id and secret.
        case clientSecretBasic
        /// RFC 6749 2.3.1: id and secret in the request body.
        case clientSecretPost
        /// RFC 7523 2.2 and OIDC Core 9: an assertion signed with Detour's private key, in the request body.
        case privateKeyJWT(ClientAssertionKey)
    }

    public var issuer: String
    public var clientID: String
    public var clientSecret: String
    public var authentication: Authentication
    /// The callback URL: `server.public_url` + prefix + `/callback`.
    public var redirectURI: String
    public var scopes: [String]
    public var responseMode: AuthorizationRequest.ResponseMode
    /// Audiences a bearer JWT may carry (`oidc.bearer_audiences`); the client id when left out.
    public var bearerAudiences: [String]
    /// The RFC 7662 endpoint (`oidc.introspection_url`), else discovery's `introspection_endpoint`.
    public var introspectionURL: String?
    /// Where identity comes from in the claims (`oidc.claims`).
    public var claims: ClaimMapping
    /// Extra authorization-request parameters (`oidc.auth_params`), after Detour's own.
    public var authorizationParameters: [(String, String)]

    public init(
        issuer: String, clientID: String, clientSecret: String, authentication: Authentication, redirectURI: String,
        scopes: [String], responseMode: AuthorizationRequest.ResponseMode, bearerAudiences: [String] = [],
        introspectionURL: String? = nil, claims: ClaimMapping = .standard,
        authorizationParameters: [(String, String)] = []
    ) {
        self.claims = claims
        self.authorizationParameters = authorizationParameters
        self.bearerAudiences = bearerAudiences.isEmpty ? [clientID] : bearerAudiences
        self.introspectionURL = introspectionURL
        self.issuer = issuer
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.authentication = authentication
        self.redirectURI = redirectURI
        self.scopes = scopes
        self.responseMode = responseMode
    }
}

/// What a refresh-token grant yields (RFC 6749 6): a new access token and, when the provider rotates
/// them, a new refresh token. (An ID token in the answer is validated, and must name the same subject.)
public struct Refreshed: Sendable {
    public let accessToken: String
    public let accessTokenExpiry: Date?
    public let refreshToken: String?

    public init(accessToken: String, accessTokenExpiry: Date?, refreshToken: String?) {
        self.accessToken = accessToken
        self.accessTokenExpiry = accessTokenExpiry
        self.refreshToken = refreshToken
    }
}

/// What a successful sign-in yields: the validated ID token's claims (the token itself is not kept).
public struct SignedIn: Sendable {
    public let claims: TokenClaims
    public let accessToken: String?
    public let accessTokenExpiry: Date?
    public let refreshToken: String?
    /// Claims from the userinfo endpoint (its `sub` equals the ID token's), if it has one.
    public let userinfo: [String: JSONValue]

    /// Who signed in, read through `oidc.claims`: from the ID token, else from userinfo.
    public func identity() throws(OIDCError) -> MappedIdentity {
        try claims.mapping.identity(subject: claims.subject, from: [claims.all, userinfo])
    }
}

/// The identity provider, as Detour talks to it: discovery, keys, authorization URLs, code redemption.
///
/// Until discovery and the key set are loaded, ``readiness`` says why not and sign-in attempts fail with
/// ``OIDCError/Code/providerUnavailable`` (a 503 page), never a crash; ``run()`` keeps retrying with
/// exponential backoff.
public final class OpenIDProvider: Sendable {
    public let registration: ClientRegistration
    private let transport: any ProviderTransport
    private let validator: IDTokenValidator
    private let state = Mutex<(metadata: ProviderMetadata?, keys: KeyCache?, problem: String)>(
        (nil, nil, "discovery has not run yet"))

    public init(registration: ClientRegistration, transport: any ProviderTransport) {
        self.registration = registration
        self.transport = transport
        validator = IDTokenValidator(issuer: registration.issuer, clientID: registration.clientID)
    }

    /// `nil` when ready; otherwise why not, for `/ready`.
    public var readiness: String? {
        state.withLock { $0.metadata == nil ? $0.problem : nil }
    }

    public var metadata: ProviderMetadata? { state.withLock { $0.metadata } }

    /// Loads discovery and keys, retrying with backoff (1 s doubling to 30 s) until both are in.
    public func run() async {
        var delay = Duration.seconds(1)
        while !Task.isCancelled {
            do {
                try await load()
                return
            } catch {
                state.withLock { $0.problem = error.description }
            }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(30))
        }
    }

    /// One attempt at discovery and the key set.
    public func load() async throws(OIDCError) {
        let url = registration.issuer.hasSuffix("/") ? registration.issuer : registration.issuer + "/"
        let response = try await call(HTTPRequest(url: url + ".well-known/openid-configuration"), endpoint: "discovery")
        guard response.status == 200 else {
            throw OIDCError(.badProviderResponse, "discovery answered \(response.status)")
        }
        let metadata = try ProviderMetadata(json: response.body, expectedIssuer: registration.issuer)
        let keys = KeyCache(transport: transport, jwksURI: metadata.jwksURI)
        try await keys.fetch()
        state.withLock { $0 = (metadata, keys, "") }
    }

    private func loaded() throws(OIDCError) -> (ProviderMetadata, KeyCache) {
        let (metadata, keys, problem) = state.withLock { $0 }
        guard let metadata, let keys else { throw OIDCError(.providerUnavailable, problem) }
        return (metadata, keys)
    }

    /// A new sign-in attempt returning to `returnTo` (already validated).
    public func authorizationRequest(returnTo: String, now: Date) throws(OIDCError) -> AuthorizationRequest {
        let (metadata, _) = try loaded()
        return AuthorizationRequest(
            metadata: metadata, clientID: registration.clientID, redirectURI: registration.redirectURI,
            scopes: registration.scopes, responseMode: registration.responseMode,
            extraParameters: registration.authorizationParameters, returnTo: returnTo, now: now)
    }

    /// Checks the authorization response's `iss` (RFC 9207) and redeems the code (RFC 6749 4.1.3, with
    /// the PKCE verifier), then validates the ID token and, when the provider has one, reads userinfo.
    public func redeem(code: String, issuer: String?, loginState: LoginState, now: Date) async throws(OIDCError)
        -> SignedIn
    {
        let (metadata, keys) = try loaded()
        if metadata.authorizationResponseIssParameterSupported || issuer != nil {
            guard issuer == registration.issuer else {
                throw OIDCError(
                    .authorizationResponseIssuerMismatch, "the authorization response's iss is not the issuer")
            }
        }
        let body = try await tokenRequest(
            [
                ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", registration.redirectURI),
                ("code_verifier", loginState.codeVerifier),
            ], at: metadata.tokenEndpoint)
        guard let idToken = body["id_token"]?.string else {
            throw OIDCError(.badProviderResponse, "the token response has no id_token")
        }
        var claims = try validator.validate(
            idToken, keys: try await keys.keys(containing: IDTokenValidator.keyID(of: idToken), fromProvider: true),
            nonce: loginState.nonce,
            now: now)
        claims.mapping = registration.claims
        let accessToken = body["access_token"]?.string
        var userinfo: [String: JSONValue] = [:]
        if let endpoint = metadata.userinfoEndpoint, let accessToken {
            userinfo = try await fetchUserinfo(endpoint, accessToken: accessToken, subject: claims.subject)
        }
        return SignedIn(
            claims: claims, accessToken: accessToken,
            accessTokenExpiry: body["expires_in"]?.number.map { now.addingTimeInterval($0) },
            refreshToken: body["refresh_token"]?.string, userinfo: userinfo)
    }

    /// The refresh-token grant (RFC 6749 6). An ID token in the answer is validated like the first one,
    /// except for the nonce, and must name the same subject.
    public func refresh(_ refreshToken: String, subject: String, now: Date) async throws(OIDCError) -> Refreshed {
        let (metadata, keys) = try loaded()
        let body = try await tokenRequest(
            [("grant_type", "refresh_token"), ("refresh_token", refreshToken)], at: metadata.tokenEndpoint)
        guard let accessToken = body["access_token"]?.string else {
            throw OIDCError(.badProviderResponse, "the refresh answer has no access_token")
        }
        let idToken = body["id_token"]?.string
        if let idToken {
            let claims = try validator.validate(
                idToken, keys: try await keys.keys(containing: IDTokenValidator.keyID(of: idToken), fromProvider: true),
                nonce: nil,
                now: now)
            guard claims.subject == subject else {
                throw OIDCError(.subjectMismatch, "the refreshed ID token names another subject")
            }
        }
        return Refreshed(
            accessToken: accessToken, accessTokenExpiry: body["expires_in"]?.number.map { now.addingTimeInterval($0) },
            refreshToken: body["refresh_token"]?.string)
    }

    /// A bearer JWT access token, validated against the provider's keys (``AccessTokenValidator``).
    public func validateAccessToken(_ token: String, now: Date) async throws(OIDCError) -> TokenClaims {
        let (_, keys) = try loaded()
        let validator = AccessTokenValidator(
            issuer: registration.issuer, audiences: registration.bearerAudiences, clientID: registration.clientID)
        var claims = try validator.validate(
            token, keys: try await keys.keys(containing: IDTokenValidator.keyID(of: token)), now: now)
        claims.mapping = registration.claims
        return claims
    }

    /// A back-channel logout token, validated against the provider's keys (``LogoutTokenValidator``). Like a
    /// stranger's bearer token, an unknown `kid` refetches the key set at most once per interval.
    public func validateLogoutToken(_ token: String, now: Date) async throws(OIDCError) -> LogoutRequest {
        let (_, keys) = try loaded()
        let validator = LogoutTokenValidator(issuer: registration.issuer, clientID: registration.clientID)
        return try validator.validate(
            token, keys: try await keys.keys(containing: IDTokenValidator.keyID(of: token)), now: now)
    }

    /// RFC 7662: asks the provider about an opaque token, authenticated as this client; `nil` when the
    /// provider says it is not active, or its `exp` has passed.
    ///
    /// An `iss` other than the issuer or an `aud` without an accepted audience is refused; both are
    /// optional in RFC 7662, so their absence is not; an answer without `exp` is not signed in. A `token_type` other than an
    /// access token's, or the claims of an ID token (``AccessTokenValidator/refuseIDTokens(_:)``), are refused
    /// too. The subject is `sub`, else `username`.
    public func introspect(_ token: String, now: Date) async throws(OIDCError) -> TokenClaims? {
        let (metadata, _) = try loaded()
        guard let endpoint = registration.introspectionURL ?? metadata.introspectionEndpoint else {
            throw OIDCError(.providerUnavailable, "no introspection endpoint (set oidc.introspection_url)")
        }
        let body = try await tokenRequest(
            [("token", token), ("token_type_hint", "access_token")], at: endpoint, name: "introspection")
        guard body["active"]?.bool == true else { return nil }
        let expiry = body["exp"]?.number.map { Date(timeIntervalSince1970: $0) }
        if let expiry, expiry <= now { return nil }
        if let type = body["token_type"]?.string?.lowercased(), type != "bearer", type != "access_token" {
            throw OIDCError(.wrongType, "the introspected token's token_type is \(type), not an access token")
        }
        if case .object(let claims) = body { try AccessTokenValidator.refuseIDTokens(claims) }
        if let issuer = body["iss"], issuer.string != registration.issuer {
            throw OIDCError(.wrongIssuer, "the introspected token's iss is not \(registration.issuer)")
        }
        if let audience = body["aud"] {
            guard audience.strings?.contains(where: registration.bearerAudiences.contains) == true else {
                throw OIDCError(.wrongAudience, "the introspected token's aud contains none of the accepted audiences")
            }
        }
        guard case .object(let claims) = body,
            let subject = body["sub"]?.string ?? body["username"]?.string, !subject.isEmpty
        else { throw OIDCError(.missingSubject, "the introspection answer names no sub or username") }
        // Without an expiry an answer would be believed for as long as it is cached (CONTRACT section 7 wants `exp`):
        // not signed in, an answer the cache keeps briefly, so such a token does not cost a call per request.
        guard let expiry else { return nil }
        return TokenClaims(subject: subject, expiry: expiry, all: claims, mapping: registration.claims)
    }

    /// A form POST authenticated as this client (RFC 6749 2.3.1) to the token or introspection endpoint;
    /// the JSON answer of a 200, else ``OIDCError/Code/tokenRequestRefused``.
    private func tokenRequest(_ form: [(String, String)], at url: String, name: String = "token")
        async throws(OIDCError)
        -> JSONValue
    {
        var form = form
        var headers = [("Content-Type", "application/x-www-form-urlencoded"), ("Accept", "application/json")]
        let tokenEndpoint = state.withLock { $0.metadata?.tokenEndpoint } ?? url
        switch registration.authentication {
        case .clientSecretBasic:
            let credentials =
                FormEncoding.escape(registration.clientID) + ":" + FormEncoding.escape(registration.clientSecret)
            headers.append(("Authorization", "Basic " + Data(credentials.utf8).base64EncodedString()))
        case .clientSecretPost:
            form += [("client_id", registration.clientID), ("client_secret", registration.clientSecret)]
        case .privateKeyJWT(let key):
            form += [
                ("client_id", registration.clientID),
                ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                // RFC 7523 3: the token endpoint names the provider, whichever of its endpoints is called.
                (
                    "client_assertion",
                    key.assertion(clientID: registration.clientID, audience: tokenEndpoint, now: Date())
                ),
            ]
        }
        let response = try await call(
            HTTPRequest(method: "POST", url: url, headers: headers, body: Array(FormEncoding.encode(form).utf8)),
            endpoint: name)
        guard let body = try? JSONDecoder().decode(JSONValue.self, from: Data(response.body)) else {
            throw OIDCError(.badProviderResponse, "the \(name) endpoint answered \(response.status) without JSON")
        }
        guard response.status == 200 else {
            throw OIDCError(
                .tokenRequestRefused, "the \(name) endpoint answered \(response.status) \(body["error"]?.string ?? "")")
        }
        return body
    }

    /// OIDC Core 5.3: the userinfo `sub` must equal the ID token's.
    private func fetchUserinfo(_ endpoint: String, accessToken: String, subject: String) async throws(OIDCError)
        -> [String: JSONValue]
    {
        let response = try await call(
            HTTPRequest(
                url: endpoint, headers: [("Authorization", "Bearer " + accessToken), ("Accept", "application/json")]),
            endpoint: "userinfo")
        guard response.status == 200,
            case .object(let claims)? = try? JSONDecoder().decode(JSONValue.self, from: Data(response.body))
        else { throw OIDCError(.badProviderResponse, "userinfo answered \(response.status)") }
        guard claims["sub"]?.string == subject else {
            throw OIDCError(.subjectMismatch, "userinfo's sub differs from the ID token's")
        }
        return claims
    }

    /// RP-initiated logout: the provider's end-session URL, or `nil` when it has none.
    ///
    /// It names this client (`client_id`, which RP-Initiated Logout 1.0 section 2 accepts in place of
    /// `id_token_hint` to check `post_logout_redirect_uri`) and never carries the ID token: a URL is kept by
    /// browser history, proxies' logs and `Referer` headers, and tokens never appear in URLs Detour builds
    /// (CONTRACT section 7). A provider may then ask the user to confirm the sign-out.
    public func endSessionURL(postLogoutRedirect: String) -> String? {
        guard let endpoint = metadata?.endSessionEndpoint else { return nil }
        let parameters = [("client_id", registration.clientID), ("post_logout_redirect_uri", postLogoutRedirect)]
        return endpoint + (endpoint.contains("?") ? "&" : "?") + FormEncoding.encode(parameters)
    }

    /// One call to the provider, timed as `detour_provider_call_duration_seconds{endpoint}`.
    private func call(_ request: HTTPRequest, endpoint: String) async throws(OIDCError) -> HTTPResponse {
        let start = ContinuousClock.now
        defer {
            Timer(label: "detour_provider_call_duration_seconds", dimensions: [("endpoint", endpoint)])
                .record(duration: ContinuousClock.now - start)
        }
        do {
            return try await transport.send(request)
        } catch {
            throw OIDCError(error.kind == .timedOut ? .providerTimedOut : .providerUnavailable, error.description)
        }
    }
}
