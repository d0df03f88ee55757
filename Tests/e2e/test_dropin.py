"""Detour as a drop-in for oauth2-proxy behind nginx: oauth2-proxy's own documented `auth_request` configuration
(Tests/e2e/nginx/oauth2-proxy-example.conf), unchanged but for the addresses, in a real nginx, with a real provider
and a real app; and oauth2-proxy's `allowed_*` query parameters on `/oauth2/auth` (nginx takes no query in `auth_request`'s URI:
an internal location's `proxy_pass` adds it, as ingress-nginx's `auth-url` does)."""
import pathlib
import shutil
import subprocess
import time

import pytest
import requests

from conftest import Detour, free_port, nginx_configuration, routes, sign_in_at_provider, wait_for

EXAMPLE = pathlib.Path(__file__).with_name("nginx") / "oauth2-proxy-example.conf"
BROWSER = {"Accept": "text/html", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "none"}

NARROWED = """
server {{
  listen 127.0.0.1:{port};
  location = /auth/admins {{
    internal;
    proxy_pass http://127.0.0.1:{detour}/oauth2/auth?allowed_groups=admins;
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-Uri $request_uri;
    proxy_set_header Content-Length "";
    proxy_pass_request_body off;
  }}
  location = /auth/auditors {{
    internal;
    proxy_pass http://127.0.0.1:{detour}/oauth2/auth?allowed_groups=auditors,nobody&allowed_email_domains=.example.com;
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-Uri $request_uri;
    proxy_set_header Content-Length "";
    proxy_pass_request_body off;
  }}
  location /admins/ {{
    auth_request /auth/admins;
    proxy_pass {upstream}/echo/;
  }}
  location /auditors/ {{
    auth_request /auth/auditors;
    proxy_pass {upstream}/echo/;
  }}
}}
"""


def documented_server(port, detour, upstream):
    """oauth2-proxy's example with this test's addresses: the only lines that change."""
    text = EXAMPLE.read_text()
    for old, new in (("listen 443 ssl;", f"listen 127.0.0.1:{port};"), ("server_name ...;", "server_name localhost;"),
                     ("include ssl/ssl.conf;", ""), ("http://127.0.0.1:4180", f"http://127.0.0.1:{detour}"),
                     ("http://backend/", upstream + "/")):
        assert old in text, old
        text = text.replace(old, new)
    return text


@pytest.fixture
def nginx_in_front(tmp_path, provider, upstream):
    """nginx on a free port serving oauth2-proxy's example, a second server using `allowed_*`, and Detour behind
    them, its public URL nginx's (nginx passes `/oauth2/` on)."""
    if shutil.which("nginx") is None:
        pytest.fail("nginx is not installed (.ci/run installs Debian's nginx-light)")
    port, narrowed = free_port(), free_port()
    base = f"http://localhost:{port}"
    detour = Detour(tmp_path, provider, extra=routes(upstream, free_port()), trusted_proxies=["127.0.0.1"],
                    public_url=base)
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx_configuration(tmp_path, documented_server(port, detour.port, upstream)
                                        + NARROWED.format(port=narrowed, detour=detour.port, upstream=upstream)))
    process = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(tmp_path)], stderr=subprocess.DEVNULL)
    try:
        wait_for(detour.url("/ready"))
        wait_for(base + "/oauth2/userinfo", status=401)
        yield base, f"http://localhost:{narrowed}", detour
    finally:
        process.terminate()
        process.wait()
        detour.stop()


def test_oauth2_proxys_documented_nginx_configuration_signs_in_and_passes_identity(nginx_in_front):
    base, _, _ = nginx_in_front
    browser = requests.Session()
    first = browser.get(base + "/echo/app?x=1", headers=BROWSER, allow_redirects=False)
    assert first.status_code == 302, first.text
    # nginx's $host has no port: the example assumes the default one, which this test's nginx is not on.
    assert first.headers["Location"] == base + "/oauth2/sign_in?rd=http://localhost/echo/app?x=1"
    sign_in = browser.get(first.headers["Location"], headers=BROWSER, allow_redirects=False)
    assert sign_in.status_code == 302, sign_in.text
    callback = sign_in_at_provider(browser, sign_in.headers["Location"])
    assert callback.startswith(base + "/oauth2/callback?")
    done = browser.get(callback, headers=BROWSER, allow_redirects=False)
    assert done.status_code == 303
    assert done.headers["Location"] == "http://localhost/echo/app?x=1", "back where nginx said, rd validated"
    seen = browser.get(base + "/echo/app?x=1", headers=BROWSER, allow_redirects=False)
    assert seen.status_code == 200, seen.text
    assert seen.json()["headers"]["x-user"] == "alice"
    assert seen.json()["headers"]["x-email"] == "alice@example.com"


def test_fetch_behind_the_documented_configuration_gets_a_401_not_a_redirect(nginx_in_front):
    base, _, _ = nginx_in_front
    first = requests.get(base + "/echo/api", headers={"Accept": "application/json", "Sec-Fetch-Mode": "cors"},
                         allow_redirects=False)
    assert first.status_code == 302, "nginx's own error_page: the example redirects every 401"
    answer = requests.get(first.headers["Location"], headers={"Accept": "application/json",
                                                                      "Sec-Fetch-Mode": "cors"},
                          allow_redirects=False)
    assert answer.status_code == 401 and answer.json()["error"] == "unauthenticated"
    assert "login_url" in answer.json()


def test_allowed_groups_and_email_domains_narrow_forward_auth(nginx_in_front, provider):
    base, narrowed, _ = nginx_in_front
    browser = requests.Session()
    first = browser.get(base + "/echo/x", headers=BROWSER, allow_redirects=False)
    sign_in = browser.get(first.headers["Location"], headers=BROWSER, allow_redirects=False)
    browser.get(sign_in_at_provider(browser, sign_in.headers["Location"]), allow_redirects=False)
    # Cookies ignore ports: the session reaches the second server on the same host.
    assert browser.get(narrowed + "/admins/a").status_code == 200, "alice is in admins"
    assert browser.get(narrowed + "/auditors/a").status_code == 403, "neither auditors nor nobody"
    assert requests.get(narrowed + "/admins/a").status_code == 401, "signed out is 401, not 403"
