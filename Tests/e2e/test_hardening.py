"""Issue 14 (CONTRACT section 7) end to end: each test tries what an attacker would, on the wire, and fails if the
protection it names is lost: path spellings that split the decision from the upstream (proxy and forward-auth
alike), forwarded URLs from peers nobody trusts, hosts no route names, and sessions too large for cookies."""
import json
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
redirects:
  - name: hop
    match: {{ path: "/v1/" }}
    to: "/echo/v2/"
    status: 307
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


def test_smuggling_shapes_and_client_overrides_never_reach_the_upstream(tmp_path, provider):
    """Issue 14.8: trailers reached the upstream, a second Host was accepted, `Transfer-Encoding: gzip, chunked` was
    taken as chunked, and Forwarded, X-Real-IP, X-Original-URL, X-Rewrite-URL and any X-Forwarded-* passed through
    from anyone. Each is tried here on the wire, against a raw upstream that records what it receives."""
    from test_proxy import in_front_of_a_raw_upstream, recording

    received = []
    with in_front_of_a_raw_upstream(tmp_path, provider, recording(received)) as detour:
        def reply(request):
            received.clear()
            with socket.create_connection(("127.0.0.1", detour.port), timeout=5) as client:
                client.sendall(request)
                return client.recv(65536)

        refused = [
            b"GET /x HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n",
            b"GET /x HTTP/1.1\r\n\r\n",
            b"POST /x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            b"POST /x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
            b"POST /x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n0\r\n\r\n",
            b"POST /x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
            b"POST /x HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"GET /x HTTP/1.1\r\nHost: localhost\r\nX-A: 1\r\n folded\r\n\r\n",
        ]
        for request in refused:
            answer_bytes = reply(request)
            assert answer_bytes[:12] in (b"HTTP/1.1 400", b"HTTP/1.0 400"), (request, answer_bytes[:60])
            assert b"connection: close" in answer_bytes.lower(), request
            assert received == [], request

        body = b"5\r\nhello\r\n0\r\nX-Trailer: evil\r\nX-Forwarded-User: root\r\n\r\n"
        assert reply(b"POST /x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n" + body
                     ).startswith(b"HTTP/1.1 200")
        assert received[0].endswith(b"5\r\nhello\r\n0\r\n\r\n"), received[0]
        assert b"evil" not in received[0] and b"root" not in received[0]

        overrides = (b"Forwarded: for=1.2.3.4;host=evil.example;proto=https\r\nX-Real-IP: 1.2.3.4\r\n"
                     b"X-Original-URL: /admin\r\nX-Rewrite-URL: /admin\r\nX-Forwarded-Port: 1\r\n"
                     b"X-Forwarded-Prefix: /evil\r\nX_Forwarded_Server: evil\r\nX-Forwarded-Proto: https\r\n"
                     b"X-HTTP-Method-Override: DELETE\r\nX-HTTP-Method: DELETE\r\nX-Method-Override: DELETE\r\n")
        assert reply(b"GET /x HTTP/1.1\r\nHost: localhost\r\n" + overrides + b"\r\n").startswith(b"HTTP/1.1 200")
        head = received[0].lower()
        for name in (b"forwarded:", b"x-real-ip", b"x-original-url", b"x-rewrite-url", b"x-forwarded-port",
                     b"x-forwarded-prefix", b"x_forwarded_server", b"evil", b"1.2.3.4", b"method", b"delete"):
            assert name not in head, (name, head)
        assert b"x-forwarded-proto: http\r\n" in head, "Detour's own, from the connection: the peer is not trusted"


def test_nothing_a_client_or_provider_sends_forges_a_log_line(guarded, provider):
    """Issue 14.9: the provider's `error` went into the log unescaped, so a CR/LF in it wrote a line of its own."""
    browser = requests.Session()
    authorize = start(browser, guarded, guarded.url("/")).headers["Location"]
    state = dict(pair.split("=", 1) for pair in authorize.split("?", 1)[1].split("&"))["state"]
    forged = "x\r\nINFO detour : signed in sub=root\n\u2028also"
    answer = browser.get(guarded.url("/oauth2/callback"), params={"state": state, "error": forged},
                         allow_redirects=False)
    assert answer.status_code == 403
    assert "<script" not in answer.text
    guarded.stop()
    log = guarded.config.with_name(guarded.config.stem + ".log").read_text()
    assert "the provider refused sign-in" in log
    assert not any(line.startswith("INFO detour : signed in sub=root") for line in log.splitlines()), log
    assert "x\\r\\nINFO detour : signed in sub=root\\nalso" not in log
    assert "\\r\\nINFO detour : signed in sub=root\\n\\u{2028}also" in log


def test_every_line_of_the_default_json_log_is_one_json_object(tmp_path, provider, upstream):
    """`detour serve`'s default: its own lines and the access log's are JSON objects, one per line, so the same
    forged `error` stays inside its field, byte for byte."""
    instance = Detour(tmp_path, provider, extra=ROUTES.format(upstream=upstream), log_format="json")
    try:
        wait_for(instance.url("/ready"))
        browser = requests.Session()
        authorize = start(browser, instance, instance.url("/")).headers["Location"]
        state = dict(pair.split("=", 1) for pair in authorize.split("?", 1)[1].split("&"))["state"]
        forged = "x\r\n{\"level\":\"info\",\"message\":\"signed in\"}\n\u2028also"
        browser.get(instance.url("/oauth2/callback"), params={"state": state, "error": forged}, allow_redirects=False)
    finally:
        instance.stop()
    lines = instance.log_path.read_text().splitlines()
    objects = [json.loads(line) for line in lines]  # every line, or this raises
    assert [entry["level"] for entry in objects if entry.get("message") == "listening"] == ["info"]
    refused = [entry for entry in objects if entry.get("message", "").startswith("the provider refused sign-in")]
    assert [entry["error"] for entry in refused] == [forged]
    assert not any(entry.get("message") == "signed in" for entry in objects)
    assert any(entry.get("path") == "/oauth2/callback" and entry["status"] == 403 for entry in objects), \
        "the access log's lines are among them"


def test_a_forged_host_never_chooses_where_detours_redirects_point(guarded):
    """Issue 14.8: a redirect rule for any host built its Location on whatever Host the client sent, so one forged
    request (or a cache in front keyed without Host) sent people to another site. Only a Host a route names or the
    allowlist allows is used; any other gets the public URL's origin."""
    def location(host):
        with socket.create_connection(("127.0.0.1", guarded.port), timeout=5) as client:
            client.sendall(b"GET /v1/orders?x=1 HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
            reply = b""
            while chunk := client.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 307"), reply[:60]
        return [line.split(b": ", 1)[1] for line in reply.split(b"\r\n") if line.lower().startswith(b"location:")][0]

    public = guarded.url("/echo/v2/orders?x=1").encode()
    assert location(b"evil.example") == public
    assert location(b"localhost.evil.example:1") == public
    assert location(b"app.example.com") == public, "allow-listed for https only: plain http gets the public origin"
    assert location(b"localhost:" + str(guarded.port).encode()) == public


def rss_mib(pid):
    status = open(f"/proc/{pid}/status").read()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


def malformed_requests(count, seed):
    """`count` hostile request heads: random bytes, giant headers and cookies, bad percent-encoding, invalid UTF-8,
    forged and truncated session cookies, broken framing."""
    import random
    rng = random.Random(seed)
    cookie_names = [b"_detour", b"_detour_0", b"_detour_1", b"_detour_3", b"_detour_7", b"_detour_state", b"x"]
    for index in range(count):
        kind = index % 8
        if kind == 0:
            yield bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 600)))
        elif kind == 1:
            yield b"GET /echo/x HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * rng.randint(30000, 70000) + b"\r\n\r\n"
        elif kind == 2:
            cookies = b"; ".join(rng.choice(cookie_names) + b"=" + bytes(rng.choice(b"AQab09-_%=;\xff")
                                 for _ in range(rng.randint(0, 4000))) for _ in range(rng.randint(1, 8)))
            yield b"GET /echo/x HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\nCookie: " + cookies + b"\r\n\r\n"
        elif kind == 3:
            path = b"/echo/" + bytes(rng.choice(b"%2eE5cfF0;#?/\\.az") for _ in range(rng.randint(1, 200)))
            yield b"GET " + path + b" HTTP/1.1\r\nHost: localhost\r\n\r\n"
        elif kind == 4:
            yield (b"GET /echo/\xc3\x28\xff\xfe HTTP/1.1\r\nHost: local\xffhost\r\nX-U: \xed\xa0\x80\xf4\x90\x80\x80\r\n"
                   b"Authorization: Bearer " + bytes(rng.getrandbits(8) % 94 + 33 for _ in range(300)) + b"\r\n\r\n")
        elif kind == 5:
            yield (b"POST /echo/public/x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
                   + bytes(rng.choice(b"0123456789abcdefxz\r\n;") for _ in range(rng.randint(1, 300))))
        elif kind == 6:
            yield (b"GET /oauth2/callback?state=" + bytes(rng.choice(b"abc%\xff&=") for _ in range(200)) +
                   b"&code=x HTTP/1.1\r\nHost: localhost\r\nCookie: _detour_state=" +
                   bytes(rng.choice(b"AQab09-_") for _ in range(rng.randint(0, 3000))) + b"\r\n\r\n")
        else:
            method = bytes(rng.choice(b"GETPOS\x00 /") for _ in range(rng.randint(1, 12)))
            yield method + b" /" + bytes(rng.getrandbits(8) for _ in range(40)) + b" HTTP/1." + \
                bytes([rng.getrandbits(8)]) + b"\r\n\r\n"


def test_ten_thousand_malformed_requests_leave_detour_serving_with_flat_memory(guarded):
    """Issue 14: random bytes, giant headers and cookies, bad percent-encoding and invalid UTF-8, from four clients
    at once. Detour must answer or close each, stay alive and serving, and end with the memory it started with."""
    import concurrent.futures

    def send(request):
        try:
            with socket.create_connection(("127.0.0.1", guarded.port), timeout=5) as client:
                client.sendall(request)
                client.shutdown(socket.SHUT_WR)
                while client.recv(65536):
                    pass
        except OSError:
            pass  # closed while the rest was still being sent (reset, broken pipe): an answer too

    def run(count, seed):
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(send, malformed_requests(count, seed)))

    run(2000, seed=1)  # warm up: pools, caches and allocator arenas reach their working size
    before = rss_mib(guarded.process.pid)
    run(10000, seed=2)
    after = rss_mib(guarded.process.pid)
    assert guarded.process.poll() is None, "Detour is alive"
    assert requests.get(guarded.url("/ping")).status_code == 200
    assert signed_in(guarded).get(guarded.url("/echo/x")).status_code == 200, "and still serving"
    print(f"malformed-input run: RSS {before:.1f} MiB before, {after:.1f} MiB after 10,000 requests")
    assert after - before < 16, f"memory grew from {before:.1f} to {after:.1f} MiB"


def test_forwarded_headers_that_disagree_are_400_and_endpoint_paths_meet_the_routes(guarded):
    """Review of issue 14: a proxy passes its client's headers along with its own, so two forwarded URLs (or
    methods) that disagree cannot be told apart from a forgery; and a forwarded `/metrics` or `/oauth2/x` is the
    application's path, judged by its routes, never "signed in is enough"."""
    bob = cookie_header(signed_in(guarded, subject="bob"))
    disagreeing = (b"GET /oauth2/auth HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-Uri: /echo/admin/x\r\n"
                   b"X-Original-URL: /echo/public/x\r\nCookie: " + bob + b"\r\nConnection: close\r\n\r\n")
    assert status_of(guarded, disagreeing) == 400
    two_methods = (b"GET /oauth2/auth HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-Uri: /echo/x\r\n"
                   b"X-Forwarded-Method: GET\r\nX-Original-Method: OPTIONS\r\nCookie: " + bob +
                   b"\r\nConnection: close\r\n\r\n")
    assert status_of(guarded, two_methods) == 400
    agreeing = (b"GET /oauth2/auth HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-Uri: /echo/admin/x\r\n"
                b"X-Original-URL: http://localhost/echo/admin/x\r\nCookie: " + bob + b"\r\nConnection: close\r\n\r\n")
    assert status_of(guarded, agreeing) == 403
    # ingress-nginx: an absolute X-Original-URL names the host; a client's X-Forwarded-Host or absolute
    # X-Forwarded-Uri for another host cannot move the decision there.
    for extra in (b"X-Forwarded-Host: other.example\r\n", b"X-Forwarded-Uri: http://other.example/echo/admin/x\r\n"):
        moved = (b"GET /oauth2/auth HTTP/1.1\r\nHost: localhost\r\nX-Original-URL: http://localhost/echo/admin/x\r\n"
                 + extra + b"Cookie: " + bob + b"\r\nConnection: close\r\n\r\n")
        assert status_of(guarded, moved) == 400, extra
    anonymous = b""
    for path in (b"/metrics", b"/ping", b"/oauth2/userinfo"):
        assert asked(guarded, path, anonymous) == 401, path  # the catch-all route wants a signed-in user
        assert asked(guarded, path, bob) == 202, path


def test_a_route_for_admin_slash_also_covers_admin_and_windows_spellings(guarded):
    """Review of issue 14: Express and Spring serve a router mounted at /admin at /admin too, and Windows servers
    drop trailing dots and spaces from segments; each of these is judged by the admin route."""
    bob = cookie_header(signed_in(guarded, subject="bob"))
    for target in (b"/echo/admin", b"/echo/ADMIN", b"/echo/admin?x=1", b"/echo/admin./users", b"/echo/admin%20/users",
                   b"/echo/admin.%20./users", b"/echo/ADMIN../"):
        assert proxied(guarded, target, bob) == 403, target
        assert asked(guarded, target, bob) == 403, target
    assert proxied(guarded, b"/echo/adminx", bob) == 200, "segment boundaries still hold"
