import ArgumentParser
import DetourDev
import Foundation
import Logging

/// `detour dev`: one-command local SSO for trying Detour.
struct DevCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev",
        abstract:
            "Run Detour with a built-in development identity provider and a demo app, on loopback, with no configuration."
    )

    @Option(help: "Detour's port; the provider and the demo app take the next two.")
    var port = 4180

    func run() async throws {
        LoggingSystem.bootstrap { EscapingLogHandler(StreamLogHandler.standardError(label: $0)) }
        let logger = Logger(label: "detour-dev")
        let stack = try await DevelopmentStack.start(port: port, logger: logger)
        let composition = try Composition(configuration: stack.configuration, logger: logger)
        FileHandle.standardOutput.write(Data(stack.banner.utf8))
        try await composition.run(logger: logger, companions: stack.companions)
    }
}
