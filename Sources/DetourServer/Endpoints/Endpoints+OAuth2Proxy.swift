import DetourConfig
import DetourGateway
import DetourRedirect
import Foundation

extension Endpoints {
    /// `/oauth2/sign_in`, oauth2-proxy's entry for nginx `error_page 401 = /oauth2/sign_in` (CONTRACT section 2).
    ///
    /// A browser navigation is sent to sign in as `/oauth2/start` sends it (A1, 302 to the provider). When a trusted
    /// proxy says the original request was not GET or HEAD (`X-Original-Method` or `X-Forwarded-Method`: nginx's
    /// `error_page` turns every method into GET), it is row A2 instead: 303 to `/oauth2/start`. An API client gets
    /// row A3, 401 JSON with the sign-in URL, which `fetch()` can act on. The target is `rd`, else
    /// `X-Auth-Request-Redirect`, validated as any `rd` is (S1).
    func signIn(_ request: EndpointRequest, now: Date) async -> Answer {
        guard request.method == "GET" || request.method == "HEAD" else {
            return methodNotAllowed(request, ["GET", "HEAD"])
        }
        let target = configuration.signInTargets.returnTarget(for: requestedTarget(request), fallback: defaultTarget)
            .target
        guard request.client == .navigation else {
            return Answer(
                RedirectMatrix.answer(
                    .unauthenticated(loginURL: startURL(target)), method: request.method, client: request.client))
        }
        if request.fromTrustedProxy,
            let original = (request.header("x-original-method") ?? request.header("x-forwarded-method"))?.uppercased(),
            original != "GET", original != "HEAD"
        {
            return Answer(
                RedirectMatrix.answer(
                    .signInAfterSeeOther(start: startURL(target), formKept: false), method: request.method,
                    client: request.client))
        }
        return await start(request, now: now)
    }
}
