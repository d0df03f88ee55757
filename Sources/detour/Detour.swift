import ArgumentParser
import Foundation

/// The `detour` command line: argument parsing only; the work is in the Detour modules.
struct Detour: AsyncParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "detour",
        abstract: "A single-sign-on reverse proxy that gets redirects right.",
        version: version,
        subcommands: [
            ServeCommand.self, DevCommand.self, PolicyCommand.self, RedirectCommand.self, VersionCommand.self,
        ]
    )
}

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print Detour's version.")

    func run() {
        print("detour \(Detour.version)")
    }
}

@main
enum Main {
    /// Runs the command; usage errors exit 2 (CONTRACT section 1), not argument-parser's 64.
    static func main() async {
        do {
            var command = try Detour.parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let exit as ExitCode {
            Foundation.exit(exit.rawValue)
        } catch {
            if Detour.exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data((Detour.fullMessage(for: error) + "\n").utf8))
                Foundation.exit(2)
            }
            Detour.exit(withError: error)
        }
    }
}
