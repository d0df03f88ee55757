import Crypto
import DetourConfig
import DetourGateway
import DetourRedirect
import DetourServer
import DetourSessions
import Foundation
import Logging

/// `detour dev`: the development provider and a demo upstream, listening on loopback only, and the configuration of
/// a Detour in front of them, with no configuration file. For trying Detour and developing it, never for production.
/// The executable runs Detour from ``configuration`` beside ``companions``.
public struct DevelopmentStack: Sendable {
    public struct PortError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Detour's configuration: on `port`, signing in at the development provider, in front of the demo.
    public let configuration: Configuration
    /// The provider on `port + 1` and the demo upstream on `port + 2`, already listening.
    public let companions: [HTTPServer]
    /// What to tell the person who started it.
    public let banner: String

    /// Starts the provider on `port + 1` and the demo on `port + 2`; Detour is to listen on `port`, over HTTPS
    /// with `certificates` when given.
    public static func start(
        port: Int, certificates: DevelopmentCertificates? = nil, logger: Logger
    ) async throws -> DevelopmentStack {
        guard (1...65533).contains(port) else {
            throw PortError(description: "--port must be 1-65533 (it uses three ports)")
        }
        let host = "127.0.0.1"  // loopback only: the provider signs anyone in without a password
        let providerPort = port + 1
        let upstreamPort = port + 2
        let issuer = "http://\(host):\(providerPort)"
        let secret = Base64URL.encode(SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) })
        let provider = try DevelopmentProvider(issuer: issuer, clientID: "detour-dev", clientSecret: secret)
        let providerServer = try await HTTPServer.bind(host: host, port: providerPort, logger: logger) { _, _ in
            .respond { await provider.handle($0) }
        }
        let demoServer = try await HTTPServer.bind(host: host, port: upstreamPort, logger: logger) { _, _ in
            .respond { DemoUpstream.page(for: $0) }
        }
        let scheme = certificates == nil ? "http" : "https"
        let tls =
            certificates.map { "\n  tls: { cert_file: \"\($0.certificateFile)\", key_file: \"\($0.keyFile)\" }" } ?? ""
        let cookieSecret = Data(SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }).base64EncodedString()
        let yaml = """
            server:
              listen: "\(host):\(port)"
              public_url: "\(scheme)://localhost:\(port)"\(tls)
            oidc:
              issuer: "\(issuer)"
              client_id: "detour-dev"
              client_secret: "\(secret)"
            session:
              secrets: ["\(cookieSecret)"]
              store: memory
            return_to:
              allowed_hosts: ["localhost:*", "127.0.0.1:*"]
            routes:
              - name: demo
                upstream: "http://\(host):\(upstreamPort)"
                allow: [{ authenticated: true }]
                public: ["/public/"]
              - name: admins-only
                match: { path: "/admin" }
                upstream: "http://\(host):\(upstreamPort)"
                allow: [{ group: ["admins"] }]
            """
        let banner = """

            Detour development mode: everything below runs on this machine's loopback only.

              open      \(scheme)://localhost:\(port)/
              users     alice (admins, developers), bob (developers), carol (no groups): no passwords
              try       \(scheme)://localhost:\(port)/admin (admins only), \(scheme)://localhost:\(port)/public/ (no sign-in)
              provider  \(issuer) (a development identity provider: never use it for anything real)
              upstream  http://\(host):\(upstreamPort) (a demo page showing who you are and what it received)
            \(certificates.map { Self.trustAdvice($0, port: port) } ?? "")
            Stop with Ctrl-C.

            """
        return DevelopmentStack(
            configuration: try Configuration.parse(yaml, file: "<detour dev>", environment: [:]),
            companions: [providerServer, demoServer], banner: banner)
    }
}

extension DevelopmentStack {
    /// How to make clients trust the throw-away authority of `detour dev --tls`.
    static func trustAdvice(_ certificates: DevelopmentCertificates, port: Int) -> String {
        """

          https     a throw-away certificate authority, made for this run, signed Detour's certificate
                    (sha256 \(certificates.fingerprint)); trust it for this run only:
            curl    curl --cacert \(certificates.authorityFile) https://localhost:\(port)/
            Python  requests.get(url, verify="\(certificates.authorityFile)")
            Node    NODE_EXTRA_CA_CERTS=\(certificates.authorityFile) node ...
            Chrome  certutil -d sql:$HOME/.pki/nssdb -A -t "C,," -n detour-dev -i \(certificates.authorityFile)
                    (Linux, libnss3-tools; on macOS: security add-trusted-cert -r trustRoot -k
                    ~/Library/Keychains/login.keychain-db \(certificates.authorityFile)); remove it when done
                    (certutil -d sql:$HOME/.pki/nssdb -D -n detour-dev): each run makes a new one

        """
    }
}

/// The demo upstream's page: who Detour says you are, and every header the request carried.
enum DemoUpstream {
    static func page(for request: EndpointRequest) -> Answer {
        func value(_ name: String) -> String { HTML.escape(request.header(name) ?? "(none)") }
        let rows = request.headers.map { "<tr><td>\(HTML.escape($0.name))</td><td>\(HTML.escape($0.value))</td></tr>" }
            .joined(separator: "\n")
        let page = """
            <!DOCTYPE html>
            <html><head><meta charset="utf-8"><title>Detour demo upstream</title></head>
            <body><h1>Hello, \(value("x-forwarded-preferred-username"))</h1>
            <p>This page is the demo application behind Detour. Detour told it:</p>
            <ul><li>user: \(value("x-forwarded-user"))</li><li>email: \(value("x-forwarded-email"))</li>
            <li>groups: \(value("x-forwarded-groups"))</li></ul>
            <p>You asked for <code>\(HTML.escape(request.method)) \(HTML.escape(request.target))</code>.
            <a href="/oauth2/sign_out?rd=/public/">Sign out</a> · <a href="/oauth2/userinfo">/oauth2/userinfo</a></p>
            <h2>Headers received</h2><table>\(rows)</table></body></html>

            """
        return Answer(status: 200, headers: [("Content-Type", "text/html; charset=utf-8")], body: page)
    }
}
