import DetourConfig
import DetourGateway
import DetourPolicy
import DetourRedirect
import DetourSessions
import Foundation
import Logging
import Metrics

/// Row A2b: a form posted by a signed-out browser is kept, and sent again after sign-in when its user says so.
///
/// Guarantees: a form is kept sealed with `session.secrets` under the digest of a random id that only its browser
/// holds (sealed in the `<cookie_name>_form` cookie, `HttpOnly`, `SameSite=Lax`), for ``KeptForm/lifetime``. It is
/// bound to the sign-in that follows: that sign-in's return target names the form's tag, which its session keeps,
/// and no other session may send it. Nothing is sent again without the click: the confirmation page only shows, is
/// never framed, and its button must come from the form's own origin with a token derived from the id. The click
/// arms the cookie, for ``armedLifetime`` and the form's URL only, and answers 307 to that URL; the gateway then
/// takes the form from the store (once, on any replica) and sends its body, byte for byte with its content type, in
/// place of the button's.
extension Endpoints {
    /// What the form cookie is sealed for: naming a kept form, and naming it (with its URL) once its user clicked.
    static let keptPurpose = "kept-form"
    static let armedPurpose = "kept-form-armed"

    /// What a kept form is sealed for in the store: bound to its key, so that no row can stand in for another.
    static func storedPurpose(_ key: String) -> String { "kept-form-body " + key }
    /// How long an armed re-submission waits for the browser to follow its 307.
    static let armedLifetime = Duration.seconds(60)

    /// Keeps the request's form (the policy engine checked its method, type, declared size and same-origin
    /// sending), then 303 to sign in, coming back to the confirmation page on the form's origin. A form that cannot
    /// be kept (no room, or the store away) is row A2: sign-in comes back to the form's URL, without it.
    func keepForm(_ request: EndpointRequest, returnTo: BrowserURL, now: Date) async -> Answer {
        let id = SecureRandom.bytes(32)
        let key = SessionHandles.digest(id)
        let expiry = now.addingTimeInterval(Double(KeptForm.lifetime.components.seconds))
        let form = KeptForm(url: returnTo.href, contentType: request.header("content-type") ?? "", body: request.body)
        let sealed = sessions.codec.seal(form.encoded(), purpose: Self.storedPurpose(key), expiry: expiry)
        let policy = sessions.policy
        var kept = false
        do {
            kept = try await sessions.store.keepForm(sealed, under: key, expiry: expiry, now: now)
            if !kept { logger.warning("form not kept across sign-in: the store holds as many forms as it may") }
        } catch {
            logger.warning(
                "form not kept across sign-in: the session store is unavailable", metadata: ["detail": "\(error)"])
        }
        guard kept, let confirmation = confirmationURL(for: returnTo, tag: Self.tag(for: id)),
            let cookies = try? policy.store(
                sessions.codec.seal(id, purpose: Self.keptPurpose, expiry: expiry), name: policy.formName,
                maxAge: Int(KeptForm.lifetime.components.seconds), sameSite: .lax, existing: request.cookies)
        else {
            return Answer(
                RedirectMatrix.answer(
                    .signInAfterSeeOther(start: startURL(returnTo), formKept: false), method: request.method,
                    client: request.client))
        }
        Counter(label: "detour_kept_forms_total").increment()
        return Answer(
            RedirectMatrix.answer(
                .signInAfterSeeOther(start: startURL(confirmation), formKept: true), method: request.method,
                client: request.client),
            cookies: cookies)
    }

    /// `/oauth2/resubmit`: GET shows the kept form's confirmation page; POST (its button) arms the re-submission and
    /// answers 307 to the form's URL. Without a kept form, a page that says nothing is waiting.
    func resubmit(_ request: EndpointRequest, now: Date) async -> Answer {
        guard configuration.returnTo.preservePost else {
            return RequestRefusal.noEndpoint.answer(method: request.method, client: request.client)
        }
        let clicked = request.method == "POST"
        guard clicked || request.method == "GET" || request.method == "HEAD" else {
            return methodNotAllowed(request, ["GET", "HEAD", "POST"])
        }
        let policy = sessions.policy
        guard let cookie = policy.load(name: policy.formName, from: request.cookies),
            let id = sessions.codec.open(cookie, purpose: Self.keptPurpose, now: now), id.count == 32
        else { return nothingKept(request) }
        let key = SessionHandles.digest(id)
        let form: KeptForm?
        let session: Session?
        do {
            form = try await sessions.store.keptForm(key, now: now).flatMap {
                sessions.codec.open(
                    $0, purpose: Self.storedPurpose(key), now: now, maximumLength: KeptForm.maximumSealedLength)
            }.flatMap(KeptForm.init(encoded:))
            session = try await sessions.session(in: request.cookies, now: now)
        } catch {
            return storeUnavailable(request, error, retry: nil)
        }
        let tag = Self.tag(for: id)
        guard let form, let target = BrowserURL.parse(form.url),
            let confirmation = confirmationURL(for: target, tag: tag)
        else { return nothingKept(request) }
        guard let session else {
            // Signed out again meanwhile: sign in, and come back here.
            switch beginSignIn(request, requested: confirmation.href, now: now) {
            case .answered(let answer): return answer
            case .later(let answer): return await answer()
            }
        }
        // The form is this sign-in's: one planted in the browser, or kept before another sign-in, is not sent.
        guard session.keptForm == tag else {
            logger.warning("form re-submission refused: the form was kept for another sign-in")
            return failure(
                request, 403, "form-of-another-sign-in",
                "This form was kept for another sign-in, so it is not sent as you.", nil, [])
        }
        let token = Self.token(for: id)
        guard clicked else { return confirmationPage(request, form: form, target: target, token: token, as: session) }
        // The button, and only the button: sent from the form's own origin, with the token only its page shows.
        guard
            RedirectMatrix.isSameOriginSubmission(
                secFetchSite: request.header("sec-fetch-site"), origin: request.header("origin"), target: target),
            request.parameters.filter({ $0.0 == "token" }).map(\.1) == [token]
        else {
            logger.warning("form re-submission refused: not from its confirmation page")
            return failure(
                request, 403, "resubmit-refused", "This form can only be sent again from its confirmation page.",
                confirmation, [])
        }
        let armed = sessions.codec.seal(
            id + Self.digest(of: target.href), purpose: Self.armedPurpose,
            expiry: now.addingTimeInterval(Double(Self.armedLifetime.components.seconds)))
        let cookies =
            (try? policy.store(
                armed, name: policy.formName, maxAge: Int(Self.armedLifetime.components.seconds), sameSite: .lax,
                existing: request.cookies)) ?? []
        // 307: the browser sends its POST on to the form's URL, where the kept body goes in its place.
        let link = HTML.escape(target.href)
        return Answer(
            status: 307,
            headers: [
                ("Location", target.href), ("Cache-Control", "no-store"), ("Content-Type", "text/html; charset=utf-8"),
            ]
                + cookies.map { ("Set-Cookie", $0.headerValue) },
            body: "<!DOCTYPE html>\n<p>Sending the form to <a href=\"\(link)\">\(link)</a>.</p>\n")
    }

    /// `/oauth2/resubmit?form=<tag>` on the origin `target` was posted on.
    func confirmationURL(for target: BrowserURL, tag: String) -> BrowserURL? {
        BrowserURL.parse(
            target.origin + configuration.server.prefix + "/" + Endpoint.resubmit.rawValue + "?form=" + tag)
    }

    /// The kept form's tag in a return target (the confirmation page's URL), which the sign-in it returns from binds
    /// to its session.
    func keptFormTag(in target: BrowserURL) -> String? {
        guard target.path == configuration.server.prefix + "/" + Endpoint.resubmit.rawValue,
            let query = target.query, query.hasPrefix("form=")
        else { return nil }
        return String(query.dropFirst(5))
    }

    /// The form's tag, in the sign-in's return target: derived from the id, which it does not reveal.
    static func tag(for id: [UInt8]) -> String { SessionHandles.digest(Array("form ".utf8) + id) }

    /// What the confirmation page's button must send: derived from the id, which only its browser's cookie holds.
    static func token(for id: [UInt8]) -> String { SessionHandles.digest(Array("resubmit ".utf8) + id) }

    /// A URL's SHA-256 in hex, as bytes: what the armed cookie holds, after the id, of the one URL its form may be
    /// sent to.
    static func digest(of url: String) -> [UInt8] { Array(SessionHandles.digest(Array(url.utf8)).utf8) }

    private func confirmationPage(
        _ request: EndpointRequest, form: KeptForm, target: BrowserURL, token: String, as session: Session
    ) -> Answer {
        let user = session.preferredUsername ?? session.email ?? session.subject
        let (headers, body) = Page.render(
            title: "Send your form again?",
            message: "You were not signed in when you sent a form to \(target.href). Detour kept it while you signed "
                + "in (\(form.body.count) bytes). Send it now, as \(user)? Nothing is sent unless you click below; "
                + "the form can be sent once.",
            button: Page.Button(
                action: configuration.server.prefix + "/" + Endpoint.resubmit.rawValue,
                fields: [("token", token)], text: "Send the form"),
            link: (target, "Do not send it"),
            json: [("error", "form-kept"), ("url", target.href)], client: request.client,
            isHead: request.method == "HEAD")
        // Never framed: a page of another origin must not make the click for the user.
        return Answer(
            status: 200,
            headers: headers.map { ($0.name, $0.value) } + [
                ("Content-Security-Policy", "frame-ancestors 'none'"), ("X-Frame-Options", "DENY"),
            ], body: body ?? "")
    }

    private func nothingKept(_ request: EndpointRequest) -> Answer {
        let (headers, body) = Page.render(
            title: "No form is waiting",
            message: "No form is waiting to be sent again: it was sent already, or it waited longer than 10 minutes.",
            link: (defaultTarget, "Continue"), json: [("error", "no-form-kept")], client: request.client,
            isHead: request.method == "HEAD")
        return Answer(status: 200, headers: headers.map { ($0.name, $0.value) }, body: body ?? "")
    }
}
