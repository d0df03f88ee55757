"""Session refresh end to end: a provider whose access tokens live 3 s, `session.refresh_before`, and a route
that forwards the access token, so the upstream shows which token it got."""
import re
import time

import pytest
import requests

from conftest import Detour, signed_in, start_mock_provider, wait_for

ROUTES = """
routes:
  - name: app
    match: {{ host: "localhost" }}
    upstream: "{upstream}"
    allow: [{{ authenticated: true }}]
    pass_access_token: true
"""


@pytest.fixture
def short_lived(tmp_path, upstream):
    issuer, provider = start_mock_provider("--token-max-age", "3")
    detour = Detour(tmp_path, issuer, extra=ROUTES.format(upstream=upstream), session='  refresh_before: "1s"')
    wait_for(detour.url("/ready"))
    yield detour, provider
    detour.stop()
    if provider.poll() is None:
        provider.terminate()
        provider.wait()


def forwarded_token(session, detour):
    response = session.get(detour.url("/echo/x"), headers={"Accept": "application/json"}, allow_redirects=False)
    assert response.status_code == 200, response.text
    return response.json()["headers"]["x-forwarded-access-token"], response


def refreshes(detour, result="success"):
    metrics = requests.get(detour.url("/metrics")).text
    found = re.search(rf'detour_session_refreshes_total\{{result="{result}"\}} (\d+)', metrics)
    return int(found.group(1)) if found else 0


def test_an_expired_access_token_is_refreshed_once_and_the_new_session_stored(short_lived):
    detour, _ = short_lived
    browser = signed_in(detour)
    first, _ = forwarded_token(browser, detour)
    time.sleep(3.2)
    second, response = forwarded_token(browser, detour)
    assert second != first
    assert any(c.startswith("_detour=") for c in response.headers.get("Set-Cookie", "").split(", "))
    # The browser now holds the refreshed session: the next request uses it and refreshes nothing.
    third, again = forwarded_token(browser, detour)
    assert third == second
    assert "Set-Cookie" not in again.headers
    assert refreshes(detour) == 1


def test_a_failed_refresh_is_a_sign_in_per_the_matrix_never_an_error(short_lived):
    detour, provider = short_lived
    browser = signed_in(detour)
    forwarded_token(browser, detour)
    provider.terminate()
    provider.wait()
    time.sleep(3.2)
    stale = browser.cookies.get_dict()
    api = browser.get(detour.url("/echo/x"), headers={"Accept": "application/json"}, allow_redirects=False)
    assert api.status_code == 401  # A3
    assert api.json()["error"] == "unauthenticated"
    assert "_detour=;" in api.headers["Set-Cookie"] or "Max-Age=0" in api.headers["Set-Cookie"]
    # A navigation with the same stale session: A1, a 302 to the provider's authorization endpoint. The failure
    # was remembered, so the provider is not asked twice.
    page = requests.get(detour.url("/echo/x"), headers={"Accept": "text/html"}, allow_redirects=False, cookies=stale)
    assert page.status_code == 302
    assert "/authorize?" in page.headers["Location"] and "state=" in page.headers["Location"]
    assert refreshes(detour, "provider-unavailable") == 1


def test_forward_auth_refreshes_too_and_hands_back_the_new_cookie(short_lived):
    detour, _ = short_lived
    browser = signed_in(detour)
    time.sleep(3.2)
    answer = browser.get(detour.url("/oauth2/auth"))
    assert answer.status_code == 202
    assert answer.headers["X-Auth-Request-User"] == "alice"
    assert "_detour=" in answer.headers["Set-Cookie"]
    assert refreshes(detour) == 1
