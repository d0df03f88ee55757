"""Issue 14 (CONTRACT section 7) end to end: each test tries what an attacker would, on the wire, and fails if the
protection it names is lost: path spellings that split the decision from the upstream (proxy and forward-auth
alike), forwarded URLs from peers nobody trusts, hosts no route names, and sessions too large for cookies."""
import socket

import pytest
import requests

from conftest import Detour, sign_in_at_provider, signed_in, start, wait_for

ROUTES = """
routes:
  - name: admin
    match: {{ host: "localhost", path: "/echo/admin/" }}
    upstream: "{upstream}"
    allow: [{{ group: ["admins"] }}]
  - name: app
    match: {{ host: "localhost", path: "/" }}
    upstream: "{upstream}"
    allow: [{{ authenticated: true }}]
    public: ["/echo/static/"]
"""


@pytest.fixture
def guarded(tmp_path, provider, upstream):
    """Detour with an admins-only route beside a catch-all for anyone signed in; it trusts loopback as a proxy."""
    instance = Detour(tmp_path, provider, extra=ROUTES.format(upstream=upstream), trusted_proxies=["127.0.0.1"])
    wait_for(instance.url("/ready"))
    yield instance
    instance.stop()


def cookie_header(session):
    return "; ".join(f"{cookie.name}={cookie.value}" for cookie in session.cookies).encode()


def status_of(detour, head):
    """Sends a raw request head (bytes, exactly as given) on a new connection; returns the answer's status."""
    with socket.create_connection(("127.0.0.1", detour.port), timeout=5) as client:
        client.sendall(head)
        reply = b""
        while b"\r\n" not in reply:
            chunk = client.recv(4096)
            if not chunk:
                break
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 "), (head, reply[:80])
    return int(reply[9:12])


def proxied(detour, target, cookie, host=b"localhost"):
    return status_of(detour, b"GET " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\nAccept: application/json\r\n"
                     b"Cookie: " + cookie + b"\r\nConnection: close\r\n\r\n")


def asked(detour, target, cookie, host=b"localhost", header=b"X-Forwarded-Uri"):
    """Forward-auth as Traefik or Caddy asks it (F3), about the same request."""
    return status_of(detour, b"GET /oauth2/auth HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-Method: GET\r\n"
                     b"X-Forwarded-Proto: http\r\nX-Forwarded-Host: " + host + b"\r\n" + header + b": " + target +
                     b"\r\nAccept: application/json\r\nCookie: " + cookie + b"\r\nConnection: close\r\n\r\n")


# Spellings of /echo/admin/users and what a signed-in non-admin gets: 403 where the spelling is read as the admin
# route, 400 where it is ambiguous. Never 200: that would be the admin page served to someone outside the group.
SPELLINGS = [
    (b"/echo/admin/users", 403),
    (b"/echo/ADMIN/users", 403),
    (b"/echo/Admin/users", 403),
    (b"/ECHO/admin/users", 403),
    (b"/echo/aDmIn/", 403),
    (b"/echo/admin;x/users", 400),
    (b"/echo/admin;/users", 400),
    (b"/echo/admin/;/users", 400),
    (b"/echo/admin/users;jsessionid=1", 400),
    (b"/echo/ADMIN;x/users", 400),
    (b"/echo/static/..;/admin/users", 400),
    (b"/echo/admin#/x", 400),
    (b"/echo/x#/../admin/users", 400),
    (b"/echo/admin/users?x#y", 400),
    (b"/echo/x/../admin/users", 403),
    (b"/echo/static/../admin/users", 403),
    (b"/echo/static/../../echo/admin/users", 403),
    (b"/echo/./admin/users", 403),
    (b"/echo/admin/./users", 403),
    (b"/echo/admin/users/..", 403),
    (b"//echo/admin/users", 403),
    (b"/echo//admin//users", 403),
    (b"///echo///admin/users", 403),
    (b"/echo/%61dmin/users", 403),
    (b"/echo/%41DMIN/users", 403),
    (b"/echo/adm%69n/users", 403),
    (b"/%65cho/admin/users", 403),
    (b"/echo/static/%2e%2e/admin/users", 400),
    (b"/echo/static/%2E%2E/admin/users", 400),
    (b"/echo/static/.%2e/admin/users", 400),
    (b"/echo/static/%2e./admin/users", 400),
    (b"/echo/static/%2e/../admin/users", 400),
    (b"/echo/admin%2fusers", 400),
    (b"/echo/admin%2Fusers", 400),
    (b"/echo/static%2f..%2fadmin/users", 400),
    (b"/echo/static/..%2fadmin/users", 400),
    (b"/echo/static\\..\\admin/users", 400),
    (b"/echo/static/..\\admin/users", 400),
    (b"/echo/static%5c..%5cadmin/users", 400),
    (b"/echo/admin%00/users", 400),
    (b"/echo/admin%0a/users", 400),
    (b"/echo/admin%7f/users", 400),
    (b"/echo/admin/users%", 400),
    (b"/echo/admin/users%zz", 400),
]


def test_every_spelling_of_a_protected_path_gets_its_protection_in_both_modes(guarded):
    """Issue 14.2 and 14.11: a route for /echo/admin/ (admins) beside a catch-all for anyone signed in. Bob, who is
    not an admin, tries each spelling through the proxy and through forward-auth; both modes answer alike."""
    assert len(SPELLINGS) >= 40
    bob = cookie_header(signed_in(guarded, subject="bob"))
    for target, expected in SPELLINGS:
        assert proxied(guarded, target, bob) == expected, target
        assert asked(guarded, target, bob) == expected, target
        absolute = b"http://localhost:" + str(guarded.port).encode() + target
        assert asked(guarded, absolute, bob, header=b"X-Original-URL") == expected, absolute
    for host in (b"localhost.", b"LOCALHOST", b"LocalHost.", b"localhost.:" + str(guarded.port).encode()):
        assert proxied(guarded, b"/echo/admin/users", bob, host=host) == 403, host
        assert asked(guarded, b"/echo/admin/users", bob, host=host) == 403, host
    # The spellings are refused or judged; the catch-all still serves bob, and admins still reach their route.
    assert proxied(guarded, b"/echo/other", bob) == 200
    alice = signed_in(guarded)
    seen = alice.get(guarded.url("/echo/ADMIN/users"), headers={"Accept": "application/json"}).json()
    assert seen["path"] == "/echo/ADMIN/users", "the upstream receives the path the decision was made on"
    seen = alice.get(guarded.url("/echo/x/../%61dmin/users")).json()
    assert seen["path"] == "/echo/admin/users"


def test_public_prefixes_compare_exactly(guarded):
    """A route prefix folds case (more protection); a public prefix does not (never less)."""
    anonymous = b""
    assert proxied(guarded, b"/echo/static/x", anonymous) == 200
    for target in (b"/echo/STATIC/x", b"/echo/Static/x", b"/ECHO/static/x"):
        assert proxied(guarded, target, anonymous) == 401, target
        assert asked(guarded, target, anonymous) == 401, target


def test_forward_auth_for_a_host_no_route_names_is_404(guarded):
    """Issue 14.11: with routes configured, an unmatched request is 404 in both modes, never "signed in is enough"."""
    alice = cookie_header(signed_in(guarded))
    for host in (b"other.example", b"localhost.evil.example", b"localhost..", b"127.0.0.1"):
        assert proxied(guarded, b"/echo/x", alice, host=host) == 404, host
        assert asked(guarded, b"/echo/x", alice, host=host) == 404, host


def test_a_forwarded_url_from_a_peer_nobody_trusts_is_400(tmp_path, provider, upstream):
    """Issue 14.5: from a peer outside trusted_proxies, X-Forwarded-Uri and X-Original-URL were ignored and the
    request judged as if it were for `/`, skipping the admin rule. Now it is a 400 (CONTRACT section 7)."""
    untrusting = Detour(tmp_path, provider, extra=ROUTES.format(upstream=upstream))
    try:
        wait_for(untrusting.url("/ready"))
        bob = cookie_header(signed_in(untrusting, subject="bob"))
        assert asked(untrusting, b"/echo/admin/users", bob) == 400
        assert asked(untrusting, b"http://localhost/echo/admin/users", bob, header=b"X-Original-URL") == 400
        # Without a forwarded URL it stays authentication only (F1), as oauth2-proxy's nginx recipe expects.
        assert status_of(untrusting, b"GET /oauth2/auth HTTP/1.1\r\nHost: localhost\r\nCookie: " + bob +
                         b"\r\nConnection: close\r\n\r\n") == 202
    finally:
        untrusting.stop()


def test_a_session_too_large_for_cookies_is_a_clear_page_and_detour_keeps_serving(tmp_path, provider, guarded):
    """Issue 14.1: a user with a thousand groups crashed the whole process on an invalid range while the session was
    cut into cookies. Now sign-in ends on a page naming the cause, and everyone else is still served."""
    groups = [f"department-{index:04d}-with-a-long-descriptive-name" for index in range(1000)]
    assert requests.put(provider + "/users/hugo", json={"email": "hugo@example.com", "groups": groups}).status_code == 204
    browser = requests.Session()
    authorize = start(browser, guarded, guarded.url("/")).headers["Location"]
    answer = browser.get(sign_in_at_provider(browser, authorize, "hugo"), allow_redirects=False,
                         headers={"Accept": "text/html"})
    assert answer.status_code == 500
    assert "too large" in answer.text and "session.store" in answer.text
    assert "Location" not in answer.headers
    assert guarded.process.poll() is None, "Detour is still running"
    assert requests.get(guarded.url("/ping")).status_code == 200
    assert signed_in(guarded).get(guarded.url("/echo/x")).status_code == 200
