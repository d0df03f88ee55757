import DetourConfig
import DetourPolicy
import DetourRedirect
import DetourSessions
import Foundation
import NIOCore
import NIOHTTP1

/// Decides where each request goes, through the one policy engine, and prepares what the upstream sees.
///
/// Guarantees for proxied requests (CONTRACT section 2, section 7): hop-by-hop headers (RFC 9110 7.6.1,
/// and any named in `Connection`) are removed; client-supplied identity headers are removed in every
/// spelling (any case, `_` for `-`) before Detour adds its own; Detour's cookies never reach the
/// upstream; `X-Forwarded-For` carries the client's address, `X-Forwarded-Proto` and `-Host` the request's.
/// On the way back, a `Location` on the upstream's origin is moved to the public origin (U1) and the
/// status is never changed.
struct Gateway: Sendable {
    let engine: PolicyEngine
    let endpoints: Endpoints
    let sessions: SessionCookies
    let scheme: BrowserURL.Scheme
    let prefix: String

    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
        "proxy-authorization", "proxy-authenticate",
    ]

    /// Identity headers only Detour may set, compared with `_` read as `-`, lower case.
    static func isIdentityHeader(_ name: String) -> Bool {
        let normalized = name.lowercased().replacingOccurrences(of: "_", with: "-")
        return normalized.hasPrefix("x-auth-request-")
            || [
                "x-forwarded-user", "x-forwarded-email", "x-forwarded-groups", "x-forwarded-preferred-username",
                "x-forwarded-access-token", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
            ].contains(normalized)
    }

    func dispatch(_ head: HTTPRequestHead, _ connection: ConnectionInfo) -> Dispatch {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        if path == prefix || path.hasPrefix(prefix + "/") || ["/ping", "/ready", "/metrics"].contains(path) {
            return .respond { await endpoints.handle($0) }
        }
        let now = Date()
        let cookies = RequestCookies(headers: head.headers["cookie"])
        let session = sessions.session(in: cookies, now: now)
        let identity = session.map {
            Identity(
                subject: $0.subject, email: $0.email, emailVerified: $0.emailVerified, groups: $0.groups,
                preferredUsername: $0.preferredUsername, claims: $0.claims)
        }
        let headers = head.headers
        let decision = engine.decide(
            PolicyEngine.Request(
                method: head.method.rawValue, scheme: scheme, host: headers.first(name: "host") ?? "", target: head.uri,
                identity: identity, header: { headers.first(name: $0) }))
        switch decision.outcome {
        case .proxy(let upstream, let added, let passAccessToken):
            guard let target = try? BrowserURL(parsing: upstream) else {
                return .respond { _ in EndpointResponse(status: 502, body: "bad upstream\n") }
            }
            var upstreamHeaders = Self.sanitized(head.headers, ownCookie: sessions.policy.isOwnCookie)
            for field in added { upstreamHeaders.add(name: field.name, value: field.value) }
            if let address = connection.remoteAddress { upstreamHeaders.add(name: "X-Forwarded-For", value: address) }
            if passAccessToken, let token = session?.accessToken {
                upstreamHeaders.replaceOrAdd(name: "Authorization", value: "Bearer \(token)")
                upstreamHeaders.add(name: "X-Forwarded-Access-Token", value: token)
            }
            var upstreamHead = HTTPRequestHead(
                version: .http1_1, method: head.method, uri: String(target.pathQueryAndFragment))
            upstreamHead.headers = upstreamHeaders
            let publicRequest = try? BrowserURL(
                parsing: "\(scheme.rawValue)://\(headers.first(name: "host") ?? "")\(head.uri)")
            return .proxy(
                ProxyPlan(
                    host: target.host.description.trimmingCharacters(in: ["[", "]"]), port: Int(target.effectivePort),
                    head: upstreamHead,
                    rewriteResponse: { Self.rewrite($0, upstreamRequest: target, publicRequest: publicRequest) }))
        case .signIn(.redirectToProvider, let returnTo, _):
            // The URL was built from the Host header: it is checked like any rd, or a forged Host would
            // make the 303 after sign-in an open redirect.
            return .respond { await endpoints.beginSignIn($0, requested: returnTo.href, now: Date()) }
        case .endpoint:
            return .respond { await endpoints.handle($0) }
        default:
            return .respond { request in
                if let answer = decision.answer(method: request.method, client: request.client, authorizationURL: nil) {
                    return EndpointResponse(answer)
                }
                return EndpointResponse(
                    status: decision.status, headers: [("Content-Type", "text/plain"), ("Cache-Control", "no-store")],
                    body: "\(decision.reason)\n")
            }
        }
    }

    /// The client's headers minus hop-by-hop ones, identity headers and Detour's cookies.
    static func sanitized(_ headers: HTTPHeaders, ownCookie: (String) -> Bool) -> HTTPHeaders {
        let named = Set(
            headers["connection"].flatMap { $0.split(separator: ",") }.map {
                $0.trimmingCharacters(in: .whitespaces).lowercased()
            })
        var result = HTTPHeaders()
        for (name, value) in headers {
            let lower = name.lowercased()
            guard !hopByHop.contains(lower), !named.contains(lower), !isIdentityHeader(name) else { continue }
            if lower == "cookie" {
                let kept = value.split(separator: ";").filter { pair in
                    let cookieName =
                        pair.split(separator: "=", maxSplits: 1).first?.trimmingCharacters(in: .whitespaces) ?? ""
                    return !ownCookie(cookieName)
                }
                if !kept.isEmpty {
                    result.add(
                        name: name, value: kept.map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: "; "))
                }
                continue
            }
            result.add(name: name, value: value)
        }
        return result
    }

    /// Row U1: same status; hop-by-hop headers removed; a `Location` on the upstream's origin moved to the public one.
    static func rewrite(_ head: HTTPResponseHead, upstreamRequest: BrowserURL, publicRequest: BrowserURL?)
        -> HTTPResponseHead
    {
        var result = head
        let named = Set(
            head.headers["connection"].flatMap { $0.split(separator: ",") }.map {
                $0.trimmingCharacters(in: .whitespaces).lowercased()
            })
        result.headers = HTTPHeaders(
            head.headers.filter { !hopByHop.contains($0.name.lowercased()) && !named.contains($0.name.lowercased()) })
        if let location = head.headers.first(name: "location"), let publicRequest {
            result.headers.replaceOrAdd(
                name: "Location",
                value: UpstreamRedirect.rewriteLocation(
                    location, upstreamRequest: upstreamRequest, publicRequest: publicRequest))
        }
        return result
    }
}
