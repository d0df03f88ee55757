import DetourPolicy
import NIOCore
import NIOSSL

/// How Detour speaks TLS to one route's `https://` upstream, made once at start-up from `upstream_tls`.
///
/// Guarantees (CONTRACT section 7): the certificate is verified in full, chain and name, against the
/// system's trust store plus the route's `ca_file`; the name verified and sent as SNI is `server_name`,
/// else the upstream URL's host; a client certificate is presented when `cert_file` is given. A failed
/// handshake or verification ends that connection (a 502 page for the request); Detour never retries in
/// plaintext. Compared by identity: connections pooled for one route are never handed to another route
/// with other TLS settings.
final class UpstreamTLSClient: Sendable, Hashable {
    let context: NIOSSLContext
    /// The name verified in the certificate and sent as SNI.
    let serverName: String

    /// - Throws: ``UpstreamTLSError`` naming the file that cannot be read or used.
    init(_ settings: UpstreamTLS, upstreamHost: String) throws(UpstreamTLSError) {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .fullVerification
        configuration.minimumTLSVersion = .tlsv12
        do {
            if let caFile = settings.caFile {
                configuration.additionalTrustRoots = [.certificates(try NIOSSLCertificate.fromPEMFile(caFile))]
            }
            if let certFile = settings.certFile, let keyFile = settings.keyFile {
                configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certFile).map { .certificate($0) }
                configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem))
            }
            context = try NIOSSLContext(configuration: configuration)
        } catch {
            throw UpstreamTLSError(detail: "\(error)")
        }
        serverName = settings.serverName ?? upstreamHost
    }

    /// The handler that encrypts a new upstream connection; first in its pipeline.
    func handler() throws -> NIOSSLClientHandler {
        try NIOSSLClientHandler(context: context, serverHostname: serverName)
    }

    static func == (lhs: UpstreamTLSClient, rhs: UpstreamTLSClient) -> Bool { lhs === rhs }
    func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }
}

/// An `upstream_tls` file that cannot be read or used (missing, not PEM, a key that does not match).
struct UpstreamTLSError: Error, CustomStringConvertible {
    let detail: String
    var description: String { "upstream_tls cannot be used: \(detail)" }
}
