"""Day-2 operations (CONTRACT section 8): a drain on SIGTERM bounded by `server.shutdown_grace`."""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import DETOUR, ROOT, SECRET, free_port, routes, signed_in, wait_for


def slow_request(detour, milliseconds, outcome):
    try:
        outcome["status"] = requests.get(detour.url(f"/slow?ms={milliseconds}"), timeout=30).status_code
    except requests.RequestException as error:
        outcome["error"] = type(error).__name__
    outcome["at"] = time.monotonic()


def terminate_during(detour, milliseconds):
    """A request that takes `milliseconds`, SIGTERM while it is in flight; returns its outcome, when SIGTERM was
    sent, and when the process exited (with its status)."""
    outcome = {}
    thread = threading.Thread(target=slow_request, args=(detour, milliseconds, outcome))
    thread.start()
    time.sleep(0.5)
    signalled = time.monotonic()
    detour.process.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    try:
        requests.get(detour.url("/ping"), timeout=2)
        outcome["new_connection"] = "accepted"
    except requests.ConnectionError:
        outcome["new_connection"] = "refused"
    status = detour.process.wait(timeout=30)
    exited = time.monotonic()
    thread.join()
    return outcome, signalled, exited, status


def test_sigterm_lets_a_request_in_flight_finish_then_exits_0(make_detour, upstream):
    detour = make_detour(server="  shutdown_grace: 10s", extra=routes(upstream, free_port()))
    outcome, signalled, exited, status = terminate_during(detour, 2000)
    assert outcome["status"] == 200, outcome
    assert outcome["new_connection"] == "refused", "no new connection once draining"
    assert status == 0
    assert exited - signalled < 5, "it exits once the last request is done, not at the end of the grace"
    assert "stopped" in detour.log_path.read_text()


def test_a_request_longer_than_the_grace_is_cut_off_and_detour_still_exits_0(make_detour, upstream):
    detour = make_detour(server="  shutdown_grace: 1s", extra=routes(upstream, free_port()))
    outcome, signalled, exited, status = terminate_during(detour, 8000)
    assert "error" in outcome, outcome
    assert 0.8 < outcome["at"] - signalled < 4, "closed when the grace ran out"
    assert status == 0
    assert exited - signalled < 5
    assert "shutdown grace is over" in detour.log_path.read_text()


def test_admin_listen_serves_health_and_metrics_and_frees_those_paths_for_the_routes(make_detour, upstream):
    detour = make_detour(admin_port=free_port(), extra=routes(upstream, free_port()))
    base = detour.health
    assert requests.get(base + "/ping").text == "OK"
    assert requests.get(base + "/ready").status_code == 200
    assert requests.get(detour.url("/echo/public/x")).status_code == 200
    metrics = requests.get(base + "/metrics")
    assert metrics.status_code == 200 and "detour_requests_total" in metrics.text
    assert requests.get(base + "/.//ping").text == "OK", "the path is normalised as everywhere"
    for path in ("/", "/oauth2/start", "/echo/public/x", "/pingx"):
        assert requests.get(base + path, allow_redirects=False).status_code == 404, path
    # On the public listener these are paths like any other: the app's route decides (sign-in first).
    for path in ("/ping", "/ready", "/metrics"):
        answer = requests.get(detour.url(path), headers={"Accept": "application/json"}, allow_redirects=False)
        assert answer.status_code == 401 and answer.json()["error"] == "unauthenticated", path
    signed = signed_in(detour)
    assert "detour_requests_total" not in signed.get(detour.url("/metrics")).text, "the upstream's, not Detour's"


def access_lines(detour):
    """The JSON access-log lines Detour wrote so far (its standard output shares the test's log file)."""
    time.sleep(0.2)  # the writer thread flushes every 20 ms
    return [json.loads(line) for line in detour.log_path.read_text().splitlines() if line.startswith('{"time"')]


def test_the_json_access_log_has_a_line_per_request_with_the_contracts_fields(proxy, upstream):
    signed = signed_in(proxy)
    seen = signed.get(proxy.url("/echo/app?token=secret"), headers={"X-Request-Id": "abc-123"}).json()
    assert seen["headers"]["x-request-id"] == "abc-123", "kept from a trusted proxy (127.0.0.1 is one here)"
    requests.get(proxy.url("/echo/app"), headers={"Accept": "application/json"})
    lines = access_lines(proxy)
    proxied = next(line for line in lines if line["request_id"] == "abc-123")
    assert list(proxied) == ["time", "request_id", "client", "method", "host", "path", "status", "route", "decision",
                             "user", "upstream_ms", "total_ms"]
    assert proxied["path"] == "/echo/app", "never the query"
    assert (proxied["status"], proxied["route"], proxied["decision"], proxied["user"]) == (200, "app", "proxied",
                                                                                          "alice")
    assert proxied["client"] == "127.0.0.1" and proxied["method"] == "GET"
    assert 0 <= proxied["upstream_ms"] <= proxied["total_ms"]
    refused = [line for line in lines if line["decision"] == "A3"]
    assert refused and refused[-1]["status"] == 401 and refused[-1]["user"] is None
    callbacks = [line for line in lines if line["decision"] == "C1"]
    assert callbacks and callbacks[0]["route"] == "detour" and callbacks[0]["status"] == 303
    assert "secret" not in proxy.log_path.read_text()


def test_a_clients_request_id_is_replaced_unless_a_trusted_proxy_sent_it(untrusting_proxy):
    seen = requests.get(untrusting_proxy.url("/echo/public/x"), headers={"X-Request-Id": "forged\tid"}).json()
    sent = seen["headers"]["x-request-id"]
    assert sent != "forged\tid" and len(sent) == 32 and int(sent, 16) >= 0
    assert access_lines(untrusting_proxy)[-1]["request_id"] == sent


@pytest.mark.parametrize("format", ["text", "off"])
def test_the_access_log_can_be_text_or_off(make_detour, upstream, format):
    detour = make_detour(server=f"  access_log: {format}", extra=routes(upstream, free_port()))
    requests.get(detour.url("/echo/public/a b?q=1"))
    time.sleep(0.2)
    lines = [line for line in detour.log_path.read_text().splitlines() if "/echo/public/" in line]
    if format == "off":
        assert lines == []
    else:
        assert len(lines) == 1 and not lines[0].startswith("{")
        assert ' GET localhost:' in lines[0] and ' /echo/public/a%20b 200 route=app decision=proxied user=- ' in lines[0]


def test_failures_aborts_and_the_admin_listener_in_the_access_log(make_detour, upstream):
    detour = make_detour(admin_port=free_port(), extra=routes(upstream, free_port()))
    assert requests.get(detour.url("/down/x")).status_code == 502
    try:
        requests.get(detour.url("/slow?ms=3000"), timeout=0.5)
    except requests.Timeout:
        pass
    requests.get(detour.health + "/ping")
    time.sleep(1)
    lines = access_lines(detour)
    down = next(line for line in lines if line["path"] == "/down/x")
    assert (down["status"], down["route"], down["decision"]) == (502, "down", "upstream-failed"), \
        "Detour's own 502 never reads as the upstream's"
    aborted = next(line for line in lines if line["path"] == "/slow")
    assert aborted.get("aborted") is True
    assert not any(line["path"] == "/ping" for line in lines), "the admin listener is not logged"


def test_metrics_have_what_the_grafana_dashboard_charts(make_detour, upstream):
    """docker/grafana/detour-dashboard.json charts only metrics Detour exposes, with the labels it groups by."""
    detour = make_detour(session="  store: memory", extra=routes(upstream, free_port()))
    browser = signed_in(detour)
    browser.get(detour.url("/echo/app"))
    requests.get(detour.url("/echo/app"), headers={"Accept": "application/json"})
    time.sleep(0.5)
    text = requests.get(detour.url("/metrics")).text
    dashboard = json.loads((ROOT / "docker" / "grafana" / "detour-dashboard.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    names = set(re.findall(r"detour_[a-z_]+", " ".join(expressions)))
    assert names, "the dashboard charts Detour's metrics"
    for name in names:
        assert re.search(rf"^{name}[{{ ]", text, re.MULTILINE), f"{name} is not in /metrics"
    for label in ("route", "decision", "status"):
        assert re.search(rf'^detour_requests_total{{[^}}]*{label}="', text, re.MULTILINE), label
    assert 'decision="proxied"' in text and 'decision="A3"' in text
    assert re.search(r'^detour_sign_ins_total{result="success"}', text, re.MULTILINE)
    assert re.search(r"^detour_sessions [0-9]", text, re.MULTILINE), "read at start, then every 15 s"
    assert re.search(r"^detour_open_connections [1-9]", text, re.MULTILINE)


def test_detour_serves_and_proxies_as_an_unprivileged_user(provider, upstream, tmp_path):
    """The Docker image runs Detour as uid 10001, and most deployments as some user other than root. Detour once set
    a socket option on every connection that only root may set (`.socketOption(.tcp_nodelay)` is SO_DEBUG, at the
    socket level), so every connection failed for every other user, while every test, run as root, passed."""
    folder = Path(tempfile.mkdtemp())
    try:
        folder.chmod(0o755)  # the unprivileged user reads the binary and the configuration from here
        binary = folder / "detour"
        shutil.copy(DETOUR, binary)
        port = free_port()
        config = folder / "detour.yaml"
        config.write_text(f"""
server: {{ listen: "127.0.0.1:{port}", public_url: "http://localhost:{port}" }}
oidc: {{ issuer: "{provider}", client_id: "detour-e2e", client_secret: "s3cret" }}
session: {{ secrets: ["{SECRET}"] }}
routes:
  - name: app
    match: {{ host: "localhost" }}
    upstream: "{upstream}"
    public: ["/echo/public/"]
""")
        unprivileged = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
        with open(tmp_path / "unprivileged.log", "w") as log:
            process = subprocess.Popen(unprivileged + [str(binary), "serve", "--config", str(config)], stdout=log,
                                       stderr=subprocess.STDOUT)
        try:
            wait_for(f"http://127.0.0.1:{port}/ready")
            status = Path(f"/proc/{process.pid}/status").read_text()
            assert re.search(r"^Uid:\s+[1-9]", status, re.M), "Detour runs as a user other than root"
            answer = requests.get(f"http://localhost:{port}/echo/public/x")
            assert answer.status_code == 200 and answer.json()["path"] == "/echo/public/x", "proxied"
            assert requests.get(f"http://localhost:{port}/app", headers={"Accept": "text/html"},
                                allow_redirects=False).status_code == 302
        finally:
            process.terminate()
            process.wait(timeout=20)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
