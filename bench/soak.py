"""Issue 19's memory row: Detour's RSS over a soak at full load, sampled after every window.

Windows of 30 s cycle through the signed-in 1 KiB GET, the 64 KiB GET and the anonymous browser GET (row A1,
which fills the sign-in tables), each at wrk's full load (2 threads x 50 connections), with Detour's access log off.
RSS is read from /proc after each window. "Flat" means the second half of the soak ends within 5% of where it began:
a process that keeps what a load needs, and no more each minute.

Usage: .venv/bin/python bench/soak.py [minutes] [detour-binary]
Needs wrk, nginx, a release build of detour (scripts/release-build --product detour), and the e2e requirements in .venv.
"""
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests" / "e2e"))
sys.path.insert(0, str(ROOT / "bench"))

MINUTES = float(sys.argv[1]) if len(sys.argv) > 1 else 10
BINARY = pathlib.Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / ".build" / "release" / "detour"
WINDOW = 30
sys.argv[1:] = []  # table.py reads its own arguments when imported

import conftest  # noqa: E402
import table  # noqa: E402
from conftest import Detour, provider, wait_for  # noqa: E402

conftest.DETOUR = BINARY
table.SECONDS = WINDOW


def main():
    work, upstream_port, upstream = table.file_upstream()
    issuer_fixture = provider.__wrapped__()
    issuer = next(issuer_fixture)
    detour = Detour(work, issuer, extra=table.routes(f"http://127.0.0.1:{upstream_port}"),
                    server='  access_log: "off"')
    wait_for(detour.url("/ready"))
    time.sleep(1)
    pid = detour.process.pid
    idle = table.rss_mib(pid)
    cookie = table.cookie_of(detour)
    loads = [("1k", detour.url("/1k"), cookie), ("64k", detour.url("/64k"), cookie),
             ("A1", detour.url("/1k"), "Accept: text/html")]
    print(f"binary {BINARY}; idle RSS {idle:.1f} MiB; {MINUTES:g} min in {WINDOW} s windows", flush=True)
    print(f"{'min':>5} {'load':>4} {'req/s':>8} {'failed':>7} {'RSS MiB':>8}", flush=True)
    samples = []
    started = time.monotonic()
    window = 0
    while time.monotonic() - started < MINUTES * 60:
        name, url, header = loads[window % len(loads)]
        rps, _, failed = table.wrk(url, header)
        rss = table.rss_mib(pid)
        samples.append(rss)
        print(f"{(time.monotonic() - started) / 60:5.1f} {name:>4} {rps:8.0f} {failed:7d} {rss:8.1f}", flush=True)
        window += 1
    half = samples[len(samples) // 2:]
    growth = (half[-1] - half[0]) / half[0]
    print(f"RSS: idle {idle:.1f}, after the first window {samples[0]:.1f}, highest {max(samples):.1f}, "
          f"last {samples[-1]:.1f} MiB; second half {half[0]:.1f} -> {half[-1]:.1f} MiB ({growth:+.1%}): "
          f"{'flat' if abs(growth) <= 0.05 else 'NOT flat'}")
    detour.stop()
    upstream.terminate()
    upstream.wait()
    next(issuer_fixture, None)


if __name__ == "__main__":
    main()
