import DetourConfig
import DetourServer
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

/// SIGHUP re-reads `server.tls`'s certificate and key (CONTRACT section 8): connections accepted afterwards get the
/// new pair, open ones keep theirs; a pair that cannot serve is refused with a log line naming the file and why,
/// and the pair in use stays.
struct CertificateReload: Service {
    let tls: ListenerTLS
    let logger: Logger

    func run() async throws {
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            for await _ in hangups {
                do {
                    let fingerprint = try tls.reload()
                    logger.info("certificate reloaded", metadata: ["certificate": "\(fingerprint)"])
                    Self.warnIfExpired(tls, logger: logger)
                } catch {
                    logger.error(
                        "certificate reload refused; the certificate in use stays",
                        metadata: ["error": "\(error)", "certificate": "\(tls.fingerprint)"])
                }
            }
        }
    }

    /// A certificate past its end still serves (a browser will refuse it): a warning, not a refusal, so that a
    /// renewal that comes late does not also take the listener down.
    static func warnIfExpired(_ tls: ListenerTLS, logger: Logger) {
        guard tls.notValidAfter < Date() else { return }
        logger.warning(
            "the TLS certificate has expired; browsers will refuse it",
            metadata: ["cert_file": "\(tls.files.certFile)", "not_valid_after": "\(tls.notValidAfter)"])
    }
}
