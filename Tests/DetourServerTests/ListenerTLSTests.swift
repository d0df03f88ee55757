import DetourConfig
import DetourDev
import DetourPolicy
import DetourYAML
import Foundation
import Testing

@testable import DetourServer

/// `server.tls` loaded and reloaded (issue 16): a pair that cannot serve is refused with the file and the reason,
/// and a refused reload keeps the pair in use.
@Suite struct ListenerTLSTests {
    let folder: URL

    init() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("detour-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: false)
    }

    /// A pair made in its own folder under `folder`.
    func pair(_ name: String, key: DevelopmentCertificates.KeyKind = .ecdsa, now: Date = Date())
        throws -> DevelopmentCertificates
    {
        let place = folder.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: place, withIntermediateDirectories: false)
        return try DevelopmentCertificates.make(in: place, key: key, now: now)
    }

    func files(_ certificate: String, _ key: String) -> Configuration.TLSFiles {
        Configuration.TLSFiles(
            certFile: certificate, keyFile: key, location: SourceLocation(file: "detour.yaml", line: 4, column: 8))
    }

    func refusal(_ files: Configuration.TLSFiles) -> String? {
        do {
            _ = try ListenerTLS(files)
            return nil
        } catch {
            return error.diagnostics.map(\.description).joined()
        }
    }

    @Test(arguments: [DevelopmentCertificates.KeyKind.ecdsa, .rsa])
    func aPairLoadsWithItsFingerprint(key: DevelopmentCertificates.KeyKind) throws {
        let made = try pair("one", key: key)
        let tls = try ListenerTLS(files(made.certificateFile, made.keyFile))
        #expect(tls.fingerprint == made.fingerprint)
        #expect(tls.notValidAfter > Date())
    }

    @Test func aFileThatIsNotPEMIsRefusedByName() throws {
        let made = try pair("one")
        let garbage = folder.appendingPathComponent("garbage.pem")
        try Data("not a certificate\n".utf8).write(to: garbage)
        let certificate = try #require(refusal(files(garbage.path, made.keyFile)))
        #expect(certificate.hasPrefix("detour.yaml:4:8: server.tls: cert_file \(garbage.path) is not a readable PEM"))
        let key = try #require(refusal(files(made.certificateFile, garbage.path)))
        #expect(key.hasPrefix("detour.yaml:4:8: server.tls: key_file \(garbage.path) is not a readable PEM"))
        let missing = try #require(refusal(files(folder.appendingPathComponent("nope.pem").path, made.keyFile)))
        #expect(missing.contains("nope.pem is not a readable PEM"))
    }

    @Test func aKeyThatDoesNotMatchTheCertificateIsRefused() throws {
        let one = try pair("one")
        let two = try pair("two")
        let refused = try #require(refusal(files(one.certificateFile, two.keyFile)))
        #expect(refused.contains("key_file \(two.keyFile) does not match the certificate in cert_file"))
    }

    @Test func anExpiredCertificateStillLoads() throws {
        let old = try pair("old", now: Date() - 30 * 86_400)
        let tls = try ListenerTLS(files(old.certificateFile, old.keyFile))
        #expect(tls.notValidAfter < Date())
    }

    @Test func reloadTakesTheNewPairAndARefusedOneKeepsTheOld() throws {
        let one = try pair("one")
        let two = try pair("two")
        let live = folder.appendingPathComponent("live")
        try FileManager.default.createDirectory(at: live, withIntermediateDirectories: false)
        let certificate = live.appendingPathComponent("cert.pem")
        let key = live.appendingPathComponent("key.pem")
        func install(_ made: DevelopmentCertificates, key keySource: String? = nil) throws {
            try? FileManager.default.removeItem(at: certificate)
            try? FileManager.default.removeItem(at: key)
            try FileManager.default.copyItem(atPath: made.certificateFile, toPath: certificate.path)
            try FileManager.default.copyItem(atPath: keySource ?? made.keyFile, toPath: key.path)
        }
        try install(one)
        let tls = try ListenerTLS(files(certificate.path, key.path))
        #expect(tls.fingerprint == one.fingerprint)
        try install(two)
        #expect(try tls.reload() == two.fingerprint)
        #expect(tls.fingerprint == two.fingerprint)
        try install(one, key: two.keyFile)
        #expect(throws: ConfigError.self) { try tls.reload() }
        #expect(tls.fingerprint == two.fingerprint)
    }
}
