"""`detour dev`: one command, zero configuration, a working local SSO (the README's main command)."""
import pathlib
import re
import signal
import socket
import subprocess
import time

import requests

from conftest import DETOUR, free_port


def sign_in(base, user, verify=True):
    session = requests.Session()
    session.verify = verify
    session.trust_env = verify is True  # else REQUESTS_CA_BUNDLE, when set, would override the session's verify
    first = session.get(base + "/", headers={"Accept": "text/html"}, allow_redirects=False)
    assert first.status_code == 302
    form = session.get(first.headers["Location"])
    assert "For local development only" in form.text
    action = re.search(r'action="([^"]+)"', form.text).group(1).replace("&amp;", "&")
    provider = re.match(r"(http://[^/]+)", first.headers["Location"]).group(1)
    back = session.post(provider + action, data={"user": user}, allow_redirects=False)
    done = session.get(back.headers["Location"], allow_redirects=False)
    assert (done.status_code, done.headers["Location"]) == (303, base + "/")
    return session


def three_free_ports():
    """A port that is free with the next two: `detour dev` listens on all three."""
    while True:
        port = free_port()
        try:
            with socket.socket() as second, socket.socket() as third:
                second.bind(("127.0.0.1", port + 1))
                third.bind(("127.0.0.1", port + 2))
            return port
        except OSError:
            continue


def start_dev(tmp_path, *options):
    """`detour dev` on free ports, once ready: (process, base URL, banner)."""
    port = three_free_ports()
    log = tmp_path / "dev.log"
    with open(log, "w") as stderr:
        process = subprocess.Popen([str(DETOUR), "dev", "--port", str(port), *options], stdout=subprocess.PIPE,
                                   stderr=stderr, text=True)
    base = f"{'https' if options else 'http'}://localhost:{port}"
    banner = ""
    deadline = time.time() + 20
    while "Stop with Ctrl-C." not in banner and time.time() < deadline:
        banner += process.stdout.readline()
    assert f"open      {base}/" in banner, (banner, log.read_text())
    authority = re.search(r"curl --cacert (\S+) ", banner)
    verify = authority.group(1) if authority else True
    while time.time() < deadline:
        try:
            if requests.get(base + "/ready", verify=verify).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    return process, base, banner


def test_detour_dev_is_a_working_local_sso(tmp_path):
    process, base, _ = start_dev(tmp_path)
    try:
        alice = sign_in(base, "alice")
        page = alice.get(base + "/")
        assert "Hello, alice" in page.text and "admins" in page.text
        assert alice.get(base + "/admin").status_code == 200
        bob = sign_in(base, "bob")
        assert bob.get(base + "/admin", headers={"Accept": "text/html"}).status_code == 403
        assert requests.get(base + "/public/").status_code == 200
        assert requests.get(base + "/", headers={"Accept": "application/json"}).status_code == 401
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0


def test_detour_dev_tls_serves_https_and_http2_with_a_throw_away_authority(tmp_path):
    process, base, banner = start_dev(tmp_path, "--tls")
    authority = re.search(r"curl --cacert (\S+) ", banner).group(1)
    try:
        alice = sign_in(base, "alice", verify=authority)
        assert all(cookie.secure for cookie in alice.cookies if "detour" in cookie.name)
        assert "Hello, alice" in alice.get(base + "/").text
        # curl trusts the authority as the banner says, and speaks HTTP/2 to Detour.
        cookie = "; ".join(f"{c.name}={c.value}" for c in alice.cookies if "detour" in c.name)
        curl = subprocess.run(["curl", "-s", "--http2", "--cacert", authority, "-H", f"Cookie: {cookie}",
                               "-w", "\n%{http_version} %{http_code}", base + "/"], capture_output=True, text=True)
        assert "Hello, alice" in curl.stdout and curl.stdout.endswith("\n2 200"), curl.stdout[-200:]
        # Nothing but that run's authority vouches for the certificate.
        assert subprocess.run(["curl", "-s", "-o", "/dev/null", base + "/public/"]).returncode == 60
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    assert not pathlib.Path(authority).parent.exists()  # the throw-away folder goes with the run


def test_a_port_in_use_is_a_clear_error_not_a_crash():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1] - 1  # `detour dev` wants port, port+1 (taken) and port+2
        result = subprocess.run([str(DETOUR), "dev", "--port", str(port)], capture_output=True, text=True,
                                timeout=20)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port + 1}: Address already in use" in result.stderr
