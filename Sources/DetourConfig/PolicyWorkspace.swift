public import DetourPolicy
public import DetourYAML
public import Foundation

/// Finds configuration, policy and policy-test files on disk for the `detour policy` commands.
public enum PolicyWorkspace {
    /// The files below `paths` (files are taken as given, folders searched recursively) that `accept`
    /// keeps, sorted and without duplicates. Hidden folders and `.build` are skipped.
    public static func files(in paths: [String], where accept: (String) -> Bool) -> [String] {
        var found: Set<String> = []
        for path in paths {
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue else {
                found.insert(URL(fileURLWithPath: path).standardizedFileURL.path)
                continue
            }
            let root = URL(fileURLWithPath: path)
            let entries = FileManager.default.enumerator(atPath: path)?.compactMap { $0 as? String } ?? []
            for entry in entries where accept(entry) {
                let components = entry.split(separator: "/")
                guard !components.contains(where: { $0.hasPrefix(".") }) else { continue }
                found.insert(root.appendingPathComponent(entry).standardizedFileURL.path)
            }
        }
        return found.sorted()
    }

    public static func isTestFile(_ name: String) -> Bool {
        name.hasSuffix(".test.yaml") || name.hasSuffix(".test.yml")
    }

    public static func isConfigurationFile(_ name: String) -> Bool {
        name == "detour.yaml" || name.hasSuffix("/detour.yaml")
    }

    public static func isPolicyFile(_ name: String) -> Bool {
        (name.hasSuffix(".yaml") || name.hasSuffix(".yml")) && !isTestFile(name) && !isConfigurationFile(name)
    }

    /// The nearest `detour.yaml` in `folder` or above it.
    public static func nearestConfiguration(from folder: URL) -> String? {
        var current = folder.standardizedFileURL
        while true {
            let candidate = current.appendingPathComponent("detour.yaml").path
            if FileManager.default.fileExists(atPath: candidate) { return candidate }
            let parent = current.deletingLastPathComponent()
            if parent.path == current.path { return nil }
            current = parent
        }
    }

    /// A configuration and every policy it names; without a configuration, the defaults and the policy
    /// files in `fallbackFolder`.
    public static func load(configuration path: String?, fallbackFolder: URL) throws(ConfigError)
        -> (Configuration, PolicySet)
    {
        guard let path else {
            var policies = PolicySet()
            var diagnostics: [Diagnostic] = []
            for file in files(in: [fallbackFolder.path], where: { !$0.contains("/") && isPolicyFile($0) }) {
                do {
                    policies.append(
                        try PolicySet.parse(
                            YAMLReader.readFile(file), file: file, environment: ProcessInfo.processInfo.environment))
                } catch {
                    diagnostics += error.diagnostics
                }
            }
            if !diagnostics.isEmpty { throw ConfigError(diagnostics: diagnostics) }
            return (Configuration(file: fallbackFolder.appendingPathComponent("detour.yaml").path), policies)
        }
        let configuration = try Configuration.load(file: path)
        return (configuration, try configuration.loadPolicies())
    }
}
