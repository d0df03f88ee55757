import Crypto
public import DetourConfig
import DetourPolicy
import DetourSessions
public import DetourYAML
import Foundation
import NIOSSL
import Synchronization

/// The HTTPS listener's certificate and key (`server.tls`), read at start and again on ``reload()`` (SIGHUP).
///
/// Guarantees: TLS 1.2 and 1.3 only; ALPN offers `h2`, then `http/1.1`; a pair that cannot serve (a file that is
/// missing or not PEM, no certificate, a key that does not match the certificate) is refused with the file and the
/// reason, and a refused reload leaves the pair in use serving. New connections take the pair current when they
/// are accepted; connections already open keep theirs.
public final class ListenerTLS: Sendable {
    /// One pair, loaded: the context new connections use, and what identifies its certificate in logs.
    struct Loaded: Sendable {
        let context: NIOSSLContext
        /// SHA-256 of the leaf certificate's DER, in lower-case hex (what `openssl x509 -fingerprint -sha256` shows).
        let fingerprint: String
        /// The leaf certificate's end of validity.
        let notValidAfter: Date
    }

    public let files: Configuration.TLSFiles
    private let current: Mutex<Loaded>

    /// - Throws: ``ConfigError`` at `server.tls`'s position, naming the file and what is wrong with it.
    public init(_ files: Configuration.TLSFiles) throws(ConfigError) {
        self.files = files
        current = Mutex(try Self.load(files))
    }

    /// The context a connection accepted now is served with.
    var context: NIOSSLContext { current.withLock { $0.context } }

    /// The current certificate's SHA-256 fingerprint (hex).
    public var fingerprint: String { current.withLock { $0.fingerprint } }

    /// The current certificate's end of validity.
    public var notValidAfter: Date { current.withLock { $0.notValidAfter } }

    /// Reads the files again and, if the new pair can serve, makes it the one new connections get.
    ///
    /// - Returns: the new certificate's fingerprint.
    /// - Throws: ``ConfigError`` as ``init(_:)`` does; the pair in use is kept.
    @discardableResult
    public func reload() throws(ConfigError) -> String {
        let loaded = try Self.load(files)
        current.withLock { $0 = loaded }
        return loaded.fingerprint
    }

    private static func load(_ files: Configuration.TLSFiles) throws(ConfigError) -> Loaded {
        func refused(_ message: String) -> ConfigError {
            ConfigError(diagnostics: [
                Diagnostic(
                    file: files.location.file, line: files.location.line, column: files.location.column,
                    message: "server.tls: \(message)")
            ])
        }
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(files.certFile)
        } catch {
            throw refused("cert_file \(files.certFile) is not a readable PEM certificate chain (\(error))")
        }
        guard let leaf = chain.first, let der = try? leaf.toDERBytes() else {
            throw refused("cert_file \(files.certFile) holds no certificate")
        }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: files.keyFile, format: .pem)
        } catch {
            throw refused("key_file \(files.keyFile) is not a readable PEM private key, RSA or ECDSA (\(error))")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        configuration.applicationProtocols = ["h2", "http/1.1"]
        let context: NIOSSLContext
        do {
            context = try NIOSSLContext(configuration: configuration)
        } catch {
            throw refused(
                "key_file \(files.keyFile) does not match the certificate in cert_file \(files.certFile) (\(error))")
        }
        let fingerprint = Hex.lowercase(SHA256.hash(data: der))
        return Loaded(
            context: context, fingerprint: fingerprint,
            notValidAfter: Date(timeIntervalSince1970: TimeInterval(leaf.notValidAfter)))
    }
}
