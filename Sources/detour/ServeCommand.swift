import ArgumentParser
import DetourConfig
import DetourPostgres
import Foundation
import Logging
import UnixSignals

/// `detour serve --config FILE`: runs the proxy until SIGTERM or SIGINT.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run Detour with a configuration file.",
        discussion:
            "Exit status: 0 after a clean shutdown (SIGTERM or SIGINT drain in-flight requests), 2 on a configuration error."
    )

    @Option(help: "The configuration file (detour.yaml).")
    var config: String

    func run() async throws {
        // First: until SIGHUP is trapped, its default action ends the process (a reload sent during start-up).
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        let configuration: Configuration
        do {
            configuration = try Configuration.load(file: config)
        } catch {
            printErrors(error)
            throw ExitCode(2)
        }
        // Detour's own lines in the access log's format, so that one switch makes a deployment's logs all JSON.
        try LogSetup.bootstrap(default: configuration.server.accessLog == .text ? .text : .json)
        let logger = Logger(label: "detour")
        let composition: Composition
        do {
            composition = try Composition(configuration: configuration, logger: logger)
        } catch {
            printErrors(error)
            throw ExitCode(2)
        }
        do {
            try await composition.run(logger: logger, hangups: hangups, reloading: configuration)
        } catch let refused as PostgresSessionStore.Refused {
            FileHandle.standardError.write(Data((refused.description + "\n").utf8))
            throw ExitCode(2)
        }
    }
}
