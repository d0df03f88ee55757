"""Bearer tokens end to end against django-oauth-toolkit (a real provider with RFC 7662 introspection):
`bearer: jwt` routes check JWT access tokens against the provider's keys, `bearer: introspect` routes ask
the provider, with a cache; every refusal is a 401 `invalid_token` (or a 503), never a redirect."""
import concurrent.futures
import http.client
import re
import time

import pytest
import requests

from conftest import Detour, free_port, wait_for

ROUTES = """
routes:
  - name: jwt-api
    match: {{ host: "localhost", path: "/echo/jwt/" }}
    upstream: "{upstream}"
    bearer: "jwt"
    allow: [{{ email: ["alice@example.com"] }}]
  - name: opaque-api
    match: {{ host: "localhost", path: "/echo/opaque/" }}
    upstream: "{upstream}"
    bearer: "introspect"
    allow: [{{ authenticated: true }}]
    pass_access_token: true
"""


def make(tmp_path, issuer, upstream, audiences=("orders-api",), introspection_url=None, ttl="2s", trusted=()):
    oidc = f"""  bearer_audiences: {list(audiences)!r}
  introspection_url: "{introspection_url or issuer + '/introspect/'}"
  introspection_cache_ttl: "{ttl}"
"""
    instance = Detour(tmp_path, issuer, extra=ROUTES.format(upstream=upstream), oidc=oidc,
                      client=("detour", "detour-secret"), trusted_proxies=trusted)
    wait_for(instance.url("/ready"))
    return instance


@pytest.fixture
def api(tmp_path, oauth_provider, upstream):
    instance = make(tmp_path, oauth_provider, upstream)
    yield instance
    instance.stop()


def token(issuer, client_id):
    answer = requests.post(issuer + "/token/", data={"grant_type": "password", "username": "alice",
                                                     "password": "alice-password", "client_id": client_id,
                                                     "scope": "read"})
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


def bearer(value):
    return {"Authorization": f"Bearer {value}", "Accept": "application/json"}


def assert_invalid_token(response, reason=None):
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert "Location" not in response.headers
    assert response.json()["error"] == "invalid_token"
    if reason:
        assert response.json()["reason"] == reason


def introspection_calls(detour):
    metrics = requests.get(detour.url("/metrics")).text
    found = re.search(r'detour_provider_call_duration_seconds_count\{endpoint="introspection"\} (\d+)', metrics)
    return int(found.group(1)) if found else 0


def test_a_jwt_access_token_reaches_the_api_with_identity_headers(api, oauth_provider):
    response = requests.get(api.url("/echo/jwt/orders"), headers=bearer(token(oauth_provider, "jwt-cli")))
    assert response.status_code == 200, response.text
    seen = response.json()["headers"]
    assert (seen["x-forwarded-user"], seen["x-forwarded-email"]) == ("alice", "alice@example.com")


def test_a_jwt_with_a_changed_signature_or_payload_is_refused(api, oauth_provider):
    header, payload, signature = token(oauth_provider, "jwt-cli").split(".")
    flipped = signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB")
    assert_invalid_token(requests.get(api.url("/echo/jwt/x"), headers=bearer(f"{header}.{payload}.{flipped}")),
                         "bad-signature")
    other_payload = token(oauth_provider, "jwt-cli").split(".")[1]
    assert_invalid_token(requests.get(api.url("/echo/jwt/x"), headers=bearer(f"{header}.{other_payload}.{signature}")),
                         "bad-signature")
    assert_invalid_token(requests.get(api.url("/echo/jwt/x"), headers=bearer("not-a-jwt")), "malformed-token")


def test_a_jwt_for_another_audience_is_refused(tmp_path, oauth_provider, upstream):
    strict = make(tmp_path, oauth_provider, upstream, audiences=("billing-api",))
    try:
        response = requests.get(strict.url("/echo/jwt/x"), headers=bearer(token(oauth_provider, "jwt-cli")))
        assert_invalid_token(response, "wrong-audience")
    finally:
        strict.stop()


def test_without_a_token_an_api_route_answers_the_matrix_401_not_a_redirect(api):
    response = requests.get(api.url("/echo/jwt/x"), headers={"Accept": "application/json"}, allow_redirects=False)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"


def test_an_opaque_token_is_introspected_and_passed_on(api, oauth_provider):
    access = token(oauth_provider, "cli")
    response = requests.get(api.url("/echo/opaque/orders"), headers=bearer(access))
    assert response.status_code == 200, response.text
    seen = response.json()["headers"]
    assert seen["x-forwarded-user"] == "alice"
    assert seen["x-forwarded-access-token"] == access
    # pass_access_token replaces the client's Authorization header: one, never two.
    assert [name.lower() for name in response.json()["header_names"]].count("authorization") == 1
    assert seen["authorization"] == f"Bearer {access}"


def test_concurrent_requests_with_one_token_make_one_introspection_call(api, oauth_provider):
    access = token(oauth_provider, "cli")
    before = introspection_calls(api)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: requests.get(api.url("/echo/opaque/x"), headers=bearer(access)).status_code,
                                 range(16)))
    assert statuses == [200] * 16
    assert introspection_calls(api) - before == 1


def test_a_revoked_token_is_refused_once_the_cache_ttl_has_passed(api, oauth_provider):
    access = token(oauth_provider, "cli")
    assert requests.get(api.url("/echo/opaque/x"), headers=bearer(access)).status_code == 200
    revoked = requests.post(oauth_provider + "/revoke_token/", data={"token": access, "client_id": "cli"})
    assert revoked.status_code == 200
    # Within the TTL the cached answer stands (that is what the TTL trades); after it, the provider says no.
    assert requests.get(api.url("/echo/opaque/x"), headers=bearer(access)).status_code == 200
    time.sleep(2.5)
    assert_invalid_token(requests.get(api.url("/echo/opaque/x"), headers=bearer(access)), "inactive")


def test_an_unknown_opaque_token_is_refused(api):
    assert_invalid_token(requests.get(api.url("/echo/opaque/x"), headers=bearer("f" * 48)), "inactive")


def test_an_unreachable_introspection_endpoint_is_a_503_not_a_500(tmp_path, oauth_provider, upstream):
    cut_off = make(tmp_path, oauth_provider, upstream, introspection_url=f"http://127.0.0.1:{free_port()}/introspect/")
    try:
        response = requests.get(cut_off.url("/echo/opaque/x"), headers=bearer(token(oauth_provider, "cli")))
        assert response.status_code == 503
        assert response.json()["error"] == "temporarily_unavailable"
        assert cut_off.process.poll() is None
    finally:
        cut_off.stop()


def test_tokens_never_reach_the_log(api, oauth_provider):
    tokens = [token(oauth_provider, "cli"), token(oauth_provider, "jwt-cli")]
    requests.get(api.url("/echo/opaque/x"), headers=bearer(tokens[0]))
    requests.get(api.url("/echo/jwt/x"), headers=bearer(tokens[1]))
    requests.get(api.url("/echo/jwt/x"), headers=bearer(tokens[1][:-3] + "abc"))
    api.stop()
    log = api.config.with_name(api.config.stem + ".log").read_text()
    assert "bearer token refused" in log
    for value in tokens:
        assert value not in log and value[:20] not in log


def test_forward_auth_judges_a_bearer_route_by_its_token(tmp_path, oauth_provider, upstream):
    """nginx auth_request passes the client's Authorization header and the original URI along."""
    behind_nginx = make(tmp_path, oauth_provider, upstream, trusted=("127.0.0.1",))
    try:
        def ask(value, uri="/echo/jwt/orders"):
            return requests.get(behind_nginx.url("/oauth2/auth"), headers={
                "Authorization": f"Bearer {value}", "X-Original-URL": f"http://localhost{uri}"})
        accepted = ask(token(oauth_provider, "jwt-cli"))
        assert accepted.status_code == 202
        assert (accepted.headers["X-Auth-Request-User"], accepted.headers["X-Auth-Request-Email"]) == (
            "alice", "alice@example.com")
        opaque = ask(token(oauth_provider, "cli"), "/echo/opaque/orders")
        assert (opaque.status_code, opaque.headers["X-Auth-Request-User"]) == (202, "alice")
        assert opaque.headers["X-Auth-Request-Access-Token"]  # the route passes the token on
        assert_invalid_token(ask("f" * 48, "/echo/opaque/orders"), "inactive")
        assert_invalid_token(ask("not-a-jwt"), "malformed-token")
    finally:
        behind_nginx.stop()


def test_a_preflight_with_a_forged_token_is_refused_and_one_without_passes(api):
    # A preflight the route passes upstream carries its Authorization header there: the token is checked first.
    preflight = {"Origin": "https://web.example", "Access-Control-Request-Method": "GET"}
    forged = requests.options(api.url("/echo/jwt/orders"), headers={**preflight, "Authorization": "Bearer not-a-jwt"})
    assert forged.status_code == 401, forged.text
    assert forged.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    plain = requests.options(api.url("/echo/jwt/orders"), headers=preflight)
    assert plain.status_code == 200, plain.text
    assert plain.json()["method"] == "OPTIONS"


def test_hostile_authorization_headers_are_refused_without_harm(api, oauth_provider):
    good = token(oauth_provider, "jwt-cli")
    # A token of 20,000 bytes, still within the header limit: refused as malformed, and the process goes on.
    assert_invalid_token(requests.get(api.url("/echo/jwt/x"), headers=bearer("x" * 20_000)), "malformed-token")
    # Two Authorization headers: the upstream might read the one Detour did not check.
    doubled = http.client.HTTPConnection("127.0.0.1", api.port)
    doubled.putrequest("GET", "/echo/jwt/x", skip_host=True)
    doubled.putheader("Host", "localhost")
    doubled.putheader("Accept", "application/json")
    doubled.putheader("Authorization", f"Bearer {good}")
    doubled.putheader("Authorization", "Bearer forged")
    doubled.endheaders()
    answer = doubled.getresponse()
    answer.read()
    doubled.close()
    assert answer.status == 400, "refused before any decision (an echo upstream read the last one: the forged)"
    assert requests.get(api.url("/echo/jwt/x"), headers=bearer(good)).status_code == 200
