import ArgumentParser
import DetourConfig
import DetourRedirect
import DetourYAML
import Foundation

struct RedirectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "redirect", abstract: "Inspect return-target decisions.", subcommands: [RedirectCheckCommand.self])
}

/// `detour redirect check`: decides targets exactly as `/oauth2/start?rd=` would.
struct RedirectCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Decide return targets exactly as /oauth2/start?rd= and /oauth2/sign_out?rd= would.",
        discussion: """
            Targets come from the arguments, else one per line on standard input (taken verbatim: only the \
            newline is removed; a line is the already-decoded value of rd). Exit status: 0 when every target is \
            allowed, 1 when any is rejected, 2 on a usage or configuration error.
            """
    )

    @Option(help: "A Detour configuration file: server.public_url, server.prefix and return_to are used.")
    var config: String?

    @Option(
        name: .customLong("allow"),
        help: "An allowed host, as in return_to.allowed_hosts (repeat the option, or separate with commas).")
    var allowedHosts: [String] = []

    @Option(help: "The URL relative targets resolve against (default: server.public_url, else http://localhost:4180/).")
    var base: String?

    @Flag(help: "Print one JSON object per target: input, allowed, location, reason.")
    var json = false

    @Argument(help: "Targets to check; when none are given, one per line is read from standard input.")
    var targets: [String] = []

    func run() throws {
        let policy = try makePolicy()
        var anyRejected = false
        for target in targets.isEmpty ? Self.standardInputLines() : targets {
            let verdict = policy.evaluate(target)
            if case .rejected = verdict { anyRejected = true }
            print(json ? Self.jsonLine(target, verdict) : Self.textLine(target, verdict))
        }
        if anyRejected { throw ExitCode(1) }
    }

    private func makePolicy() throws -> ReturnTargetPolicy {
        var configuration = DetourConfig.Configuration(file: "<none>")
        if let config {
            do {
                configuration = try .load(file: config)
            } catch {
                FileHandle.standardError.write(Data((error.description + "\n").utf8))
                throw ExitCode(2)
            }
        }
        var base = configuration.baseURL
        if let text = self.base {
            do {
                base = try BrowserURL(parsing: text)
            } catch {
                throw ValidationError("--base \"\(text)\" is not an http(s) URL: \(error)")
            }
        }
        var hosts = configuration.returnTo.allowedHosts
        for entry in allowedHosts.flatMap({ $0.split(separator: ",").map(String.init) }) {
            do {
                hosts.append(try AllowedHost(parsing: entry))
            } catch {
                throw ValidationError("--allow: \(error)")
            }
        }
        return ReturnTargetPolicy(base: base, allowedHosts: hosts, prefix: configuration.server.prefix)
    }

    /// Standard input split on LF; a final newline does not start another line.
    private static func standardInputLines() -> [String] {
        let data = FileHandle.standardInput.readDataToEndOfFile()
        var lines = data.split(separator: 0x0A, omittingEmptySubsequences: false).map {
            String(decoding: $0, as: UTF8.self)
        }
        if data.last == 0x0A || data.isEmpty { lines.removeLast() }
        return lines
    }

    static func jsonLine(_ input: String, _ verdict: ReturnTargetVerdict) -> String {
        switch verdict {
        case .allowed(let url):
            "{\"input\":\(JSON.string(input)),\"allowed\":true,\"location\":\(JSON.string(url.href)),\"reason\":null}"
        case .rejected(let reason):
            "{\"input\":\(JSON.string(input)),\"allowed\":false,\"location\":null,\"reason\":\(JSON.string(reason.code))}"
        }
    }

    static func textLine(_ input: String, _ verdict: ReturnTargetVerdict) -> String {
        switch verdict {
        case .allowed(let url): "allowed  \(JSON.string(input)) -> \(url.href)"
        case .rejected(let reason): "rejected \(JSON.string(input)) \(reason.code): \(reason.explanation)"
        }
    }
}
