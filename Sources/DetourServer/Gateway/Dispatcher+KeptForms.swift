import DetourGateway
import DetourPolicy
import DetourRedirect
import DetourSessions
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// Row A2b's last step, in the gateway: a POST whose cookie arms the re-submission of a form kept across sign-in,
/// for this very URL, carries the kept body upstream in place of its own (``Endpoints`` keeps and arms it).
extension Dispatcher {
    /// The store key of the kept form whose re-submission the request's cookie arms (row A2b), if it arms one for
    /// this very URL: a POST elsewhere is forwarded as itself, and so is every POST while `return_to.preserve_post`
    /// is off (a reload may have turned it off after a form was armed).
    func armedForm(_ head: HTTPRequestHead, _ upstream: UpstreamRequest) -> String? {
        guard gateway.engine.settings.preservePost else { return nil }
        let name = sessions.policy.formName
        let values = head.headers["cookie"]
        guard values.contains(where: { $0.contains(name) }),
            let cookie = sessions.policy.load(name: name, from: RequestCookies(headers: values)),
            let armed = sessions.codec.open(cookie, purpose: Endpoints.armedPurpose, now: Date()), armed.count == 96,
            let url = publicURL(upstream), armed.suffix(64).elementsEqual(Endpoints.digest(of: url))
        else { return nil }
        return SessionHandles.digest(armed.prefix(32))
    }

    /// Where the client sent the request, as an absolute URL (what row A2b kept a form for).
    func publicURL(_ upstream: UpstreamRequest) -> String? {
        BrowserURL.parse(origin(upstream.publicScheme, upstream.publicHost) + upstream.publicTarget)?.href
    }

    /// Row A2b's last step: the kept form, taken from the store (once, on any replica), goes to the upstream in place
    /// of the request's own body (the confirmation button's), with its content type; the arming cookie is deleted. A
    /// form taken already or expired is a 409 page, and nothing is sent.
    func resubmission(of key: String, _ upstream: UpstreamRequest, _ exchange: Exchange, label: String)
        -> Dispatch
    {
        .later { [self] in
            let now = Date()
            let form: KeptForm?
            do {
                form = try await sessions.store.takeForm(key, now: now).flatMap {
                    sessions.codec.open(
                        $0, purpose: Endpoints.storedPurpose(key), now: now, maximumLength: KeptForm.maximumSealedLength
                    )
                }.flatMap(KeptForm.init(encoded:))
            } catch {
                authentication.logger.error("the session store is unavailable", metadata: ["detail": "\(error)"])
                let refusal = RequestRefusal.sessionStoreUnavailable
                return counted(.respond { refusal.answer(method: $0.method, client: $0.client) }, label: refusal.code)
            }
            var sent = exchange
            sent.cookies += sessions.policy.delete(
                name: sessions.policy.formName, existing: RequestCookies(headers: exchange.head.headers["cookie"]))
            guard let form, form.url == publicURL(upstream) else {
                let cookies = sent.cookies.map { (name: "Set-Cookie", value: $0.headerValue) }
                return counted(
                    .respond { request in
                        var answer = RequestRefusal.formNotKept.answer(method: request.method, client: request.client)
                        answer.headers += cookies
                        return answer
                    }, label: RequestRefusal.formNotKept.code)
            }
            // The kept body's own framing and type; nothing of the button's that would describe another body.
            for name in ["Content-Encoding", "Content-MD5", "Digest", "Content-Digest", "Repr-Digest", "Expect"] {
                sent.head.headers.remove(name: name)
            }
            sent.head.headers.replaceOrAdd(name: "Content-Type", value: form.contentType)
            sent.head.headers.replaceOrAdd(name: "Content-Length", value: String(form.body.count))
            sent.head.headers.remove(name: "Transfer-Encoding")
            authentication.logger.info("kept form sent again", metadata: ["bytes": "\(form.body.count)"])
            return plan(upstream, sent, label: label, memo: nil, body: ByteBuffer(bytes: form.body))
        }
    }
}
