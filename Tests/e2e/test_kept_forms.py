"""Row A2b (`return_to.preserve_post`): a same-origin form POST from a signed-out browser survives sign-in. The form
is kept server-side, the user sees a confirmation page after the callback, and only its button sends the form again,
byte for byte, once. Driven first by `requests` speaking as a browser, then by headless Chromium with a real form and a
file, and across two replicas sharing PostgreSQL."""
import hashlib
import json
import re
import time
from urllib.parse import urlparse

import pytest
import requests

from conftest import Detour, free_port, routes, sign_in_at_provider, wait_for

PRESERVE = "  preserve_post: true\n"
NAVIGATE = {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document", "Accept": "text/html"}


def kept_forms(upstream, **options):
    """Detour options for A2b: `return_to.preserve_post: true` (the config's last `return_to` key) and the routes."""
    return {"extra": PRESERVE + routes(upstream, free_port()), **options}


def sign_in_after(browser, detour, answer):
    """Follows a 303 to sign-in through the provider; returns the callback's answer."""
    assert answer.status_code == 303, answer.text
    start = browser.get(answer.headers["Location"], headers=NAVIGATE, allow_redirects=False)
    assert start.status_code == 302, start.text
    callback = sign_in_at_provider(browser, start.headers["Location"])
    return browser.get(callback, headers=NAVIGATE, allow_redirects=False)


def confirmation(browser, url):
    page = browser.get(url, headers={**NAVIGATE, "Sec-Fetch-Site": "cross-site"}, allow_redirects=False)
    assert page.status_code == 200, page.text
    return page


def token_of(page):
    assert 'name="token"' in page.text, page.text
    return re.search(r'name="token" value="([0-9a-f]{64})"', page.text).group(1)


def click(browser, detour, token, origin=None):
    headers = {**NAVIGATE, "Sec-Fetch-Site": "same-origin", "Origin": origin or detour.base}
    return browser.post(detour.url("/oauth2/resubmit"), data={"token": token}, headers=headers, allow_redirects=False)


def follow_307(browser, detour, answer, token):
    """What a browser does with the 307: the same POST, body and all (the button's), to the Location."""
    assert answer.status_code == 307, answer.text
    headers = {**NAVIGATE, "Sec-Fetch-Site": "same-origin", "Origin": detour.base}
    return browser.post(answer.headers["Location"], data={"token": token}, headers=headers, allow_redirects=False)


def test_a_form_posted_while_signed_out_is_sent_after_sign_in_once_and_only_on_click(make_detour, upstream):
    detour = make_detour(session="  store: memory", **kept_forms(upstream))
    browser = requests.Session()
    form = "title=Quarterly%20report&amount=12%2C50+EUR&note=caf%C3%A9"
    kept = browser.post(
        detour.url("/echo/submit?step=2"), data=form,
        headers={**NAVIGATE, "Sec-Fetch-Site": "same-origin", "Content-Type": "application/x-www-form-urlencoded"},
        allow_redirects=False)
    assert kept.status_code == 303
    assert urlparse(kept.headers["Location"]).path == "/oauth2/start"
    assert "rd=http%3A%2F%2Flocalhost%3A" in kept.headers["Location"] and "%2Foauth2%2Fresubmit" in kept.headers["Location"]
    assert "_detour_form" in browser.cookies

    done = sign_in_after(browser, detour, kept)
    assert done.status_code == 303 and done.headers["Location"].startswith(detour.url("/oauth2/resubmit?form="))
    page = confirmation(browser, done.headers["Location"])
    assert "as alice" in page.text and page.headers["X-Frame-Options"] == "DENY"
    assert "/echo/submit?step=2" in page.text and "Send the form" in page.text
    assert page.headers["Cache-Control"] == "no-store"
    stats_before = requests.get(upstream + "/stats").json()["hits"].get("/echo/submit", 0)
    confirmation(browser, done.headers["Location"])
    assert requests.get(upstream + "/stats").json()["hits"].get("/echo/submit", 0) == stats_before, \
        "showing the page sends nothing"

    token = token_of(page)
    armed = click(browser, detour, token)
    assert armed.headers["Location"] == detour.url("/echo/submit?step=2")
    captured = dict(browser.cookies)
    sent = follow_307(browser, detour, armed, token)
    assert sent.status_code == 200, sent.text
    seen = sent.json()
    assert seen["method"] == "POST" and seen["path"] == "/echo/submit?step=2"
    assert seen["body"] == form, "the kept body, byte for byte, not the button's"
    assert seen["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert seen["headers"]["x-forwarded-user"] == "alice"
    assert "_detour_form" not in seen["headers"].get("cookie", "")
    assert "_detour_form" not in browser.cookies, "the arming cookie is deleted"

    # Nothing is sent twice: the captured arming request again, and the page's button again.
    replay = requests.post(detour.url("/echo/submit?step=2"), data={"token": token}, cookies=captured,
                           headers={**NAVIGATE, "Sec-Fetch-Site": "same-origin"}, allow_redirects=False)
    assert replay.status_code == 409
    again = click(browser, detour, token)
    assert again.status_code == 200 and "No form is waiting" in again.text
    hits = requests.get(upstream + "/stats").json()["hits"]["/echo/submit"]
    assert hits == stats_before + 1


def test_a_cross_site_or_api_post_is_never_kept(make_detour, upstream):
    detour = make_detour(session="  store: memory", **kept_forms(upstream))
    for headers in ({**NAVIGATE, "Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
                    {**NAVIGATE, "Origin": "https://evil.example"}):
        browser = requests.Session()
        answer = browser.post(detour.url("/echo/submit"), data={"a": "1"}, headers=headers, allow_redirects=False)
        assert answer.status_code == 303, "row A2"
        assert "%2Fecho%2Fsubmit" in answer.headers["Location"] and "_detour_form" not in browser.cookies
    api = requests.post(detour.url("/echo/submit"), json={"a": 1}, allow_redirects=False)
    assert api.status_code == 401


def test_the_button_only_works_from_its_own_page(make_detour, upstream):
    detour = make_detour(session="  store: memory", **kept_forms(upstream))
    browser = requests.Session()
    kept = browser.post(detour.url("/echo/submit"), data={"a": "1"},
                        headers={**NAVIGATE, "Sec-Fetch-Site": "same-origin"}, allow_redirects=False)
    done = sign_in_after(browser, detour, kept)
    token = token_of(confirmation(browser, done.headers["Location"]))
    forged = {**NAVIGATE, "Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}
    cross_site = browser.post(detour.url("/oauth2/resubmit"), data={"token": token}, headers=forged,
                              allow_redirects=False)
    assert cross_site.status_code == 403
    wrong = click(browser, detour, "0" * 64)
    assert wrong.status_code == 403
    # An app's own same-origin POST to the form's URL, while the form waits unarmed, is forwarded as itself.
    own = browser.post(detour.url("/echo/submit"), data={"b": "2"},
                       headers={**NAVIGATE, "Sec-Fetch-Site": "same-origin"}, allow_redirects=False)
    assert own.status_code == 200 and own.json()["body"] == "b=2"
    armed = click(browser, detour, token)
    # Armed, the cookie still sends nothing but to the form's own URL: another POST is forwarded as itself.
    other = browser.post(detour.url("/echo/other"), data={"c": "3"},
                         headers={**NAVIGATE, "Sec-Fetch-Site": "same-origin"}, allow_redirects=False)
    assert other.status_code == 200 and other.json()["body"] == "c=3"
    sent = follow_307(browser, detour, armed, token)
    assert sent.json()["body"] == "a=1"


def test_a_form_planted_in_another_browser_is_not_sent_as_its_user(make_detour, upstream):
    """Row A2b's form is bound to the sign-in that follows it: an attacker's form cookie, planted in a signed-in
    victim's browser (from a sibling subdomain, say), is refused."""
    detour = make_detour(session="  store: memory", **kept_forms(upstream))
    attacker = requests.Session()
    kept = attacker.post(detour.url("/echo/submit"), data={"transfer": "all"},
                         headers={**NAVIGATE, "Sec-Fetch-Site": "same-origin"}, allow_redirects=False)
    location = sign_in_after(attacker, detour, kept).headers["Location"]
    victim = requests.Session()
    start = victim.get(detour.url("/oauth2/start"), params={"rd": detour.url("/")}, allow_redirects=False)
    victim.get(sign_in_at_provider(victim, start.headers["Location"]), allow_redirects=False)
    victim.cookies.set("_detour_form", attacker.cookies["_detour_form"])
    refused = victim.get(location, headers={**NAVIGATE, "Sec-Fetch-Site": "none"}, allow_redirects=False)
    assert refused.status_code == 403 and "another sign-in" in refused.text
    assert "Send the form" not in refused.text


def test_a_form_kept_on_one_replica_is_sent_from_the_other(tmp_path, provider, upstream, postgres):
    name, url = postgres.new_database()
    store = f'  store: "{url}"'
    first = Detour(tmp_path, provider, session=store, **kept_forms(upstream))
    second = Detour(tmp_path, provider, session=store, public_url=first.base, **kept_forms(upstream))
    try:
        for replica in (first, second):
            wait_for(replica.url("/ready"))
        browser = requests.Session()
        body = "x=" + "7" * 200_000
        kept = browser.post(first.url("/echo/submit"), data=body,
                            headers={**NAVIGATE, "Sec-Fetch-Site": "same-origin",
                                     "Content-Type": "application/x-www-form-urlencoded"}, allow_redirects=False)
        rows = postgres.sql("SELECT sealed FROM detour_kept_forms", name)
        assert rows.count("\n") == 1 and "7" * 16 not in rows, "kept sealed"
        done = sign_in_after(browser, first, kept)
        page = confirmation(browser, second.url(done.headers["Location"].split(first.base, 1)[1]))
        token = token_of(page)
        armed = browser.post(second.url("/oauth2/resubmit"), data={"token": token},
                             headers={**NAVIGATE, "Sec-Fetch-Site": "same-origin"}, allow_redirects=False)
        assert armed.status_code == 307
        sent = browser.post(first.url("/echo/submit"), data={"token": token},
                            headers={**NAVIGATE, "Sec-Fetch-Site": "same-origin"}, allow_redirects=False)
        assert sent.status_code == 200 and sent.json()["body_sha256"] == hashlib.sha256(body.encode()).hexdigest()
        # The same request through the other replica, as a load balancer sends it (the same Host).
        again = requests.post(second.url("/echo/submit"), data={"token": token}, cookies=browser.cookies,
                              headers={**NAVIGATE, "Sec-Fetch-Site": "same-origin", "Host": urlparse(first.base).netloc,
                                       "Cookie": f"_detour_form={armed.cookies['_detour_form']}; "
                                                 f"_detour={browser.cookies['_detour']}"},
                              allow_redirects=False)
        assert again.status_code == 409, "taken once across replicas"
        assert postgres.sql("SELECT count(*) FROM detour_kept_forms", name).strip() == "0"
    finally:
        first.stop()
        second.stop()


def multipart(boundary, title, name, data):
    """The body Chromium builds for the test's form: its fields in order, CRLF line ends (HTML's form-data set)."""
    return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\n{title}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"attachment\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()


def test_chromium_sends_a_kept_multipart_form_with_a_file_after_sign_in_on_one_click(make_detour, upstream, provider,
                                                                                    tmp_path):
    """A real form with a file, submitted by headless Chromium while signed out; the user signs in at the provider,
    sees the confirmation page, clicks once; the upstream gets the very body Chromium made. Going back and clicking
    again sends nothing."""
    from websockets.sync.client import connect

    from browser import DevTools, chromium_devtools
    detour = make_detour(session="  store: memory", **kept_forms(upstream))
    data = bytes((i * 7 + i // 256) % 256 for i in range(3000))
    hits = lambda: requests.get(upstream + "/stats").json()["hits"].get("/echo/submit", 0)  # noqa: E731
    before = hits()
    (tmp_path / "home").mkdir()
    process, page = chromium_devtools(tmp_path / "profile", tmp_path / "home")
    try:
        with connect(page, max_size=None) as socket_:
            browser = DevTools(socket_)
            browser.open(detour.url("/echo/public/form"))
            browser.wait("document.readyState == 'complete' && location.pathname == '/echo/public/form'")
            browser.evaluate(f"""
                document.body.innerHTML = '<form id="f" method="post" enctype="multipart/form-data"'
                    + ' action="/echo/submit?from=chromium"><input name="title" value="Report Q3">'
                    + '<input type="file" name="attachment"></form>';
                const files = new DataTransfer();
                files.items.add(new File([new Uint8Array({list(data)})], 'data.bin',
                                         {{type: 'application/octet-stream'}}));
                document.querySelector('input[type=file]').files = files.files;
                document.getElementById('f').submit();
                true""")
            browser.sign_in_at_provider(provider)
            browser.wait("location.href.startsWith(%s) && !!document.querySelector('button')"
                         % json.dumps(detour.url("/oauth2/resubmit?form=")))
            assert "/echo/submit?from=chromium" in browser.evaluate("document.body.innerText")
            assert hits() == before, "nothing is sent before the click"

            browser.evaluate("document.querySelector('button').click(); true")
            browser.wait("location.href == %s && document.readyState == 'complete'"
                         % json.dumps(detour.url("/echo/submit?from=chromium")))
            seen = json.loads(browser.evaluate("document.body.innerText"))
            assert seen["method"] == "POST" and seen["headers"]["x-forwarded-user"] == "alice"
            content_type = seen["headers"]["content-type"]
            boundary = content_type.split("boundary=", 1)[1]
            assert content_type.startswith("multipart/form-data; boundary=")
            expected = multipart(boundary, "Report Q3", "data.bin", data)
            assert seen["body_length"] == len(expected)
            assert seen["body_sha256"] == hashlib.sha256(expected).hexdigest(), "Chromium's body, byte for byte"
            assert hits() == before + 1

            # Back to the confirmation page, and its button again: nothing is sent a second time.
            browser.evaluate("history.back(); true")
            browser.wait("location.href.startsWith(%s) && document.readyState == 'complete'"
                         % json.dumps(detour.url("/oauth2/resubmit?form=")))
            browser.evaluate("const b = document.querySelector('button'); if (b) b.click(); true")
            time.sleep(1)
            browser.wait("document.readyState == 'complete'")
            assert "No form is waiting" in browser.evaluate("document.body.innerText")
            assert hits() == before + 1
    finally:
        process.terminate()
        process.wait(timeout=10)
