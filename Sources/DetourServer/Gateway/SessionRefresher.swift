import DetourOIDC
import DetourSessions
import Foundation
import Logging
import Metrics

/// Refreshes sessions whose access token is about to expire (`session.refresh_before`), through the
/// provider's refresh-token grant.
///
/// Guarantees: one grant per session at a time, shared by its concurrent requests; each answer is kept
/// for ``memory`` under the old refresh token, so requests still carrying the old cookie get the new
/// session rather than spend a refresh token the provider has rotated away; a failure yields `nil` (the
/// request is then treated as signed out, per the matrix) and is kept likewise; refresh tokens are kept
/// only as digests (``SecretKeyedCache``) and never logged.
struct SessionRefresher: Sendable {
    typealias Grant =
        @Sendable (_ refreshToken: String, _ subject: String, _ now: Date) async throws(OIDCError) ->
        Refreshed

    let refreshBefore: Duration
    let memory = Duration.seconds(60)
    private let grant: Grant
    private let logger: Logger
    private let answers = SecretKeyedCache<Session?>()

    init(refreshBefore: Duration, logger: Logger, grant: @escaping Grant) {
        self.refreshBefore = refreshBefore
        self.logger = logger
        self.grant = grant
    }

    /// Whether the session's access token expires within ``refreshBefore`` and can be refreshed.
    func needsRefresh(_ session: Session, now: Date) -> Bool {
        guard session.refreshToken != nil, let expiry = session.accessTokenExpiry else { return false }
        return expiry.timeIntervalSince(now) < Double(refreshBefore.components.seconds)
    }

    /// The session with fresh tokens, or `nil` when the provider refused or could not be asked.
    func refreshed(_ session: Session, now: Date) async -> Session? {
        guard let refreshToken = session.refreshToken else { return nil }
        let (grant, logger) = (self.grant, self.logger)
        let until = now.addingTimeInterval(Double(memory.components.seconds))
        return await answers.value(for: refreshToken, now: now) {
            do throws(OIDCError) {
                let tokens = try await grant(refreshToken, session.subject, now)
                var renewed = session
                renewed.accessToken = tokens.accessToken
                renewed.accessTokenExpiry = tokens.accessTokenExpiry
                renewed.refreshToken = tokens.refreshToken ?? refreshToken
                Counter(label: "detour_session_refreshes_total", dimensions: [("result", "success")]).increment()
                return (renewed, until)
            } catch {
                Counter(label: "detour_session_refreshes_total", dimensions: [("result", error.code.rawValue)])
                    .increment()
                logger.info(
                    "session refresh failed; signed out",
                    metadata: ["reason": "\(error.code.rawValue)", "sub": "\(session.subject)"])
                return (nil, until)
            }
        }
    }
}
