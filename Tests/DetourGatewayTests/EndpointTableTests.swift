import DetourPolicy
import Testing

/// One table names Detour's endpoints, on the normalised path: every spelling of an endpoint is that endpoint.
@Suite struct EndpointTableTests {
    @Test(arguments: [
        ("/ping", Endpoint.ping), ("/ready", .ready), ("/metrics", .metrics), ("/oauth2/start", .start),
        ("/oauth2/callback", .callback), ("/oauth2/sign_out", .signOut), ("/oauth2/userinfo", .userinfo),
        ("/oauth2/auth", .forwardAuth), ("/oauth2", .unknown), ("/oauth2/", .unknown), ("/oauth2/start/", .unknown),
        ("/oauth2/nothing", .unknown), ("/oauth2/sign_in", .signIn), ("/oauth2/backchannel_logout", .backchannelLogout),
        ("/oauth2/resubmit", .resubmit), ("/oauth2/unknown", .unknown), ("/oauth2/ping", .unknown),
    ])
    func named(path: String, endpoint: Endpoint) {
        #expect(Endpoint.named(by: path, prefix: "/oauth2") == endpoint)
    }

    /// With `server.admin_listen`, the root's three are paths like any other on the public listener.
    @Test func healthPathsAreTheRoutesWhenAnAdminListenerServesThem() {
        for path in ["/ping", "/ready", "/metrics"] {
            #expect(Endpoint.named(by: path, prefix: "/oauth2", health: false) == nil)
            #expect(Endpoint.health(path) != nil)
        }
        #expect(Endpoint.named(by: "/oauth2/start", prefix: "/oauth2", health: false) == .start)
        #expect(Endpoint.health("/oauth2/start") == nil)
    }

    @Test(arguments: ["/", "/oauth2x", "/oauth2x/start", "/ping/", "/pingx", "/OAUTH2/start", "/app/oauth2/start"])
    func notAnEndpoint(path: String) {
        #expect(Endpoint.named(by: path, prefix: "/oauth2") == nil)
    }

    @Test func aConfiguredPrefix() {
        #expect(Endpoint.named(by: "/sso/start", prefix: "/sso") == .start)
        #expect(Endpoint.named(by: "/oauth2/start", prefix: "/sso") == nil)
    }
}
