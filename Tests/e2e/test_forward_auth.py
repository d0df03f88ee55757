"""Forward-auth (/oauth2/auth, rows F1-F3): the same request gets the same answer whether Detour proxies it
or is asked about it; forwarded headers are believed from trusted proxies only."""
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
