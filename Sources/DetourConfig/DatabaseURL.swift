import Foundation

/// `session.store`: where sessions live (CONTRACT section 8).
public enum SessionStoreSetting: Sendable, Equatable {
    /// The sealed session travels in the cookie; nothing is shared.
    case cookie
    /// Server-side in this process; the cookie holds only a sealed handle.
    case memory
    /// Server-side in PostgreSQL, shared by every replica that names the same database.
    case postgres(DatabaseURL)
}

/// A `postgres://USER:PASS@HOST:PORT/DB` URL, read once at load so that a mistake is a configuration error.
///
/// Guarantees: ``description`` never contains the password; user, password and database are percent-decoded;
/// `sslmode` is `disable` or `verify-full` (TLS with the server's certificate and host name verified), and without
/// it TLS is verified everywhere but on a loopback host.
public struct DatabaseURL: Sendable, Equatable, CustomStringConvertible {
    public var user: String
    public var password: String?
    public var host: String
    public var port: Int
    public var database: String?
    public var verifiedTLS: Bool

    /// Why a URL cannot be used; never repeats the password.
    public struct Problem: Error, Equatable, CustomStringConvertible {
        public let description: String
    }

    public init(parsing text: String) throws(Problem) {
        guard let components = URLComponents(string: text),
            components.scheme == "postgres" || components.scheme == "postgresql"
        else { throw Problem(description: "is not a postgres://USER:PASS@HOST:PORT/DB URL") }
        guard let user = components.percentEncodedUser?.removingPercentEncoding, !user.isEmpty else {
            throw Problem(description: "names no user (postgres://USER:PASS@HOST:PORT/DB)")
        }
        guard var host = components.percentEncodedHost, !host.isEmpty else {
            throw Problem(description: "names no host (postgres://USER:PASS@HOST:PORT/DB)")
        }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let path = components.percentEncodedPath
        let database = path.isEmpty || path == "/" ? nil : String(path.dropFirst()).removingPercentEncoding
        if let database, database.contains("/") {
            throw Problem(description: "has a path that is no database name")
        }
        var tls = !["localhost", "127.0.0.1", "::1"].contains(host.lowercased())
        for item in components.queryItems ?? [] {
            switch (item.name, item.value) {
            case ("sslmode", "disable"): tls = false
            case ("sslmode", "verify-full"): tls = true
            case ("sslmode", let mode):
                throw Problem(
                    description: "sslmode \"\(mode ?? "")\" is not supported yet (\"disable\" or \"verify-full\")")
            default:
                throw Problem(description: "parameter \"\(item.name)\" is not supported yet (only sslmode)")
            }
        }
        self.user = user
        password = components.percentEncodedPassword?.removingPercentEncoding
        self.host = host
        port = components.port ?? 5432
        self.database = database
        verifiedTLS = tls
    }

    public var description: String {
        let shownHost = host.contains(":") ? "[\(host)]" : host
        return "postgres://\(user)\(password == nil ? "" : ":***")@\(shownHost):\(port)/\(database ?? "")"
    }
}
