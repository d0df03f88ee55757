public import DetourRedirect
public import DetourYAML
import Yams

/// A `*.test.yaml` file (CONTRACT 5.2): requests, who sends them, and what Detour must answer.
public struct PolicyTestFile: Sendable {
    public let file: String
    /// `config:` as written (relative to the test file), if given.
    public let config: String?
    public let cases: [PolicyTestCase]

    /// Parses a test file; every problem is reported at once with its position.
    public static func parse(_ text: String, file: String, environment: [String: String]) throws(ConfigError)
        -> PolicyTestFile
    {
        var reader = YAMLReader(file: file, environment: environment)
        var config: String?
        var cases: [PolicyTestCase] = []
        if let root = try YAMLReader.compose(text, file: file),
            let entries = reader.mapping(root, "", keys: ["config", "tests"])
        {
            config = entries["config"].flatMap { reader.string($0, "config") }
            if let node = entries["tests"], let items = reader.sequence(node, "tests") {
                cases = items.enumerated().compactMap { PolicyTestCase.read($1, "tests[\($0)]", &reader) }
            } else if entries["tests"] == nil {
                reader.report(root, "a test file needs a tests: list")
            }
        }
        if let error = reader.error { throw error }
        return PolicyTestFile(file: file, config: config, cases: cases)
    }
}

/// One test: a request, an optional signed-in user, and the expected answer.
public struct PolicyTestCase: Sendable {
    public let name: String
    public let location: SourceLocation
    public let method: String
    public let scheme: BrowserURL.Scheme
    /// The URL's authority, port included.
    public let host: String
    /// The path and query exactly as written in the test, not normalised: Detour normalises it.
    public let target: String
    /// Lower-case names.
    public let headers: [String: String]
    public let identity: Identity?
    public let expectation: Expectation

    /// `expect:`; only the keys given are checked.
    public struct Expectation: Sendable {
        public var status: Int?
        public var upstream: String?
        public var location: String?
        public var headers: [String: String] = [:]
    }

    static func read(_ node: Node, _ path: String, _ reader: inout YAMLReader) -> PolicyTestCase? {
        guard let entries = reader.mapping(node, path, keys: ["name", "request", "user", "expect"]) else { return nil }
        let before = reader.diagnostics.count
        let name = entries["name"].flatMap { reader.string($0, "\(path).name") } ?? ""
        if entries["name"] == nil { reader.report(node, "\(path).name is required") }

        var method = "GET"
        var url: (BrowserURL.Scheme, String, String)?
        var headers: [String: String] = [:]
        if let requestNode = entries["request"],
            let request = reader.mapping(requestNode, "\(path).request", keys: ["method", "url", "headers"])
        {
            if let value = request["method"], let text = reader.string(value, "\(path).request.method") {
                method = text
            }
            if let value = request["url"], let text = reader.string(value, "\(path).request.url") {
                url = splitURL(text)
                if url == nil {
                    reader.report(
                        value, "\(path).request.url must be an absolute http(s) URL such as https://app.example.com/x")
                }
            } else if request["url"] == nil {
                reader.report(requestNode, "\(path).request.url is required")
            }
            if let value = request["headers"] {
                headers = stringMap(value, "\(path).request.headers", &reader, lowercaseKeys: true)
            }
        } else if entries["request"] == nil {
            reader.report(node, "\(path).request is required")
        }
        let identity = entries["user"].flatMap { readUser($0, "\(path).user", &reader) }

        var expectation = Expectation()
        if let expectNode = entries["expect"],
            let expect = reader.mapping(
                expectNode, "\(path).expect", keys: ["status", "upstream", "location", "headers"])
        {
            expectation.status = expect["status"].flatMap { reader.int($0, "\(path).expect.status") }
            expectation.upstream = expect["upstream"].flatMap { reader.string($0, "\(path).expect.upstream") }
            expectation.location = expect["location"].flatMap { reader.string($0, "\(path).expect.location") }
            if let value = expect["headers"] {
                expectation.headers = stringMap(value, "\(path).expect.headers", &reader, lowercaseKeys: false)
            }
            if expect.isEmpty { reader.report(expectNode, "\(path).expect checks nothing") }
        } else if entries["expect"] == nil {
            reader.report(node, "\(path).expect is required")
        }
        guard reader.diagnostics.count == before, let (scheme, host, target) = url else { return nil }
        return PolicyTestCase(
            name: name,
            location: SourceLocation(file: reader.file, line: node.mark?.line ?? 1, column: node.mark?.column ?? 1),
            method: method, scheme: scheme, host: host, target: target, headers: headers, identity: identity,
            expectation: expectation)
    }

    /// Splits `https://host[:port]/path?query` without normalising the path, so tests can send the
    /// spellings an attacker would.
    static func splitURL(_ text: String) -> (BrowserURL.Scheme, String, String)? {
        let scheme: BrowserURL.Scheme
        let rest: Substring
        if text.hasPrefix("https://") {
            (scheme, rest) = (.https, text.dropFirst(8))
        } else if text.hasPrefix("http://") {
            (scheme, rest) = (.http, text.dropFirst(7))
        } else {
            return nil
        }
        let end = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        let host = String(rest[..<end])
        guard !host.isEmpty, !host.contains("@") else { return nil }
        let target = rest[end...]
        return (scheme, host, target.hasPrefix("/") ? String(target) : "/" + target)
    }

    private static func readUser(_ node: Node, _ path: String, _ reader: inout YAMLReader) -> Identity? {
        let keys = ["sub", "email", "email_verified", "groups", "preferred_username", "claims"]
        guard let entries = reader.mapping(node, path, keys: keys) else { return nil }
        let email = entries["email"].flatMap { reader.string($0, "\(path).email") }
        var claims: [String: [String]] = [:]
        if let value = entries["claims"], case .mapping(let mapping) = value {
            for (key, claim) in mapping {
                guard let name = reader.string(key, "\(path).claims") else { continue }
                if case .sequence = claim {
                    claims[name] = reader.strings(claim, "\(path).claims.\(name)")?.map(\.0) ?? []
                } else {
                    claims[name] = reader.string(claim, "\(path).claims.\(name)").map { [$0] } ?? []
                }
            }
        } else if let value = entries["claims"] {
            reader.report(value, "\(path).claims must map claim names to values")
        }
        return Identity(
            subject: entries["sub"].flatMap { reader.string($0, "\(path).sub") } ?? email ?? "test-user",
            email: email,
            emailVerified: entries["email_verified"].flatMap { reader.bool($0, "\(path).email_verified") },
            groups: entries["groups"].flatMap { reader.strings($0, "\(path).groups")?.map(\.0) } ?? [],
            preferredUsername: entries["preferred_username"].flatMap {
                reader.string($0, "\(path).preferred_username")
            },
            claims: claims)
    }

    private static func stringMap(_ node: Node, _ path: String, _ reader: inout YAMLReader, lowercaseKeys: Bool)
        -> [String: String]
    {
        guard case .mapping(let mapping) = node else {
            reader.report(node, "\(path) must map header names to values")
            return [:]
        }
        var result: [String: String] = [:]
        for (key, value) in mapping {
            guard let name = reader.string(key, path), let text = reader.string(value, "\(path).\(name)") else {
                continue
            }
            result[lowercaseKeys ? name.lowercased() : name] = text
        }
        return result
    }
}

/// The outcome of one policy test.
public struct PolicyTestResult: Sendable {
    public let testCase: PolicyTestCase
    public let decision: Decision
    /// One sentence per expectation that did not hold; empty when the test passed.
    public let mismatches: [String]

    public var passed: Bool { mismatches.isEmpty }
}

extension PolicyTestCase {
    /// Runs the test through `engine`, the same decision path the proxy uses; no network.
    public func run(on engine: PolicyEngine) -> PolicyTestResult {
        let headers = self.headers
        let request = PolicyEngine.Request(
            method: method, scheme: scheme, host: host, target: target, identity: identity, header: { headers[$0] })
        let decision = engine.decide(request)
        let client = ClientKind.classify(method: method, header: { headers[$0] })
        let answer = decision.answer(method: method, client: client, authorizationURL: nil)
        var mismatches: [String] = []

        if let status = expectation.status, status != decision.status {
            mismatches.append("expected status \(status), got \(decision.status)")
        }
        var upstream: String?
        var upstreamHeaders: [HeaderField] = []
        if case .proxy(let url, let headers, _) = decision.outcome {
            upstream = url
            upstreamHeaders = headers
        }
        if let expected = expectation.upstream, expected != upstream {
            mismatches.append("expected upstream \(expected), got \(upstream ?? "no upstream (not proxied)")")
        }
        if let expected = expectation.location {
            if case .signIn(.redirectToProvider, _, _) = decision.outcome {
                mismatches.append(
                    "expected location \(expected), but row A1 redirects to the provider's authorization endpoint, "
                        + "which policy test does not know; check the status instead")
            } else if answer?.location != expected {
                mismatches.append("expected location \(expected), got \(answer?.location ?? "none")")
            }
        }
        for (name, expected) in expectation.headers.sorted(by: { $0.key < $1.key }) {
            let actual =
                upstream != nil
                ? upstreamHeaders.first { $0.name.lowercased() == name.lowercased() }?.value : answer?.header(name)
            if actual != expected {
                let side = upstream != nil ? "upstream request" : "response"
                mismatches.append(
                    "expected \(side) header \(name): \(expected), got \(actual.map { "\(name): \($0)" } ?? "none")")
            }
        }
        return PolicyTestResult(testCase: self, decision: decision, mismatches: mismatches)
    }
}
