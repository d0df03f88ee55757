"""Forward-auth (/oauth2/auth, rows F1-F3): the same request gets the same answer whether Detour proxies it
or is asked about it; forwarded headers are believed from trusted proxies only."""
import pytest
import requests

from conftest import query, signed_in


def forwarded(detour, method, uri, **headers):
    return {"X-Forwarded-Method": method, "X-Forwarded-Uri": uri, "X-Forwarded-Host": f"localhost:{detour.port}",
            "X-Forwarded-Proto": "http", **headers}


def test_f1_signed_in_gets_202_and_identity_headers(proxy):
    session = signed_in(proxy)
    response = session.get(proxy.url("/oauth2/auth"))
    assert response.status_code == 202
    assert response.headers["X-Auth-Request-User"] == "alice"
    assert response.headers["X-Auth-Request-Email"] == "alice@example.com"
    assert response.headers["X-Auth-Request-Groups"] == "admins,sre"
    assert response.headers["X-Auth-Request-Preferred-Username"] == "alice"


def test_f2_not_signed_in_without_forwarded_request_gets_401(proxy):
    response = requests.get(proxy.url("/oauth2/auth"), headers={"Accept": "text/html"}, allow_redirects=False)
    assert response.status_code == 401
    assert "Location" not in response.headers


def test_f3_gives_the_forwarded_request_the_proxy_modes_answer(proxy, provider):
    cases = [
        ("GET", "/echo/x", {"Sec-Fetch-Mode": "navigate"}, 302),
        ("POST", "/echo/form", {"Accept": "text/html"}, 303),
        ("GET", "/echo/api", {"Accept": "application/json"}, 401),
    ]
    for method, uri, client_headers, status in cases:
        via_auth = requests.get(proxy.url("/oauth2/auth"), headers=forwarded(proxy, method, uri, **client_headers),
                                allow_redirects=False)
        via_proxy = requests.request(method, proxy.url(uri), headers=client_headers, allow_redirects=False)
        assert via_auth.status_code == via_proxy.status_code == status, (method, uri)
    a2 = requests.get(proxy.url("/oauth2/auth"), headers=forwarded(proxy, "POST", "/echo/form", Accept="text/html"),
                      allow_redirects=False)
    assert query(a2.headers["Location"])["rd"] == proxy.url("/echo/form")


def test_f3_forbidden_and_allowed(proxy):
    bob = signed_in(proxy, subject="bob")
    assert bob.get(proxy.url("/oauth2/auth"), headers=forwarded(proxy, "GET", "/echo/x")).status_code == 403
    alice = signed_in(proxy)
    assert alice.get(proxy.url("/oauth2/auth"), headers=forwarded(proxy, "GET", "/echo/x")).status_code == 202
    public = requests.get(proxy.url("/oauth2/auth"), headers=forwarded(proxy, "GET", "/echo/public/x"))
    assert public.status_code == 202


def test_nginx_style_forwarded_uri_answers_only_202_401_or_403(proxy):
    headers = {"X-Forwarded-Uri": "/echo/form", "Accept": "text/html"}
    assert requests.get(proxy.url("/oauth2/auth"), headers=headers, allow_redirects=False).status_code == 401
    bob = signed_in(proxy, subject="bob")
    assert bob.get(proxy.url("/oauth2/auth"), headers=headers).status_code == 403


def test_forwarded_headers_from_an_untrusted_peer_are_never_believed(untrusting_proxy):
    detour = untrusting_proxy
    response = requests.get(detour.url("/oauth2/auth"), headers={"X-Forwarded-Method": "POST", "Accept": "text/html"},
                            allow_redirects=False)
    assert response.status_code == 401, "without trust it is F2, not the forwarded request's 303"
    bob = signed_in(detour, subject="bob")
    assert bob.get(detour.url("/oauth2/auth"), headers=forwarded(detour, "GET", "/echo/x")).status_code == 400, \
        "a forwarded URI from a peer nobody trusts is refused, never judged as if the request were for /"


def test_x_forwarded_for_is_appended_only_for_trusted_peers(proxy, untrusting_proxy):
    for detour, expected in [(proxy, "10.1.2.3, 127.0.0.1"), (untrusting_proxy, "127.0.0.1")]:
        session = signed_in(detour)
        seen = session.get(detour.url("/echo/x"), headers={"X-Forwarded-For": "10.1.2.3"}).json()
        assert seen["headers"]["x-forwarded-for"] == expected


def replayed(proxy_kind, detour, method, uri, browser):
    """The headers Traefik's forwardAuth (v3) or Caddy's forward_auth sends to `/oauth2/auth` for a request of
    `method` to `uri`, with the browser's own headers (which both pass on). Traefik asks with its own Host (the
    auth address); Caddy keeps the request's."""
    app = f"localhost:{detour.port}"
    sent = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Method": method, "X-Forwarded-Proto": "http",
            "X-Forwarded-Host": app, "X-Forwarded-Uri": uri, **browser}
    sent["Host"] = f"127.0.0.1:{detour.port}" if proxy_kind == "traefik" else app
    return sent


@pytest.mark.parametrize("proxy_kind", ["traefik", "caddy"])
def test_traefik_and_caddy_get_the_proxy_modes_answers(proxy, proxy_kind):
    page = {"Accept": "text/html", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "none"}
    form = {"Accept": "text/html", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "same-origin"}
    fetch = {"Accept": "application/json", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Site": "same-origin"}

    def ask(method, uri, browser):
        return requests.get(proxy.url("/oauth2/auth"), headers=replayed(proxy_kind, proxy, method, uri, browser),
                            allow_redirects=False)

    signing_in = ask("GET", "/echo/x?y=1", page)
    assert signing_in.status_code == 302 and "/oauth2/authorize?" in signing_in.headers["Location"]
    posted = ask("POST", "/echo/form", form)
    assert posted.status_code == 303 and query(posted.headers["Location"])["rd"] == proxy.url("/echo/form")
    api = ask("GET", "/echo/api", fetch)
    assert api.status_code == 401 and api.json()["error"] == "unauthenticated"
    assert ask("GET", "/echo/public/x", page).status_code == 202
    # The browser's Cookie header, passed on as both proxies pass it (a cookie jar would go by Traefik's Host).
    alice = signed_in(proxy)
    allowed = ask("GET", "/echo/x", {**page, "Cookie": "; ".join(f"{k}={v}" for k, v in alice.cookies.items())})
    assert allowed.status_code == 202 and allowed.headers["X-Auth-Request-User"] == "alice"
    assert allowed.headers["X-Auth-Request-Groups"] == "admins,sre"
