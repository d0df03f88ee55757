import DetourPolicy
import DetourRedirect
import DetourYAML
import Yams

extension Configuration {
    /// `server.tls`, `server.http_listen` and `server.hsts`: Detour as the edge. Each is refused where it could not
    /// have its effect: a plain listener or HSTS without TLS, TLS behind an http public URL.
    mutating func readEdge(_ entries: [String: Node], _ reader: inout YAMLReader) {
        if let value = entries["tls"], !reader.isNull(value),
            let tls = reader.mapping(value, "server.tls", keys: Self.tlsKeys)
        {
            var files: [String] = []
            for key in Self.tlsKeys {
                if let node = tls[key], let text = reader.string(node, "server.tls.\(key)") {
                    files.append(reader.path(text))
                } else if tls[key] == nil {
                    reader.report(value, "server.tls.\(key) is required (server.tls is a certificate and its key)")
                }
            }
            if files.count == 2 {
                server.tls = TLSFiles(
                    certFile: files[0], keyFile: files[1],
                    location: SourceLocation(
                        file: reader.file, line: value.mark?.line ?? 1, column: value.mark?.column ?? 1))
            }
            if let url = server.publicURL, url.scheme != .https {
                reader.report(value, "server.tls serves https: server.public_url must be an https:// URL")
            }
        }
        if let value = entries["http_listen"], !reader.isNull(value),
            let text = reader.string(value, "server.http_listen")
        {
            if entries["tls"].map({ reader.isNull($0) }) ?? true {
                reader.report(value, "server.http_listen redirects to https: it needs server.tls")
            }
            server.httpListen = text
        }
        if let value = entries["hsts"], let duration = reader.duration(value, "server.hsts") {
            if duration < .zero {
                reader.report(value, "server.hsts must be 0s (off) or longer")
            } else if duration > .zero, entries["tls"].map({ reader.isNull($0) }) ?? true {
                reader.report(
                    value, "server.hsts is sent on answers over TLS: it needs server.tls (or \"0s\" for none)")
            }
            server.hsts = duration
        }
    }
}
