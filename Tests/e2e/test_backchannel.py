"""Back-channel logout (`oidc.backchannel_logout`, OpenID Connect Back-Channel Logout 1.0): a real provider's signed
logout token, POSTed as the provider POSTs it, ends the sessions it names on one Detour and across two replicas
sharing PostgreSQL; every malformed, forged, replayed or wrong-kind token ends nothing."""
import base64
import json
import time

import pytest
import requests

from conftest import Detour, free_port, routes, signed_in, start_provider_script, wait_for

ENABLED = "  backchannel_logout: true"


@pytest.fixture(scope="module")
def logout_provider():
    """oidc-provider-mock that also signs logout tokens with its own key (Tests/providers/mock_plus.py)."""
    issuer, process = start_provider_script("mock_plus.py")
    yield issuer
    process.terminate()
    process.wait()


class Provider:
    """What the provider does around a logout: names sessions (`sid` in ID tokens) and signs logout tokens."""

    def __init__(self, issuer):
        self.issuer = issuer
        self.tokens = 0

    def next_session_id(self, sid):
        """Alice's next ID token carries `sid` (a new provider session)."""
        claims = {"email": "alice@example.com", "groups": ["admins"], "preferred_username": "alice", "sid": sid}
        assert requests.put(f"{self.issuer}/users/alice", json=claims).status_code == 204

    def logout_token(self, **overrides):
        self.tokens += 1
        claims = {"iss": self.issuer, "aud": "detour-e2e", "iat": int(time.time()), "jti": f"logout-{self.tokens}",
                  "events": {"http://schemas.openid.net/event/backchannel-logout": {}}, **overrides}
        answer = requests.post(f"{self.issuer}/test/logout-token",
                               json={name: value for name, value in claims.items() if value is not None})
        assert answer.status_code == 200 and answer.text.count(".") == 2, answer.text
        return answer.text


def unsigned(claims):
    """The claims of a token with `alg: none` and no signature."""
    head = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "logout+jwt"}).encode()).rstrip(b"=").decode()
    return f"{head}.{claims}."


def post_logout(detour, token):
    """The provider's back-channel POST (section 2.5)."""
    return requests.post(detour.url("/oauth2/backchannel_logout"), data={"logout_token": token})


def signed_in_with(provider, detour, sid):
    provider.next_session_id(sid)
    return signed_in(detour)


def is_signed_in(session, detour):
    return session.get(detour.url("/oauth2/userinfo")).status_code == 200


def test_a_logout_token_ends_the_provider_session_it_names_then_every_session_of_its_subject(
        tmp_path, logout_provider, upstream):
    provider = Provider(logout_provider)
    detour = Detour(tmp_path, logout_provider, oidc=ENABLED, session="  store: memory",
                    extra=routes(upstream, free_port()))
    try:
        wait_for(detour.url("/ready"))
        laptop, phone = signed_in_with(provider, detour, "sid-laptop"), signed_in_with(provider, detour, "sid-phone")
        assert is_signed_in(laptop, detour) and is_signed_in(phone, detour)

        token = provider.logout_token(sid="sid-laptop")
        answer = post_logout(detour, token)
        assert answer.status_code == 200, answer.text
        assert answer.headers["Cache-Control"] == "no-store"
        assert not is_signed_in(laptop, detour), "the laptop's provider session ended"
        assert laptop.get(detour.url("/echo/app"), allow_redirects=False).status_code == 401
        assert is_signed_in(phone, detour), "the phone's provider session did not"

        replayed = post_logout(detour, token)
        assert replayed.status_code == 400 and replayed.json()["error"] == "invalid_request"

        assert post_logout(detour, provider.logout_token(sub="alice")).status_code == 200
        assert not is_signed_in(phone, detour), "a token naming only sub ends every session of the subject"
    finally:
        detour.stop()


def test_forged_replayed_or_wrong_kind_tokens_end_nothing(tmp_path, logout_provider, upstream):
    provider = Provider(logout_provider)
    detour = Detour(tmp_path, logout_provider, oidc=ENABLED, session="  store: memory",
                    extra=routes(upstream, free_port()))
    try:
        wait_for(detour.url("/ready"))
        browser = signed_in_with(provider, detour, "sid-1")
        valid = provider.logout_token(sub="alice")
        head, claims, signature = valid.split(".")
        refused = {
            "another audience": provider.logout_token(sub="alice", aud="another-client"),
            "another issuer": provider.logout_token(sub="alice", iss="https://evil.example"),
            "no events claim": provider.logout_token(sub="alice", events=None),
            "a nonce (an ID token)": provider.logout_token(sub="alice", nonce="n"),
            "neither sub nor sid": provider.logout_token(),
            "no jti": provider.logout_token(sub="alice", jti=None),
            "an hour old": provider.logout_token(sub="alice", iat=int(time.time()) - 3600),
            "typ at+jwt": provider.logout_token(sub="alice", header={"typ": "at+jwt"}),
            "alg none": unsigned(claims),
            "signature of another token": f"{head}.{provider.logout_token(sub='bob').split('.')[1]}.{signature}",
            "not a JWT": "not-a-token",
        }
        for why, token in refused.items():
            answer = post_logout(detour, token)
            assert answer.status_code == 400, why
            assert answer.json()["error"] == "invalid_request", why
        assert requests.post(detour.url("/oauth2/backchannel_logout"), json={"logout_token": valid}).status_code == 400
        assert requests.get(detour.url("/oauth2/backchannel_logout"),
                            params={"logout_token": valid}).status_code == 405
        assert is_signed_in(browser, detour), "nothing above ended the session"
        assert post_logout(detour, valid).status_code == 200
        assert not is_signed_in(browser, detour)
    finally:
        detour.stop()


def test_the_endpoint_is_not_there_unless_configured(make_detour, upstream):
    detour = make_detour(session="  store: memory", extra=routes(upstream, free_port()))
    assert requests.post(detour.url("/oauth2/backchannel_logout"), data={"logout_token": "x"}).status_code == 404


def test_a_logout_posted_to_one_replica_ends_the_session_on_the_other_within_a_second(
        tmp_path, logout_provider, upstream, postgres):
    provider = Provider(logout_provider)
    _, url = postgres.new_database()
    store = f'  store: "{url}"'
    first = Detour(tmp_path, logout_provider, oidc=ENABLED, session=store, extra=routes(upstream, free_port()))
    second = Detour(tmp_path, logout_provider, oidc=ENABLED, session=store, extra=routes(upstream, free_port()),
                    public_url=first.base)
    try:
        for replica in (first, second):
            wait_for(replica.url("/ready"))
        browser = signed_in_with(provider, first, "sid-shared")
        other = signed_in_with(provider, first, "sid-other")
        # A keep-alive connection on the first replica that has read the session already (its memo and cache).
        assert browser.get(first.url("/echo/app")).status_code == 200
        assert is_signed_in(browser, second) and is_signed_in(other, second)

        token = provider.logout_token(sub="alice", sid="sid-shared")
        assert post_logout(second, token).status_code == 200
        posted = time.monotonic()
        while browser.get(first.url("/echo/app"), allow_redirects=False).status_code == 200:
            assert time.monotonic() - posted < 1, "still signed in on the other replica after a second"
            time.sleep(0.005)
        print(f"back-channel logout took effect on the other replica after {(time.monotonic() - posted) * 1000:.0f} ms")
        assert is_signed_in(other, first), "only the named provider session ended"
        assert post_logout(first, token).status_code == 400, "the jti is single-use across replicas"
        database = url.rsplit("/", 1)[1]
        assert postgres.sql("SELECT count(*) FROM detour_sessions", database=database).strip() == "1"
        assert "sid-other" not in postgres.sql("SELECT provider_session FROM detour_sessions", database=database), \
            "the provider's session id is kept as a digest"
        assert post_logout(first, provider.logout_token(sid="sid-other")).status_code == 200, "sid alone"
        assert not is_signed_in(other, second)
        assert postgres.sql("SELECT count(*) FROM detour_sessions", database=database).strip() == "0"
    finally:
        first.stop()
        second.stop()
