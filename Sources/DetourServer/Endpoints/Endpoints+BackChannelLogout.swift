import DetourConfig
import DetourGateway
import DetourOIDC
import DetourRedirect
import DetourSessions
import Foundation
import Logging
import Metrics

extension Endpoints {
    /// `/oauth2/backchannel_logout`: OpenID Connect Back-Channel Logout 1.0, sections 2.5-2.8.
    ///
    /// The provider POSTs a `logout_token` form field; a token that passes ``LogoutTokenValidator`` and whose `jti`
    /// no replica has seen ends the sessions it names on every replica (200). Anything else is 400 with a JSON
    /// error and ends nothing; the store or the provider's keys being unavailable is 503, so that a provider that
    /// retries may. Served only with `oidc.backchannel_logout`, which needs a server-side store (404 otherwise).
    func backchannelLogout(_ request: EndpointRequest, now: Date) async -> Answer {
        guard configuration.oidc?.backchannelLogout == true, sessions.store.isServerSide else {
            return RequestRefusal.noEndpoint.answer(method: request.method, client: request.client)
        }
        guard request.method == "POST" else { return methodNotAllowed(request, ["POST"]) }
        let fields =
            request.header("content-type")?.lowercased().hasPrefix("application/x-www-form-urlencoded") == true
            ? FormEncoding.decode(String(decoding: request.body, as: UTF8.self)) : []
        let tokens = fields.filter { $0.0 == "logout_token" }
        guard tokens.count == 1, let token = tokens.first?.1 else {
            return logoutRefused(400, "invalid_request", "the body must be a form with one logout_token field")
        }
        let logout: LogoutRequest
        do {
            logout = try await provider.validateLogoutToken(token, now: now)
        } catch {
            // Anyone can post here: refusals are counted, and logged at debug level only.
            Counter(label: "detour_backchannel_logouts_total", dimensions: [("result", error.code.rawValue)])
                .increment()
            logger.debug("back-channel logout refused", metadata: ["reason": "\(error.code.rawValue)"])
            switch error.code {
            case .providerUnavailable, .providerTimedOut, .badProviderResponse:
                return logoutRefused(503, "temporarily_unavailable", "the provider's keys cannot be loaded")
            default:
                return logoutRefused(400, "invalid_request", "the logout token is not valid (\(error.code.rawValue))")
            }
        }
        do {
            let use = SessionHandles.digest(Array("logout-token \(logout.tokenID)".utf8))
            guard
                let ended = try await sessions.store.endSessions(
                    of: logout.subject, providerSession: logout.providerSession, once: use,
                    expiry: logout.replayableUntil, now: now)
            else {
                Counter(label: "detour_backchannel_logouts_total", dimensions: [("result", "replayed")]).increment()
                logger.debug("back-channel logout refused", metadata: ["reason": "replayed"])
                return logoutRefused(400, "invalid_request", "the logout token was already used")
            }
            Counter(label: "detour_backchannel_logouts_total", dimensions: [("result", "success")]).increment()
            // The provider's session id is not logged: other parties act on it (front-channel logout).
            logger.info(
                "back-channel logout",
                metadata: [
                    "sub": "\(logout.subject ?? "-")", "by": "\(logout.providerSession == nil ? "sub" : "sid")",
                    "ended": "\(ended)",
                ])
            return Answer(status: 200, headers: [("Cache-Control", "no-store")], body: "")
        } catch {
            logger.error(
                "back-channel logout failed: the session store is unavailable", metadata: ["detail": "\(error)"])
            return logoutRefused(503, "temporarily_unavailable", "the session store is unavailable")
        }
    }

    /// Section 2.8's error answer: a JSON error object, never cached.
    private func logoutRefused(_ status: Int, _ error: String, _ description: String) -> Answer {
        Answer(
            status: status, headers: [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
            body: "{\"error\":\(JSON.string(error)),\"error_description\":\(JSON.string(description))}")
    }
}
