"""Sign-in end to end: Detour as a process, a real OpenID provider, real clients (requests, curl)."""
import base64
import hashlib
import signal
import subprocess
from urllib.parse import urlparse

import pytest
import requests

from conftest import query, sign_in_at_provider, start


def set_cookies(response):
    return response.raw.headers.getlist("Set-Cookie")


def test_start_redirects_to_the_provider_with_state_nonce_and_pkce(detour, provider):
    session = requests.Session()
    response = start(session, detour, detour.url("/dashboard"))
    location = response.headers["Location"]
    assert location.startswith(provider + "/oauth2/authorize?")
    params = query(location)
    assert params["response_type"] == "code"
    assert params["client_id"] == "detour-e2e"
    assert params["redirect_uri"] == detour.url("/oauth2/callback")
    assert params["code_challenge_method"] == "S256"
    assert len(params["state"]) >= 43 and len(params["nonce"]) >= 43
    assert len(params["code_challenge"]) == 43
    assert "dashboard" not in location, "the return target must not travel through the provider"
    assert response.headers["Cache-Control"] == "no-store"
    state_cookie, browser_cookie = set_cookies(response)
    assert state_cookie.startswith("_detour_state=")
    assert "HttpOnly" in state_cookie and "SameSite=Lax" in state_cookie
    assert "Secure" not in state_cookie, "an http loopback public URL gets no Secure cookies"
    assert browser_cookie.startswith("_detour_browser=") and "Max-Age" not in browser_cookie, "row S2's browser id"
    again = start(session, detour, detour.url("/dashboard"))
    assert [c.split("=")[0] for c in set_cookies(again)] == ["_detour_state"], "an id is given once"


def test_sign_in_returns_with_303_to_the_original_url(detour):
    session = requests.Session()
    authorize = start(session, detour, detour.url("/dashboard?tab=1")).headers["Location"]
    callback = sign_in_at_provider(session, authorize)
    assert callback.startswith(detour.url("/oauth2/callback?"))
    done = session.get(callback, allow_redirects=False)
    assert done.status_code == 303, done.text
    assert done.headers["Location"] == detour.url("/dashboard?tab=1")
    cookies = set_cookies(done)
    session_cookie = next(c for c in cookies if c.startswith("_detour="))
    assert "HttpOnly" in session_cookie and "SameSite=Lax" in session_cookie and "Max-Age=28800" in session_cookie
    assert any(c.startswith("_detour_state=;") and "Max-Age=0" in c for c in cookies), "the state cookie is cleared"
    me = session.get(detour.url("/oauth2/userinfo"))
    assert me.status_code == 200
    assert me.json() == {"user": "alice", "email": "alice@example.com", "groups": ["admins", "sre"],
                         "preferred_username": "alice"}


def test_an_off_allowlist_rd_lands_on_the_default(detour):
    session = requests.Session()
    authorize = start(session, detour, "//evil.com/steal").headers["Location"]
    done = session.get(sign_in_at_provider(session, authorize), allow_redirects=False)
    assert done.status_code == 303
    assert done.headers["Location"] == detour.url("/")


def test_an_allowlisted_absolute_rd_is_kept(detour):
    session = requests.Session()
    authorize = start(session, detour, "https://app.example.com/orders?id=7").headers["Location"]
    done = session.get(sign_in_at_provider(session, authorize), allow_redirects=False)
    assert done.headers["Location"] == "https://app.example.com/orders?id=7"


def test_sign_out_clears_the_session_and_ends_it_at_the_provider(detour, provider):
    session = requests.Session()
    authorize = start(session, detour, detour.url("/")).headers["Location"]
    session.get(sign_in_at_provider(session, authorize), allow_redirects=False)
    assert session.get(detour.url("/oauth2/userinfo")).status_code == 200
    out = session.get(detour.url("/oauth2/sign_out"), params={"rd": detour.url("/bye")}, allow_redirects=False)
    assert out.status_code == 303
    location = out.headers["Location"]
    assert location.startswith(provider + "/oauth2/end_session?")
    params = query(location)
    assert params["post_logout_redirect_uri"] == detour.url("/bye")
    assert params["client_id"] == "detour-e2e"
    # Issue 14.6: no token in a URL Detour builds (browser history, logs and Referer keep URLs).
    assert "id_token_hint" not in params and "eyJ" not in location and "eyJ" not in out.text
    assert any(c.startswith("_detour=;") and "Max-Age=0" in c for c in set_cookies(out))
    assert session.get(detour.url("/oauth2/userinfo")).status_code == 401


def test_sign_out_with_an_evil_rd_ends_on_the_default(detour):
    out = requests.get(detour.url("/oauth2/sign_out"), params={"rd": "https://evil.com/"}, allow_redirects=False)
    assert query(out.headers["Location"])["post_logout_redirect_uri"] == detour.url("/")


def test_a_replayed_callback_is_refused(detour):
    session = requests.Session()
    authorize = start(session, detour, detour.url("/")).headers["Location"]
    callback = sign_in_at_provider(session, authorize)
    state_cookie = session.cookies.get("_detour_state")
    assert session.get(callback, allow_redirects=False).status_code == 303
    replay = requests.get(callback, cookies={"_detour_state": state_cookie}, allow_redirects=False,
                          headers={"Accept": "text/html"})
    assert replay.status_code == 400
    assert "Location" not in replay.headers, "a failed callback never redirects (C2)"
    assert "Sign in again" in replay.text


def test_a_tampered_state_is_refused(detour):
    session = requests.Session()
    authorize = start(session, detour, detour.url("/")).headers["Location"]
    callback = sign_in_at_provider(session, authorize)
    tampered = callback.replace("state=", "state=x")
    response = session.get(tampered, allow_redirects=False, headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"] == "state-mismatch"


def test_a_callback_without_the_state_cookie_is_refused(detour):
    session = requests.Session()
    authorize = start(session, detour, detour.url("/")).headers["Location"]
    callback = sign_in_at_provider(session, authorize)
    response = requests.get(callback, allow_redirects=False, headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"] == "state-missing"


def test_a_tampered_or_truncated_cookie_is_not_signed_in(detour):
    session = requests.Session()
    authorize = start(session, detour, detour.url("/")).headers["Location"]
    session.get(sign_in_at_provider(session, authorize), allow_redirects=False)
    value = session.cookies.get("_detour")
    for bad in [value[:-1] + ("A" if value[-1] != "A" else "B"), value[: len(value) // 2], "", "%%%", value + "="]:
        response = requests.get(detour.url("/oauth2/userinfo"), cookies={"_detour": bad})
        assert response.status_code == 401, bad
        assert response.json()["error"] == "unauthenticated"
    assert requests.get(detour.url("/ping")).text == "OK", "the process is alive"


def test_form_post_callback_answers_303(make_detour):
    # oidc-provider-mock (authlib) answers form_post only for implicit and hybrid grants; for the code
    # flow it redirects with the code in the query. The browser's part of form_post is to POST that
    # code and state to the callback, which is what this test does.
    detour = make_detour(response_mode="form_post")
    session = requests.Session()
    response = start(session, detour, detour.url("/after-post"))
    assert query(response.headers["Location"])["response_mode"] == "form_post"
    state_cookie = set_cookies(response)[0]
    assert "SameSite=Lax" in state_cookie and "Secure" not in state_cookie, "http loopback: Lax, not None without Secure"
    callback = sign_in_at_provider(session, response.headers["Location"])
    params = query(callback)
    done = session.post(detour.url("/oauth2/callback"), data={"code": params["code"], "state": params["state"]},
                        allow_redirects=False)
    assert done.status_code == 303, "the POSTed code must not be re-sent: 303, never 307"
    assert done.headers["Location"] == detour.url("/after-post")
    assert session.get(detour.url("/oauth2/userinfo")).json()["user"] == "alice"


def test_client_secret_post_signs_in_too(make_detour):
    detour = make_detour(token_auth="client_secret_post")
    session = requests.Session()
    authorize = start(session, detour, detour.url("/post-auth")).headers["Location"]
    done = session.get(sign_in_at_provider(session, authorize), allow_redirects=False)
    assert (done.status_code, done.headers["Location"]) == (303, detour.url("/post-auth"))


def test_a_sign_in_loop_is_stopped_with_a_page(detour):
    session = requests.Session()
    for attempt in range(5):
        start(session, detour, detour.url("/looping"))
    sixth = session.get(detour.url("/oauth2/start"), params={"rd": detour.url("/looping")}, allow_redirects=False,
                        headers={"Accept": "text/html"})
    assert sixth.status_code == 200
    assert "Sign-in loop stopped" in sixth.text
    assert "Location" not in sixth.headers


def test_curl_follows_the_same_flow(detour, tmp_path):
    jar = str(tmp_path / "jar.txt")

    def curl(*args):
        result = subprocess.run(["curl", "-s", "-c", jar, "-b", jar, "-o", "/dev/null", "-w",
                                 "%{http_code} %{redirect_url}", *args], capture_output=True, text=True, check=True)
        status, _, location = result.stdout.partition(" ")
        return int(status), location

    status, authorize = curl(detour.url("/oauth2/start?rd=/curl-home"))
    assert status == 302
    assert curl(authorize)[0] == 200
    status, callback = curl("--data", "sub=alice", authorize)
    assert status == 302 and callback.startswith(detour.url("/oauth2/callback"))
    status, location = curl(callback)
    assert (status, location) == (303, detour.url("/curl-home"))
    me = subprocess.run(["curl", "-s", "-b", jar, detour.url("/oauth2/userinfo")], capture_output=True, text=True)
    assert '"user":"alice"' in me.stdout


def test_the_provider_being_down_is_a_503_never_a_crash(make_detour, tmp_path):
    from conftest import free_port
    detour = make_detour(issuer=f"http://127.0.0.1:{free_port()}")
    ready = requests.get(detour.url("/ready"))
    assert ready.status_code == 503
    assert "provider-unavailable" in ready.text
    attempt = requests.get(detour.url("/oauth2/start"), params={"rd": "/"}, allow_redirects=False,
                           headers={"Accept": "text/html"})
    assert attempt.status_code == 503
    assert "Location" not in attempt.headers
    assert detour.process.poll() is None


def test_sigterm_exits_zero(make_detour):
    detour = make_detour()
    detour.process.send_signal(signal.SIGTERM)
    assert detour.process.wait(timeout=10) == 0


def test_a_bad_config_exits_two_with_file_line_column(tmp_path):
    from conftest import DETOUR
    config = tmp_path / "bad.yaml"
    config.write_text("server:\n  listen: 1\n  public_url: \"https://auth.example.com\"\noidcc: {}\n")
    result = subprocess.run([str(DETOUR), "serve", "--config", str(config)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert f"{config}:2:11: server.listen must be a string" in result.stderr
    assert f"{config}:4:1: unknown key \"oidcc\" (did you mean \"oidc\"?)" in result.stderr


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_token_code_or_cookie_reaches_the_logs(make_detour, log_format):
    detour = make_detour(log_format=log_format)
    session = requests.Session()
    authorize = start(session, detour, detour.url("/")).headers["Location"]
    callback = sign_in_at_provider(session, authorize)
    code, state = query(callback)["code"], query(callback)["state"]
    session.get(callback, allow_redirects=False)
    session.get(detour.url("/oauth2/userinfo"))
    cookie = session.cookies.get("_detour")
    assert cookie
    session.get(detour.url("/oauth2/sign_out"), allow_redirects=False)
    detour.stop()
    log = detour.config.with_name(f"detour-{detour.port}.log").read_text()
    assert "signed in" in log, "the log is the one this test reads"
    for secret in [code, state, cookie, "s3cret"]:
        assert secret not in log


def test_sign_in_started_on_another_host_goes_to_the_public_start_first(detour):
    """The state cookie must come back with the callback on the public origin (localhost here), so a start on
    127.0.0.1 (another host, no cookie_domain joining them) first sends the browser to the public start."""
    other = detour.base.replace("localhost", "127.0.0.1")
    browser = requests.Session()
    hop = browser.get(other + "/oauth2/start", params={"rd": "/app"}, allow_redirects=False)
    assert hop.status_code == 302
    assert hop.headers["Location"] == detour.url("/oauth2/start?rd=http%3A%2F%2Flocalhost%3A" + str(detour.port)
                                                 + "%2Fapp")
    assert "Set-Cookie" not in hop.headers
    authorize = browser.get(hop.headers["Location"], allow_redirects=False)
    assert authorize.status_code == 302 and "state=" in authorize.headers["Location"]
    done = browser.get(sign_in_at_provider(browser, authorize.headers["Location"]), allow_redirects=False)
    assert (done.status_code, done.headers["Location"]) == (303, detour.url("/app"))
    assert browser.get(detour.url("/oauth2/userinfo")).json()["user"] == "alice"


def test_the_hop_to_the_public_start_never_repeats_itself(detour):
    """Behind a proxy that rewrites Host, the public start itself arrives with another Host: no second hop."""
    target = "/oauth2/start?rd=http%3A%2F%2Flocalhost%3A" + str(detour.port) + "%2F"
    answer = requests.get(detour.url(target), headers={"Host": "detour.internal:4180"}, allow_redirects=False)
    assert answer.status_code == 302
    assert "state=" in answer.headers["Location"]  # straight to the provider
