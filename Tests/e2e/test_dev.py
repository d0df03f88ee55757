"""`detour dev`: one command, zero configuration, a working local SSO (the README's main command)."""
import re
import signal
import socket
import subprocess
import time

import requests

from conftest import DETOUR, free_port


def sign_in(base, user):
    session = requests.Session()
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


def test_detour_dev_is_a_working_local_sso(tmp_path):
    port = three_free_ports()
    log = tmp_path / "dev.log"
    with open(log, "w") as stderr:
        process = subprocess.Popen([str(DETOUR), "dev", "--port", str(port)], stdout=subprocess.PIPE,
                                   stderr=stderr, text=True)
    try:
        base = f"http://localhost:{port}"
        banner = ""
        deadline = time.time() + 20
        while f"open      {base}/" not in banner and time.time() < deadline:
            banner += process.stdout.readline()
        assert f"open      {base}/" in banner, (banner, log.read_text())
        while time.time() < deadline:
            try:
                if requests.get(base + "/ready").status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
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


def test_a_port_in_use_is_a_clear_error_not_a_crash():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1] - 1  # `detour dev` wants port, port+1 (taken) and port+2
        result = subprocess.run([str(DETOUR), "dev", "--port", str(port)], capture_output=True, text=True,
                                timeout=20)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port + 1}: Address already in use" in result.stderr
