/// Row U1: an upstream's redirect passes with its own status; only where it points may change.
public enum UpstreamRedirect {
    /// Rewrites a `Location` the upstream sent so that a target on the upstream's own origin
    /// (absolute, or relative and resolved against the upstream request) points at the same path on
    /// the public origin. Any other value is returned unchanged: Detour never makes an upstream's
    /// redirect to a third party look like its own, and never changes the status code.
    ///
    /// - Parameters:
    ///   - location: the header value as the upstream sent it.
    ///   - upstreamRequest: the URL Detour requested from the upstream.
    ///   - publicRequest: the URL the client requested, whose origin replaces the upstream's.
    public static func rewriteLocation(_ location: String, upstreamRequest: BrowserURL, publicRequest: BrowserURL)
        -> String
    {
        guard let target = try? BrowserURL(parsing: location, against: upstreamRequest),
            target.isSameOrigin(as: upstreamRequest), !target.hasCredentials
        else { return location }
        return publicRequest.origin + target.pathQueryAndFragment
    }
}
