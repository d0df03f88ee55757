import ArgumentParser
import DetourConfig
import DetourPolicy
import DetourYAML
import Foundation

struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy", abstract: "Test and lint policies.",
        subcommands: [PolicyTestCommand.self, PolicyCheckCommand.self])
}

/// `detour policy test`: runs `*.test.yaml` files through the real decision engine, no network.
struct PolicyTestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Run policy test files (*.test.yaml) through the decision engine.",
        discussion: """
            Each test file is run against its config: key, else --config, else the nearest detour.yaml above \
            it, else the policy files beside it. Exit status: 0 when all pass, 1 when a test failed, 2 when a \
            file is invalid.
            """
    )

    @Option(help: "The configuration to test against when a test file names none.")
    var config: String?

    @Argument(help: "Test files or folders (default: the current folder).")
    var paths: [String] = []

    func run() throws {
        let files = PolicyWorkspace.files(in: paths.isEmpty ? ["."] : paths, where: PolicyWorkspace.isTestFile)
        var engines: [String: PolicyEngine] = [:]
        var (passed, failed, invalid) = (0, 0, false)
        for file in files {
            let folder = URL(fileURLWithPath: file).deletingLastPathComponent()
            do {
                let tests = try PolicyTestFile.parse(
                    YAMLReader.readFile(file), file: file, environment: ProcessInfo.processInfo.environment)
                let configPath =
                    tests.config.map { folder.appendingPathComponent($0).standardizedFileURL.path }
                    ?? config ?? PolicyWorkspace.nearestConfiguration(from: folder)
                let key = configPath ?? "folder:" + folder.path
                let engine: PolicyEngine
                if let cached = engines[key] {
                    engine = cached
                } else {
                    let (configuration, policies) = try PolicyWorkspace.load(
                        configuration: configPath, fallbackFolder: folder)
                    engine = PolicyEngine(policies: policies, settings: configuration.engineSettings)
                    engines[key] = engine
                }
                for result in tests.cases.map({ $0.run(on: engine) }) {
                    if result.passed {
                        passed += 1
                    } else {
                        failed += 1
                        let place = result.testCase.location
                        let decided =
                            "decided \(result.decision.reason)" + (result.decision.rule.map { " by \($0)" } ?? "")
                        print(
                            "\(place.file):\(place.line): test \"\(result.testCase.name)\": "
                                + result.mismatches.joined(separator: "; ") + " (\(decided))")
                    }
                }
            } catch {
                invalid = true
                printErrors(error)
            }
        }
        print("\(passed) passed, \(failed) failed")
        if invalid { throw ExitCode(2) }
        if failed > 0 { throw ExitCode(1) }
    }
}

/// `detour policy check`: validates and lints a configuration and its policies.
struct PolicyCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate and lint a configuration and its policies.",
        discussion: """
            Checks --config (else a detour.yaml in or above the given folders) with every policy it names, and \
            any other policy files given. Prints FILE:LINE:COLUMN: severity: message lines. Exit status: 0 with \
            no errors (warnings allowed), 1 with errors, 2 when a file cannot be read.
            """
    )

    @Option(help: "The configuration file to check.")
    var config: String?

    @Argument(help: "Policy files or folders (default: the current folder, or none with --config).")
    var paths: [String] = []

    func run() throws {
        // With --config, its policies are the set, plus any paths given; without, the current folder.
        let roots = paths.isEmpty && config == nil ? ["."] : paths
        let configPath =
            config ?? PolicyWorkspace.files(in: roots, where: PolicyWorkspace.isConfigurationFile).first
            ?? roots.lazy.compactMap { PolicyWorkspace.nearestConfiguration(from: URL(fileURLWithPath: $0)) }.first
        var findings: [Diagnostic] = []
        var unreadable = false
        var configuration = Configuration(file: configPath ?? "detour.yaml")
        var policies = PolicySet()
        var loaded: Set<String> = []
        do {
            if let configPath {
                configuration = try Configuration.load(file: configPath)
                policies = try configuration.loadPolicies()
                loaded = Set((policies.routes.map(\.location.file) + policies.redirects.map(\.location.file)))
            }
        } catch {
            findings += error.diagnostics
            unreadable = error.isUnreadable
        }
        for file in PolicyWorkspace.files(in: roots, where: PolicyWorkspace.isPolicyFile) where !loaded.contains(file) {
            do {
                policies.append(
                    try PolicySet.parse(
                        YAMLReader.readFile(file), file: file, environment: ProcessInfo.processInfo.environment))
            } catch {
                findings += error.diagnostics
                unreadable = unreadable || error.isUnreadable
            }
        }
        findings += PolicyLint.check(policies, returnTargets: configuration.signInTargets)
        for finding in findings { print(finding.descriptionWithSeverity) }
        let errors = findings.filter { $0.severity == .error }.count
        print(
            "\(errors) errors, \(findings.count - errors) warnings in \(policies.routes.count) routes and \(policies.redirects.count) redirects"
        )
        if unreadable { throw ExitCode(2) }
        if errors > 0 { throw ExitCode(1) }
    }
}

func printErrors(_ error: ConfigError) {
    FileHandle.standardError.write(Data((error.description + "\n").utf8))
}
