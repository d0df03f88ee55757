import Foundation

/// `Tests/servers/http_fixture.py`, a real HTTP(S) server on loopback, for as long as the value lives.
final class FixtureServer: @unchecked Sendable {
    let port: Int
    let scheme: String
    private let process: Process
    private let input: Pipe

    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("servers/http_fixture.py")

    init(tls: (certificate: String, key: String)? = nil) throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Self.script.path] + (tls.map { ["--tls", $0.certificate, $0.key] } ?? [])
        input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        var line = Data()
        while let byte = try output.fileHandleForReading.read(upToCount: 1), !byte.isEmpty, byte != Data([0x0A]) {
            line.append(byte)
        }
        guard let port = Int(String(decoding: line, as: UTF8.self)) else {
            throw FixtureError(message: "the fixture server did not print its port")
        }
        self.port = port
        scheme = tls == nil ? "http" : "https"
    }

    deinit {
        try? input.fileHandleForWriting.close()
        process.terminate()
        process.waitUntilExit()
    }

    func url(_ path: String, host: String = "127.0.0.1") -> String { "\(scheme)://\(host):\(port)\(path)" }

    struct FixtureError: Error {
        let message: String
    }
}

/// A self-signed certificate for `localhost` and 127.0.0.1, made with openssl in a scratch folder.
struct SelfSignedCertificate {
    let certificate: String
    let key: String

    init() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("detour-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        certificate = folder.appendingPathComponent("cert.pem").path
        key = folder.appendingPathComponent("key.pem").path
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        openssl.arguments = [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", certificate, "-days", "1", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ]
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        guard openssl.terminationStatus == 0 else { throw FixtureServer.FixtureError(message: "openssl failed") }
    }
}
