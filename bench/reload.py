"""Reload under load: wrk sends signed-in proxied GETs through Detour while SIGHUP swaps the configuration every
100 ms (two valid files in turn, and every third reload a file with an error, which is refused). Prints wrk's
requests/s, latency, non-2xx answers and socket errors with reloads and, in the same run, without.

Usage: .venv/bin/python bench/reload.py [seconds] [connections] [detour-binary]
Needs what bench/proxy.py needs (wrk, nginx, the e2e requirements in .venv); the debug build by default.
"""
import pathlib
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests" / "e2e"))
sys.path.insert(0, str(ROOT / "bench"))

import conftest  # noqa: E402
from conftest import Detour, provider, signed_in, wait_for  # noqa: E402
from proxy import start_nginx  # noqa: E402

SECONDS = int(sys.argv[1]) if len(sys.argv) > 1 else 10
CONNECTIONS = int(sys.argv[2]) if len(sys.argv) > 2 else 50
if len(sys.argv) > 3:
    conftest.DETOUR = pathlib.Path(sys.argv[3])


def wrk(url, cookie):
    output = subprocess.run(["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--latency", "-H", cookie, url],
                            capture_output=True, text=True, check=True).stdout
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    p99 = re.search(r"\s99%\s+(\S+)", output).group(1)
    return (requests, float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)), p99,
            int(non2xx.group(1)) if non2xx else 0, sum(map(int, errors.groups())) if errors else 0)


def main():
    work = pathlib.Path(tempfile.mkdtemp())
    upstream_port, upstream = start_nginx(work / "upstream", {"location": 'location / { return 200 "hello\\n"; }'})
    issuer_fixture = provider.__wrapped__()
    issuer = next(issuer_fixture)
    routes = f"""
routes:
  - name: app
    match: {{ host: "localhost" }}
    upstream: "http://127.0.0.1:{upstream_port}"
    allow: [{{ authenticated: true }}]
"""
    detour = Detour(work, issuer, extra=routes)
    wait_for(detour.url("/ready"))
    session = signed_in(detour)
    cookie = "Cookie: " + "; ".join(f"{c.name}={c.value}" for c in session.cookies if c.name.startswith("_detour"))
    base = detour.config.read_text()
    other = base.replace("routes:", f"""routes:
  - name: other
    match: {{ host: "localhost", path: "/other/" }}
    upstream: "http://127.0.0.1:{upstream_port}"
    public: ["/other/"]""", 1)
    broken = base.replace("allow:", "alow:")
    url = detour.url("/bench")

    quiet = wrk(url, cookie)
    stop = threading.Event()
    counts = {"accepted": 0, "refused": 0}

    def reload_loop():
        files = [other, base, broken]
        index = 0
        while not stop.is_set():
            text = files[index % 3]
            temporary = detour.config.with_suffix(".next")
            temporary.write_text(text)
            temporary.replace(detour.config)
            detour.process.send_signal(signal.SIGHUP)
            counts["refused" if text is broken else "accepted"] += 1
            index += 1
            time.sleep(0.1)

    reloader = threading.Thread(target=reload_loop)
    reloader.start()
    busy = wrk(url, cookie)
    stop.set()
    reloader.join()
    time.sleep(0.5)
    log = detour.log_path.read_text()
    logged = (log.count("configuration reloaded"), log.count("the running configuration stays"))
    print(f"{SECONDS} s of wrk, {CONNECTIONS} connections, signed-in GET proxied to nginx; binary {conftest.DETOUR}")
    print(f"{'':16} {'requests':>9} {'requests/s':>11} {'p99':>9} {'non-2xx':>8} {'socket errors':>14}")
    for name, (total, rps, p99, non2xx, errors) in (("without reloads", quiet), ("with reloads", busy)):
        print(f"{name:16} {total:9d} {rps:11.0f} {p99:>9} {non2xx:8d} {errors:14d}")
    print(f"SIGHUPs sent: {counts['accepted']} valid, {counts['refused']} with an error; "
          f"logged: {logged[0]} reloaded, {logged[1]} refused")
    detour.stop()
    upstream.terminate()
    upstream.wait()
    next(issuer_fixture, None)


if __name__ == "__main__":
    main()
