import DetourYAML
import Testing

@testable import DetourConfig

/// `server.tls`, `server.http_listen` and `server.hsts` (issue 16): each is refused where it could not have its
/// effect, so that an operator who asks for HTTPS never silently gets plain HTTP.
@Suite struct EdgeConfigurationTests {
    func load(_ server: String, file: String = "/etc/detour/detour.yaml") throws(ConfigError) -> Configuration {
        try Configuration.parse("server:\n" + server, file: file, environment: [:])
    }

    func diagnostics(_ server: String) -> [String] {
        do {
            _ = try load(server, file: "detour.yaml")
            return []
        } catch {
            return error.diagnostics.map(\.description)
        }
    }

    @Test func tlsFilesAreReadBesidesTheConfigurationFile() throws {
        let configuration = try load(
            """
              public_url: "https://auth.example.com"
              tls: { cert_file: tls/cert.pem, key_file: /secrets/key.pem }
              http_listen: "0.0.0.0:80"
              hsts: 1h
            """)
        let tls = try #require(configuration.server.tls)
        #expect(tls.certFile == "/etc/detour/tls/cert.pem")
        #expect(tls.keyFile == "/secrets/key.pem")
        #expect("\(tls.location)" == "/etc/detour/detour.yaml:3:8")
        #expect(configuration.server.httpListen == "0.0.0.0:80")
        #expect(configuration.server.hsts == .seconds(3600))
    }

    @Test func hstsIsAYearByDefaultAndZeroIsAllowed() throws {
        #expect(try load("  public_url: \"http://localhost:4180\"\n").server.hsts == .seconds(365 * 86_400))
        #expect(try load("  hsts: 0s\n").server.hsts == .zero)
    }

    @Test func tlsNeedsAnHTTPSPublicURLAndBothFiles() {
        #expect(
            diagnostics("  public_url: \"http://auth.example.com\"\n  tls: { cert_file: c.pem, key_file: k.pem }\n")
                == ["detour.yaml:3:8: server.tls serves https: server.public_url must be an https:// URL"])
        #expect(
            diagnostics("  public_url: \"https://auth.example.com\"\n  tls: { cert_file: c.pem }\n")
                == ["detour.yaml:3:8: server.tls.key_file is required (server.tls is a certificate and its key)"])
        #expect(
            diagnostics("  public_url: \"https://a.example\"\n  tls: { cert_file: c.pem, key_file: k.pem, ca: x }\n")
                .first?.contains("unknown key \"server.tls.ca\"") == true)
    }

    @Test func aPlainListenerAndHSTSNeedTLS() {
        #expect(
            diagnostics("  http_listen: \"127.0.0.1:80\"\n")
                == ["detour.yaml:2:16: server.http_listen redirects to https: it needs server.tls"])
        #expect(
            diagnostics("  hsts: 24h\n")
                == [
                    "detour.yaml:2:9: server.hsts is sent on answers over TLS: it needs server.tls (or \"0s\" for none)"
                ])
    }
}
