"""nginx `auth_request` in front of an app, asking Detour (the configuration docs/forward-auth.md shows)."""
import shutil
import subprocess
import time

import pytest
import requests

from conftest import free_port, nginx_configuration, signed_in, wait_for

NGINX_SERVER = """
  server {{
    listen 127.0.0.1:{port};

    location = /oauth2/auth {{
      proxy_pass http://127.0.0.1:{detour};
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-Uri $request_uri;
      proxy_set_header X-Forwarded-Host $http_host;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Method "";
      proxy_set_header X-Original-URL "";
      proxy_set_header X-Original-Method "";
    }}

    location @sign_in {{
      return 302 http://localhost:{detour}/oauth2/start?rd=$scheme://$http_host$request_uri;
    }}

    location / {{
      auth_request /oauth2/auth;
      error_page 401 = @sign_in;
      auth_request_set $user $upstream_http_x_auth_request_user;
      auth_request_set $email $upstream_http_x_auth_request_email;
      auth_request_set $groups $upstream_http_x_auth_request_groups;
      auth_request_set $auth_cookie $upstream_http_set_cookie;
      add_header Set-Cookie $auth_cookie;
      proxy_set_header X-Forwarded-User $user;
      proxy_set_header X-Forwarded-Email $email;
      proxy_set_header X-Forwarded-Groups $groups;
      proxy_pass {upstream};
    }}
  }}
"""


@pytest.fixture
def nginx(proxy, upstream, tmp_path):
    if shutil.which("nginx") is None:
        pytest.fail("nginx is not installed (.ci/run installs Debian's nginx-light)")
    port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx_configuration(tmp_path, NGINX_SERVER.format(port=port, detour=proxy.port, upstream=upstream)))
    process = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(tmp_path)], stderr=subprocess.DEVNULL)
    base = f"http://localhost:{port}"
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            requests.get(base + "/", timeout=1, allow_redirects=False)
            break
        except requests.ConnectionError:
            time.sleep(0.1)
    yield base
    process.terminate()
    process.wait()


def test_nginx_sends_the_anonymous_to_sign_in(nginx, proxy):
    response = requests.get(nginx + "/echo/x", allow_redirects=False)
    assert response.status_code == 302
    assert response.headers["Location"] == proxy.url(f"/oauth2/start?rd={nginx}/echo/x")


def test_nginx_lets_a_signed_in_admin_through_with_identity(nginx, proxy):
    session = signed_in(proxy)  # the session cookie is host-only for localhost, so nginx's requests carry it
    seen = session.get(nginx + "/echo/x").json()
    assert seen["headers"]["x-forwarded-user"] == "alice"
    assert seen["headers"]["x-forwarded-groups"] == "admins,sre"


def test_nginx_forbids_what_the_policy_forbids(nginx, proxy):
    session = signed_in(proxy, subject="bob")
    assert session.get(nginx + "/echo/x", allow_redirects=False).status_code == 403


def test_the_whole_flow_through_nginx_returns_to_the_page(nginx, proxy):
    from conftest import sign_in_at_provider
    session = requests.Session()
    first = session.get(nginx + "/echo/page", allow_redirects=False)
    start = session.get(first.headers["Location"], allow_redirects=False)
    assert start.status_code == 302
    done = session.get(sign_in_at_provider(session, start.headers["Location"]), allow_redirects=False)
    assert (done.status_code, done.headers["Location"]) == (303, f"{nginx}/echo/page")
    assert session.get(nginx + "/echo/page").json()["headers"]["x-forwarded-user"] == "alice"


def test_a_client_cannot_choose_what_nginx_asks_detour_about(nginx, proxy):
    """nginx passes its client's headers on to the auth subrequest: Detour believes forwarded headers from nginx, so
    the recipe sets or clears every one it reads. An anonymous client posing as a CORS preflight of a public path
    (which would be a 202 with no identity) still goes to sign in, and bob still gets his 403."""
    forged = {"X-Forwarded-Method": "OPTIONS", "Origin": "https://x.example", "Access-Control-Request-Method": "GET",
              "X-Original-URL": "/echo/public/x", "X-Original-Method": "OPTIONS", "X-Forwarded-Host": "other.example"}
    response = requests.get(nginx + "/echo/x", headers=forged, allow_redirects=False)
    assert response.status_code == 302 and "/oauth2/start" in response.headers["Location"]
    bob = signed_in(proxy, subject="bob")
    assert bob.get(nginx + "/echo/x", headers=forged, allow_redirects=False).status_code == 403
