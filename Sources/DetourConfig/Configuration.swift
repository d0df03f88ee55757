public import DetourPolicy
public import DetourRedirect

/// A loaded, validated `detour.yaml` (CONTRACT section 3).
///
/// Every value has been type-checked, every allowlist entry parsed and the return-target default
/// checked against the allowlist; keys left out have the contract's defaults.
public struct Configuration: Sendable, CustomStringConvertible {
    /// The file it was loaded from.
    public var file: String
    public var server = Server()
    /// `nil` when the file has no `oidc:` section (enough for `redirect check` and `policy` commands).
    public var oidc: OIDC?
    public var session = Session()
    public var returnTo = ReturnTo()
    /// Policy files and folders, relative to the configuration file.
    public var policies: [String] = []
    /// `routes:` and `redirects:` written in the configuration file itself.
    public var inlinePolicies = PolicySet()

    /// `server:`: where Detour listens and how browsers reach it; `publicURL` is an origin only.
    public struct Server: Sendable {
        public var listen = "127.0.0.1:4180"
        /// How browsers reach Detour; `nil` when not configured (`http://localhost:4180/` is assumed).
        public var publicURL: BrowserURL?
        public var prefix = "/oauth2"
        public var trustedProxies: [String] = []
        public var redirectHTTPToHTTPS = false
        /// How long connecting to an upstream may take (502 after that).
        public var upstreamConnectTimeout = Duration.seconds(5)
        /// How long an upstream may take, after the request's end, to start its response (504 after that).
        public var upstreamTimeout = Duration.seconds(60)
        /// The largest proxied request body (413 above); `nil` for no limit (`limits.max_body_bytes`, or
        /// `max_request_body`, its earlier name).
        public var maxRequestBody: Int?
        /// SIGTERM: how long requests in flight may take to finish before their connections are closed.
        public var shutdownGrace = Duration.seconds(30)
        /// `server.access_log`: one line per request on standard output.
        public var accessLog = AccessLogFormat.json
        /// `server.limits`: what one client may hold (CONTRACT section 3); defaults protect an unconfigured Detour.
        public var limits = Limits()
        /// `server.tls`: when set, ``listen`` serves HTTPS (HTTP/1.1 and HTTP/2 by ALPN) with these files.
        public var tls: TLSFiles?
        /// `server.http_listen`: a plain-HTTP listener (only with ``tls``) whose every answer is row H1.
        public var httpListen: String?
        /// `server.admin_listen`: where `/ping`, `/ready` and `/metrics` are served instead of on every host.
        public var adminListen: String?
        /// `server.hsts`: the `Strict-Transport-Security` max-age sent on answers over TLS; zero sends none.
        public var hsts = Duration.seconds(365 * 24 * 3600)
    }

    /// `server.tls`: the listener's certificate chain and private key, as PEM files. Paths are resolved against
    /// the configuration file's folder; `location` is where `server.tls` was written, for errors found when the
    /// files are read (at start and on SIGHUP).
    public struct TLSFiles: Sendable, Hashable {
        public var certFile: String
        public var keyFile: String
        public var location: SourceLocation

        public init(certFile: String, keyFile: String, location: SourceLocation) {
            self.certFile = certFile
            self.keyFile = keyFile
            self.location = location
        }
    }

    /// `server.limits`.
    public struct Limits: Sendable, Equatable {
        /// Open client connections; more wait in the kernel's backlog.
        public var maxConnections = 10_000
        /// How long a new connection may take to send its whole first request head (slowloris).
        public var headerTimeout = Duration.seconds(10)
        /// The longest pause while a request body is read.
        public var bodyTimeout = Duration.seconds(60)
        /// How long a kept-alive connection may wait for (and take to send) its next request head.
        public var idleTimeout = Duration.seconds(75)
        /// All header lines of one request head together (431 above).
        public var maxHeaderBytes = 32_768
    }

    /// `oidc:`: the provider and this client; `issuer` and `client_id` are present when the section is.
    public struct OIDC: Sendable {
        /// How the provider returns the code: in the query string, or in a form POST.
        public enum ResponseMode: String, Sendable, CaseIterable {
            case query
            case formPost = "form_post"
        }

        /// How Detour authenticates to the token endpoint (RFC 6749 2.3.1).
        public enum TokenEndpointAuth: String, Sendable, CaseIterable {
            case clientSecretBasic = "client_secret_basic"
            case clientSecretPost = "client_secret_post"
            /// RFC 7523: an assertion signed with ``privateKeyFile``.
            case privateKeyJWT = "private_key_jwt"
        }

        public var issuer = ""
        public var clientID = ""
        public var clientSecret: String?
        public var clientSecretFile: String?
        /// The PEM private key that signs `private_key_jwt` assertions (RSA or P-256), relative to the file.
        public var privateKeyFile: String?
        public var scopes = ["openid", "email", "profile"]
        public var responseMode = ResponseMode.query
        public var tokenEndpointAuth = TokenEndpointAuth.clientSecretBasic
        public var caFile: String?
        public var timeout = Duration.seconds(10)
        /// Audiences a bearer JWT may carry; empty means the client id.
        public var bearerAudiences: [String] = []
        /// The RFC 7662 endpoint; `nil` means discovery's `introspection_endpoint`.
        public var introspectionURL: String?
        /// How long an active introspection answer is kept (never past the token's `exp`).
        public var introspectionCacheTTL = Duration.seconds(60)
        /// Whether `/oauth2/backchannel_logout` serves (it needs a server-side session store).
        public var backchannelLogout = false
        /// Where identity comes from: dotted claim paths (`oidc.claims`).
        public var claims = ClaimPaths()
        /// Extra authorization-request parameters (`oidc.auth_params`), in the file's order.
        public var authParams: [(name: String, value: String)] = []
    }

    /// `server.access_log`'s values.
    public enum AccessLogFormat: String, Sendable, CaseIterable {
        case json
        case text
        case off
    }

    /// `oidc.claims`: a dotted claim path for each part of the identity.
    public struct ClaimPaths: Sendable, Hashable {
        public var user = "sub"
        public var email = "email"
        public var groups = "groups"
        public var preferredUsername = "preferred_username"
    }

    /// `session:`: the session cookie; every secret decodes to 32 or more bytes.
    public struct Session: Sendable, Equatable {
        public var cookieName = "_detour"
        public var secrets: [String] = []
        public var lifetime = Duration.seconds(8 * 3600)
        public var refreshBefore = Duration.seconds(300)
        public var cookieDomain: String?
        public var store = SessionStoreSetting.cookie
    }

    /// `return_to:`: where sign-in and sign-out may return; the default passes both allowlists.
    public struct ReturnTo: Sendable {
        public var allowedHosts: [AllowedHost] = []
        /// `nil`: the same as ``allowedHosts``.
        public var logoutAllowedHosts: [AllowedHost]?
        public var defaultTarget = "/"
        public var preservePost = false
    }

    /// The URL relative return targets resolve against: `server.public_url`, else `http://localhost:4180/`.
    public var baseURL: BrowserURL { server.publicURL ?? Self.defaultBase }

    static let defaultBase: BrowserURL = {
        guard let url = try? BrowserURL(parsing: "http://localhost:4180/") else {
            preconditionFailure("the default public URL is a valid URL")
        }
        return url
    }()

    /// The policy that decides `/oauth2/start?rd=` targets.
    public var signInTargets: ReturnTargetPolicy {
        ReturnTargetPolicy(base: baseURL, allowedHosts: returnTo.allowedHosts, prefix: server.prefix)
    }

    /// The policy that decides `/oauth2/sign_out?rd=` targets.
    public var signOutTargets: ReturnTargetPolicy {
        ReturnTargetPolicy(
            base: baseURL, allowedHosts: returnTo.logoutAllowedHosts ?? returnTo.allowedHosts, prefix: server.prefix)
    }

    /// The policy engine's settings from `server` and `return_to`.
    public var engineSettings: PolicyEngine.Settings {
        PolicyEngine.Settings(
            publicURL: baseURL, prefix: server.prefix, redirectHTTPToHTTPS: server.redirectHTTPToHTTPS,
            preservePost: returnTo.preservePost, servesHealth: server.adminListen == nil,
            preservedFormLimit: min(PolicyEngine.Settings.largestKeptForm, server.maxRequestBody ?? .max),
            returnTargets: signInTargets)
    }

    /// Names the file only: a configuration holds secrets, and a log line that prints one must not show them.
    public var description: String { "configuration from \(file)" }

    /// The configuration with every default, as if loaded from an empty file.
    public init(file: String) {
        self.file = file
    }
}
