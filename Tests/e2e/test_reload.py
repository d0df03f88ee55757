"""SIGHUP re-reads the configuration and its policies (CONTRACT section 8, issue 18): a valid new configuration
serves every request that starts afterwards, on open connections too; requests in flight finish on the one they
started with; a bad one is refused with FILE:LINE:COLUMN and the running one keeps serving; and no request fails
while reloads happen under a concurrent load."""

import re
import signal
import threading
import time

import requests

from conftest import Detour, sign_in_at_provider, signed_in, start


def policy(upstream, slow="public", extra_route=""):
    """Routes: /echo/ for signed-in users, /slow public or closed to everyone, and an optional /new/ route."""
    slow_rule = '"/slow"' if slow == "public" else ""
    return f"""
routes:{extra_route}
  - name: app
    match: {{ host: "localhost" }}
    upstream: "{upstream}"
    allow: [{{ authenticated: true }}]
    public: ["/echo/public/", {slow_rule}]
"""


NEW_ROUTE = """
  - name: new
    match: { host: "localhost", path: "/new/" }
    upstream: "UPSTREAM"
    public: ["/new/"]"""


def rewrite(detour, text):
    """Replaces the configuration file in one step, as an editor's save or a deployment's rename does."""
    temporary = detour.config.with_suffix(".next")
    temporary.write_text(text)
    temporary.replace(detour.config)


def reload(detour, expected, count):
    """Sends SIGHUP and waits until the log holds `count` lines matching `expected`."""
    detour.process.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while time.time() < deadline:
        lines = [line for line in detour.log_path.read_text().splitlines() if re.search(expected, line)]
        if len(lines) >= count:
            return lines
        time.sleep(0.02)
    raise AssertionError(f"no {expected!r} line #{count} in the log:\n{detour.log_path.read_text()[-3000:]}")


def test_a_reload_changes_routes_for_new_requests_and_lets_old_ones_finish(tmp_path, provider, upstream):
    detour = Detour(tmp_path, provider, extra=policy(upstream))
    try:
        base = detour.config.read_text()
        browser = signed_in(detour)
        assert requests.get(detour.url("/new/x"), allow_redirects=False).status_code == 401  # no /new/ route yet
        in_flight = {}
        slow = threading.Thread(target=lambda: in_flight.update(
            answer=requests.get(detour.url("/slow?ms=1500"), allow_redirects=False)))
        slow.start()
        deadline = time.time() + 5  # until the upstream holds it: Detour decided on it before the reload
        while requests.get(upstream + "/stats").json()["in_flight"] < 2 and time.time() < deadline:
            time.sleep(0.01)  # (the /stats request itself is the other one in flight)
        closed = base.replace(policy(upstream), policy(upstream, slow="closed",
                                                        extra_route=NEW_ROUTE.replace("UPSTREAM", upstream)))
        rewrite(detour, closed)
        assert "routes=2" in reload(detour, "configuration reloaded", 1)[0]
        slow.join()
        assert in_flight["answer"].status_code == 200 and in_flight["answer"].text == "slow", \
            "a request in flight finishes on the configuration it started with"
        assert requests.get(detour.url("/slow?ms=1"), allow_redirects=False).status_code == 401, \
            "a request that starts after the reload decides on the new configuration"
        assert requests.get(detour.url("/new/x"), allow_redirects=False).status_code == 404, \
            "the new public route reaches the upstream, which has no /new/x"
        assert browser.get(detour.url("/echo/x")).json()["headers"]["x-forwarded-user"] == "alice", \
            "the session survives a reload"
    finally:
        detour.stop()


def test_a_bad_configuration_is_refused_with_its_position_and_the_old_one_serves(tmp_path, provider, upstream):
    detour = Detour(tmp_path, provider, extra=policy(upstream))
    try:
        base = detour.config.read_text()
        rewrite(detour, base.replace("public: [", "publik: ["))
        refused = reload(detour, "configuration reload refused: ", 1)
        line = next(number for number, text in enumerate(base.splitlines(), 1) if "public: [" in text)
        assert f"{detour.config}:{line}:5: unknown key" in refused[0], refused
        assert requests.get(detour.url("/slow?ms=1"), allow_redirects=False).status_code == 200, "old config serves"

        rewrite(detour, base.replace(f'listen: "127.0.0.1:{detour.port}"', 'listen: "127.0.0.1:1"'))
        refused = reload(detour, "configuration reload refused: ", 2)
        assert f"{detour.config}:3:3: server.listen changed: only a restart" in refused[1], refused

        (tmp_path / "broken.yaml").write_text("routes:\n  - name: x\n    upstream: 12\n")
        rewrite(detour, base.replace("routes:", 'policies: ["broken.yaml"]\nroutes:', 1))
        refused = reload(detour, "configuration reload refused: ", 3)
        assert f"{tmp_path / 'broken.yaml'}:" in refused[2], "a policy file's own error names that file"
        assert requests.get(detour.url("/slow?ms=1"), allow_redirects=False).status_code == 200
        assert detour.process.poll() is None
        assert "configuration reloaded" not in detour.log_path.read_text()
    finally:
        detour.stop()


def test_trusted_proxies_change_on_an_open_connection(tmp_path, provider, upstream):
    detour = Detour(tmp_path, provider, extra=policy(upstream))
    try:
        connection = requests.Session()  # one keep-alive connection throughout
        forwarded = {"X-Forwarded-For": "203.0.113.9"}
        seen = connection.get(detour.url("/echo/public/"), headers=forwarded).json()["headers"]
        assert seen["x-forwarded-for"] == "127.0.0.1", "an untrusted peer's X-Forwarded-For is replaced"
        rewrite(detour, detour.config.read_text().replace("trusted_proxies: []", 'trusted_proxies: ["127.0.0.1"]'))
        reload(detour, "configuration reloaded", 1)
        seen = connection.get(detour.url("/echo/public/"), headers=forwarded).json()["headers"]
        assert seen["x-forwarded-for"] == "203.0.113.9, 127.0.0.1", "the reloaded list applies on the same connection"
        rewrite(detour, detour.config.read_text().replace('trusted_proxies: ["127.0.0.1"]', "trusted_proxies: []"))
        reload(detour, "configuration reloaded", 2)
        seen = connection.get(detour.url("/echo/public/"), headers=forwarded).json()["headers"]
        assert seen["x-forwarded-for"] == "127.0.0.1", "and so does taking the trust back"
    finally:
        detour.stop()


def signed_in_towards(detour, rd, before_callback=lambda: None):
    """Where a whole sign-in towards `rd` ends: the callback's 303 Location."""
    browser = requests.Session()
    authorize = start(browser, detour, rd).headers["Location"]
    callback = sign_in_at_provider(browser, authorize)
    before_callback()
    done = browser.get(callback, allow_redirects=False)
    assert done.status_code == 303
    return done.headers["Location"]


def test_return_targets_follow_the_reloaded_allowlist(tmp_path, provider, upstream):
    detour = Detour(tmp_path, provider, extra=policy(upstream))
    try:
        hosts = '["localhost:*", "app.example.com"]'
        assert signed_in_towards(detour, "https://new.example.com/x") == detour.url("/"), "not allowed yet"
        rewrite(detour, detour.config.read_text().replace(hosts, '["localhost:*", "app.example.com", "new.example.com"]'))
        reload(detour, "configuration reloaded", 1)
        assert signed_in_towards(detour, "https://new.example.com/x") == "https://new.example.com/x"

        def narrow():  # the sign-in started while app.example.com was allowed; the callback comes after it is not
            rewrite(detour, detour.config.read_text().replace('"app.example.com", ', ""))
            reload(detour, "configuration reloaded", 2)

        assert signed_in_towards(detour, "https://app.example.com/y", before_callback=narrow) == detour.url("/")
    finally:
        detour.stop()


def test_no_request_fails_while_reloading_under_load(tmp_path, provider, upstream):
    """Eight clients (four on keep-alive connections, four opening a connection per request) send signed-in GETs
    while the configuration is swapped back and forth twenty times, 0.1 s apart, with a refused one between each
    pair."""
    detour = Detour(tmp_path, provider, extra=policy(upstream))
    try:
        base = detour.config.read_text()
        other = base.replace(policy(upstream), policy(upstream, extra_route=NEW_ROUTE.replace("UPSTREAM", upstream)))
        cookies = signed_in(detour).cookies
        stop = threading.Event()
        results = []

        def client(keep_alive):
            session = requests.Session()
            counts = {"ok": 0, "failed": []}
            while not stop.is_set():
                try:
                    if not keep_alive:
                        session.close()
                    answer = session.get(detour.url("/echo/load"), cookies=cookies, allow_redirects=False,
                                         timeout=5)
                    if answer.status_code == 200 and answer.json()["headers"]["x-forwarded-user"] == "alice":
                        counts["ok"] += 1
                    else:
                        counts["failed"].append(answer.status_code)
                except Exception as error:  # a reset or timeout is a failure to count, not to hide
                    counts["failed"].append(repr(error))
            results.append(counts)

        threads = [threading.Thread(target=client, args=(index % 2 == 0,)) for index in range(8)]
        for thread in threads:
            thread.start()
        started = time.time()
        reloads = 0
        for round_number in range(10):
            for text in (other, base):
                rewrite(detour, text)
                reloads += 1
                reload(detour, "configuration reloaded", reloads)
                time.sleep(0.1)  # requests on both configurations, and across each swap
            rewrite(detour, base.replace("public: [", "publik: ["))
            reload(detour, "configuration reload refused; the running", round_number + 1)
            rewrite(detour, base)
        elapsed = time.time() - started
        stop.set()
        for thread in threads:
            thread.join()
        served = sum(counts["ok"] for counts in results)
        failed = [failure for counts in results for failure in counts["failed"]]
        print(f"reload under load: {reloads} reloads and 10 refusals in {elapsed:.1f} s, {served} requests served "
              f"({served / elapsed:.0f}/s), {len(failed)} failed")
        assert failed == []
        assert served > 200, "the load ran throughout"
        assert detour.process.poll() is None
    finally:
        detour.stop()
