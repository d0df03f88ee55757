import ArgumentParser
import DetourDev
import Foundation
import Logging
import UnixSignals

/// `detour dev`: one-command local SSO for trying Detour.
struct DevCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev",
        abstract:
            "Run Detour with a built-in development identity provider and a demo app, on loopback, with no configuration."
    )

    @Option(help: "Detour's port; the provider and the demo app take the next two.")
    var port = 4180

    @Flag(help: "Serve HTTPS (HTTP/2 and HTTP/1.1) with a certificate from a throw-away authority made for this run.")
    var tls = false

    func run() async throws {
        try LogSetup.bootstrap(default: .text)
        let logger = Logger(label: "detour-dev")
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("detour-dev-\(UUID().uuidString)")
        let certificates = try tls ? Self.throwAwayCertificates(in: folder) : nil
        defer { if tls { try? FileManager.default.removeItem(at: folder) } }
        let stack = try await DevelopmentStack.start(port: port, certificates: certificates, logger: logger)
        let composition = try Composition(configuration: stack.configuration, logger: logger)
        FileHandle.standardOutput.write(Data(stack.banner.utf8))
        try await composition.run(
            logger: logger, hangups: UnixSignalsSequence(trapping: .sighup), companions: stack.companions)
    }

    /// A new authority and certificate in `folder`, made now, readable by this user only (removed at exit).
    private static func throwAwayCertificates(in folder: URL) throws -> DevelopmentCertificates {
        try FileManager.default.createDirectory(
            at: folder, withIntermediateDirectories: false,
            attributes: [
                .posixPermissions: 0o700
            ])
        return try DevelopmentCertificates.make(in: folder)
    }
}
