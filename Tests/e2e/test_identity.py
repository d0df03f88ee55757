"""Identity from the claims real providers send (`oidc.claims`, CONTRACT section 3): Keycloak's nested realm and
client roles, through a real OpenID provider that puts them in its ID tokens, into headers, policies and userinfo;
and `oidc.auth_params` reaching the provider's authorization endpoint."""
import subprocess
from urllib.parse import parse_qsl, urlparse

import pytest
import requests

from conftest import Detour, sign_in_at_provider, start, start_mock_provider, start_provider_script, wait_for

KEYCLOAK_ALICE = {
    "email": "alice@example.com", "preferred_username": "alice",
    "realm_access": {"roles": ["admins", "offline_access"]},
    "resource_access": {"grafana": {"roles": ["editor"]}, "wiki": {"roles": ["reader"]}},
}


@pytest.fixture(scope="module")
def keycloak_like():
    """oidc-provider-mock whose alice carries Keycloak's claim shapes."""
    issuer, process = start_mock_provider()
    assert requests.put(f"{issuer}/users/alice", json=KEYCLOAK_ALICE).status_code == 204
    yield issuer
    process.terminate()
    process.wait()


def policies(upstream):
    return f"""
routes:
  - name: grafana
    match: {{ host: "localhost", path: "/echo/grafana/" }}
    upstream: "{upstream}"
    allow: [{{ claim: {{ "resource_access.grafana.roles": ["editor"] }} }}]
  - name: wiki-admin
    match: {{ host: "localhost", path: "/echo/wiki/" }}
    upstream: "{upstream}"
    allow: [{{ claim: {{ "resource_access.wiki.roles": ["admin"] }} }}]
  - name: app
    match: {{ host: "localhost" }}
    upstream: "{upstream}"
    allow: [{{ group: ["admins"] }}]
"""


def test_keycloak_roles_and_a_mapped_user_reach_headers_policies_and_userinfo(tmp_path, keycloak_like, upstream):
    oidc = ("  claims:\n    user: email\n    groups: realm_access.roles\n"
            "  auth_params:\n    prompt: login\n    login_hint: alice\n    max_age: 3600\n")
    detour = Detour(tmp_path, keycloak_like, oidc=oidc, extra=policies(upstream))
    try:
        wait_for(detour.url("/ready"))
        browser = requests.Session()
        authorize = start(browser, detour, detour.url("/echo/app")).headers["Location"]
        parameters = parse_qsl(urlparse(authorize).query)
        assert parameters[-3:] == [("prompt", "login"), ("login_hint", "alice"), ("max_age", "3600")], \
            "after Detour's own, in the file's order"
        assert [name for name, _ in parameters].count("state") == 1
        done = browser.get(sign_in_at_provider(browser, authorize), allow_redirects=False)
        assert done.status_code == 303, done.text

        seen = browser.get(detour.url("/echo/app")).json()["headers"]
        assert seen["x-forwarded-user"] == "alice@example.com", "oidc.claims.user: email"
        assert seen["x-forwarded-groups"] == "admins,offline_access", "realm_access.roles"
        assert browser.get(detour.url("/echo/grafana/d")).status_code == 200, "a client role by its dotted path"
        assert browser.get(detour.url("/echo/wiki/edit")).status_code == 403, "reader is not admin"
        info = browser.get(detour.url("/oauth2/userinfo")).json()
        assert info["user"] == "alice@example.com" and info["groups"] == ["admins", "offline_access"]
    finally:
        detour.stop()


@pytest.fixture(scope="module")
def client_keys(tmp_path_factory):
    """Detour's EC key (registered at the provider below) and an RSA key the provider does not know."""
    folder = tmp_path_factory.mktemp("client-keys")
    run = lambda *arguments: subprocess.run(["openssl", *arguments], cwd=folder, check=True,  # noqa: E731
                                            capture_output=True)
    run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "ec.pem")
    run("pkey", "-in", "ec.pem", "-pubout", "-out", "ec.pub.pem")
    run("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "rsa.pem")
    return folder


@pytest.fixture(scope="module")
def asserting_provider(client_keys):
    """A provider whose token endpoint verifies private_key_jwt assertions against Detour's EC public key."""
    issuer, process = start_provider_script("mock_plus.py", str(client_keys / "ec.pub.pem"))
    yield issuer
    process.terminate()
    process.wait()


@pytest.mark.parametrize("key, signs_in", [("ec.pem", True), ("rsa.pem", False)])
def test_private_key_jwt_signs_in_with_the_registered_key_only(tmp_path, asserting_provider, client_keys, upstream,
                                                                key, signs_in):
    oidc = f'  private_key_file: "{client_keys / key}"\n'
    detour = Detour(tmp_path, asserting_provider, token_auth="private_key_jwt", oidc=oidc, extra=policies(upstream))
    try:
        wait_for(detour.url("/ready"))
        browser = requests.Session()
        authorize = start(browser, detour, detour.url("/echo/app")).headers["Location"]
        done = browser.get(sign_in_at_provider(browser, authorize), allow_redirects=False,
                           headers={"Accept": "application/json"})
        if signs_in:
            assert done.status_code == 303, done.text
            assert browser.get(detour.url("/echo/app")).json()["headers"]["x-forwarded-user"] == "alice"
        else:
            assert done.status_code == 502 and done.json()["error"] == "token-request-refused", done.text
    finally:
        detour.stop()
