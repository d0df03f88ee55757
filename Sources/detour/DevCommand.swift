import ArgumentParser
import DetourDev
import DetourServer
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
        try await DevelopmentStack.run(port: port, logger: Logger(label: "detour-dev"))
    }
}
