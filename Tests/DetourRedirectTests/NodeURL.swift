import Foundation

/// Node's WHATWG `URL`, run as a real process: the reference Detour's URL reading is compared against.
struct NodeURL {
    struct Answer: Decodable {
        let href: String?
        let protocolName: String?
        let host: String?
        let error: Bool?

        enum CodingKeys: String, CodingKey {
            case href, host, error
            case protocolName = "protocol"
        }
    }

    /// Parses each input against `base` in one Node process; answers are in input order.
    static func parse(_ inputs: [String], base: String) throws -> [Answer] {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("node/whatwg-url.mjs")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["node", script.path]
        let stdin = Pipe()
        let stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        try process.run()
        let encoder = JSONEncoder()
        var request = Data()
        for input in inputs {
            request.append(try encoder.encode(["input": input, "base": base]))
            request.append(0x0A)
        }
        // Write from another thread so a full stdout pipe cannot deadlock the exchange.
        let payload = request
        let writer = Thread {
            stdin.fileHandleForWriting.write(payload)
            try? stdin.fileHandleForWriting.close()
        }
        writer.start()
        let response = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw NodeFailed(status: process.terminationStatus) }
        let decoder = JSONDecoder()
        return try response.split(separator: 0x0A).map { try decoder.decode(Answer.self, from: Data($0)) }
    }

    struct NodeFailed: Error {
        let status: Int32
    }
}
