"""Day-2 operations (CONTRACT section 8): a drain on SIGTERM bounded by `server.shutdown_grace`."""
import signal
import threading
import time

import requests

from conftest import free_port, routes, signed_in


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
