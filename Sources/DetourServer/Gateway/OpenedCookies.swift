import DetourPolicy
import DetourSessions

/// `Cookie` headers and the session they opened to, if any: a class, so that reading the memo on each request
/// costs one retain rather than one per string of the session.
final class OpenedCookies {
    let cookieHeaders: [String]
    let session: Session?
    let identity: Identity?
    /// ``SessionStore/changes`` when the cookies were opened: at another count, they are opened again.
    let changes: UInt64

    init(cookieHeaders: [String], session: Session?, identity: Identity?, changes: UInt64) {
        self.cookieHeaders = cookieHeaders
        self.session = session
        self.identity = identity
        self.changes = changes
    }
}
