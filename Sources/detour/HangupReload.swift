import DetourConfig
import DetourServer
import DetourYAML
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

/// SIGHUP (CONTRACT section 8): re-reads the configuration file and its policies, then `server.tls`'s certificate
/// and key.
///
/// Guarantees: a configuration is validated whole before anything changes. One that fails validation, or changes a
/// key only a restart puts in effect, is refused with a log line per problem (`FILE:LINE:COLUMN: message`) and the
/// running one keeps serving; one that passes serves every request whose head arrives afterwards, while requests
/// in flight finish on the one they started with. The certificate pair is reloaded independently (a renewal is not
/// held back by a configuration being edited): connections accepted afterwards get the new pair, open ones keep
/// theirs, and a pair that cannot serve is refused the same way.
struct HangupReload: Service, CustomStringConvertible {
    /// SIGHUP, trapped from before the listener binds: a hangup during start-up waits here instead of ending Detour.
    let hangups: UnixSignalsSequence
    let application: Application
    /// The configuration in effect; `nil` when there is no file to read again (`detour dev`).
    let configuration: Configuration?
    let logger: Logger
    /// What the service group's log names it by: never the configuration (with its secrets) it holds.
    var description: String { "HangupReload" }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            var running = configuration
            for await _ in hangups {
                if let current = running {
                    running = reloadConfiguration(current)
                }
                if let tls = application.tls { reloadCertificate(tls) }
            }
        }
    }

    /// The configuration in effect after trying to replace `current` with its file's new contents.
    func reloadConfiguration(_ current: Configuration) -> Configuration {
        do {
            let next = try current.reloaded()
            let routes = try application.reload(next)
            logger.info("configuration reloaded", metadata: ["file": "\(next.file)", "routes": "\(routes)"])
            return next
        } catch {
            for diagnostic in error.diagnostics {
                logger.error("configuration reload refused: \(diagnostic)")
            }
            logger.error(
                "configuration reload refused; the running configuration stays", metadata: ["file": "\(current.file)"])
            return current
        }
    }

    func reloadCertificate(_ tls: ListenerTLS) {
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

    /// A certificate past its end still serves (a browser will refuse it): a warning, not a refusal, so that a
    /// renewal that comes late does not also take the listener down.
    static func warnIfExpired(_ tls: ListenerTLS, logger: Logger) {
        guard tls.notValidAfter < Date() else { return }
        logger.warning(
            "the TLS certificate has expired; browsers will refuse it",
            metadata: ["cert_file": "\(tls.files.certFile)", "not_valid_after": "\(tls.notValidAfter)"])
    }
}
