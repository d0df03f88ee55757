"""Detour against nginx `proxy_pass`, same upstream, same run, interleaved: requests/s, p50/p99 latency and
peak RSS for each, and the ratio. Detour serves a signed-in user (a real session cookie from a real
sign-in); the upstream is an nginx answering a small body, so the proxies are what is measured.

Also the CPU time each proxy used per request (user + system, from /proc): a figure that moves much less
than requests/s when the machine is shared, as loopback benchmarks on 2 cores are (wrk, the proxy and the
upstream all compete for them).

Usage: .venv/bin/python bench/proxy.py [seconds-per-round] [connections] [rounds] [detour-binary...]
With no binary, the release build is measured. Several binaries (this commit's build and an older one's, say)
are measured side by side in the same rounds: on a shared machine that is the only way to see a change of a
few per cent, which separate runs drown in noise.
Needs: wrk and nginx (Debian's), a release build (scripts/release-build --product detour), and the e2e
requirements in .venv (scripts/test installs them).
"""
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests" / "e2e"))

import conftest  # noqa: E402
from conftest import Detour, free_port, provider, signed_in, wait_for  # noqa: E402

SECONDS = int(sys.argv[1]) if len(sys.argv) > 1 else 10
CONNECTIONS = int(sys.argv[2]) if len(sys.argv) > 2 else 64
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
BINARIES = [pathlib.Path(path) for path in sys.argv[4:]] or [ROOT / ".build" / "release" / "detour"]
# Session stores to measure each binary with, e.g. BENCH_STORES=cookie,postgres (a private PostgreSQL cluster).
STORES = os.environ.get("BENCH_STORES", "cookie").split(",")


def start_nginx(directory, body):
    """nginx on a free port: `body` gives its `location`, and optionally an `upstream` port to proxy to, `listen`
    parameters (" ssl http2") and more `server` directives (certificates)."""
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "nginx.conf").write_text(f"""
worker_processes 1; daemon off; pid {directory}/nginx.pid; error_log {directory}/error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off; client_body_temp_path {directory}/b; proxy_temp_path {directory}/p;
  fastcgi_temp_path {directory}/f; uwsgi_temp_path {directory}/u; scgi_temp_path {directory}/s;
  upstream app {{ server 127.0.0.1:{body["upstream"]}; keepalive 64; }} 
  server {{ listen 127.0.0.1:{port}{body.get("listen", "")}; {body.get("server", "")} {body["location"]} }}
}}""" if "upstream" in body else f"""
worker_processes 1; daemon off; pid {directory}/nginx.pid; error_log {directory}/error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off; client_body_temp_path {directory}/b; proxy_temp_path {directory}/p;
  fastcgi_temp_path {directory}/f; uwsgi_temp_path {directory}/u; scgi_temp_path {directory}/s;
  server {{ listen 127.0.0.1:{port}; {body["location"]} }}
}}""")
    process = subprocess.Popen(["nginx", "-c", str(directory / "nginx.conf"), "-p", str(directory)])
    time.sleep(0.5)
    return port, process


def children_rss_kb(pid):
    """Peak RSS (VmHWM) of a process and its children (nginx's worker)."""
    total = 0
    pids = [str(pid)] + subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    for p in pids:
        try:
            status = pathlib.Path(f"/proc/{p}/status").read_text()
            total += int(re.search(r"VmHWM:\s+(\d+)", status).group(1))
        except (FileNotFoundError, AttributeError):
            pass
    return total


def cpu_times(pid):
    """User and system (kernel) CPU time of a process and its children (nginx's worker) so far, in seconds."""
    user = system = 0
    pids = [str(pid)] + subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    for p in pids:
        fields = pathlib.Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        user, system = user + int(fields[11]), system + int(fields[12])  # utime, stime: fields 14, 15 of stat(5)
    return user / os.sysconf("SC_CLK_TCK"), system / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User and system CPU time of a process and its children (nginx's worker) so far, in seconds."""
    return sum(cpu_times(pid))


def wrk(url, header=None, seconds=None, connections=None):
    """requests/s, p50 and p99 in ms, and non-2xx/3xx answers of one wrk run, with an optional header line."""
    command = ["wrk", "-t2", f"-c{connections or CONNECTIONS}", f"-d{seconds or SECONDS}s", "--latency", url]
    if header:
        command[1:1] = ["-H", header]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))

    def percentile(label):
        value, unit = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)", output).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return rps, percentile("50"), percentile("99"), int(non2xx.group(1)) if non2xx else 0


def main():
    work = pathlib.Path(tempfile.mkdtemp())
    upstream_port, upstream = start_nginx(work / "upstream", {"location": 'location / { return 200 "hello from the upstream\\n"; }'})
    proxy_port, nginx = start_nginx(work / "proxy", {
        "upstream": upstream_port,
        "location": "location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; }"})
    issuer_fixture = provider.__wrapped__()
    issuer = next(issuer_fixture)
    routes = f"""
routes:
  - name: app
    match: {{ host: "localhost" }}
    upstream: "http://127.0.0.1:{upstream_port}"
    allow: [{{ authenticated: true }}]
"""
    names, processes, targets, detours = [], {}, {}, []
    database = conftest.Postgres(work / "postgres") if "postgres" in STORES else None
    for index, (binary, store) in enumerate((b, s) for b in BINARIES for s in STORES):
        conftest.DETOUR = binary
        settings = {"cookie": "", "memory": "  store: memory"}
        setting = settings[store] if store in settings else f'  store: "{database.new_database()[1]}"'
        detour = Detour(work, issuer, extra=routes, session=setting)
        wait_for(detour.url("/ready"))
        session = signed_in(detour)
        cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies if c.name.startswith("_detour"))
        assert session.get(detour.url("/bench")).status_code == 200
        name = "detour" if len(BINARIES) == 1 else f"detour {index // len(STORES) + 1}"
        name += f" ({store})" if len(STORES) > 1 else ""
        names.append(name)
        detours.append(detour)
        processes[name] = detour.process.pid
        targets[name] = (detour.url("/bench"), f"Cookie: {cookie}")
    names.append("nginx")
    processes["nginx"] = nginx.pid
    targets["nginx"] = (f"http://localhost:{proxy_port}/bench", None)
    results = {name: [] for name in names}
    for _ in range(ROUNDS):  # interleaved, so all see the same machine
        for name in names:
            before = cpu_seconds(processes[name])
            rps, p50, p99, errors = wrk(*targets[name])
            used = cpu_seconds(processes[name]) - before
            results[name].append((rps, p50, p99, errors, used / (rps * SECONDS) * 1e6))
    best = {name: max(runs) for name, runs in results.items()}
    rss = {name: children_rss_kb(pid) for name, pid in processes.items()}
    print(f"{SECONDS} s per round, {CONNECTIONS} connections, 2 wrk threads, {ROUNDS} rounds interleaved; best round shown")
    if len(BINARIES) > 1:
        for index, binary in enumerate(BINARIES):
            print(f"detour {index + 1}: {binary}")
    width = max(len(name) for name in names)
    print(f"{'':{width}} {'requests/s':>12} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'CPU µs/request':>15} {'peak RSS MiB':>13}")
    for name in names:
        rps, p50, p99, errors, cpu = best[name]
        print(f"{name:{width}} {rps:12.0f} {p50:8.2f} {p99:8.2f} {errors:7d} {cpu:15.1f} {rss[name] / 1024:13.1f}")
    for name in names[:-1]:
        ratio = best[name][0] / best["nginx"][0]
        rounds = [d[0] / n[0] for d, n in zip(results[name], results["nginx"])]
        cpu = statistics.median(run[4] for run in results[name])
        print(f"{name}/nginx: {ratio:.2f}x requests/s, p99 {best[name][2] / best['nginx'][2]:.2f}x; each round: "
              + " ".join(f"{r:.2f}x" for r in rounds) + f" (median {statistics.median(rounds):.2f}x); "
              + f"median CPU {cpu:.1f} µs/request")
    for name in names[:-1]:
        if name.endswith("(postgres)"):
            cookie_store = name.replace("(postgres)", "(cookie)")
            if cookie_store in best:
                rounds = [p[0] / c[0] for p, c in zip(results[name], results[cookie_store])]
                print(f"{name} / {cookie_store}: each round " + " ".join(f"{r:.2f}x" for r in rounds)
                      + f" (median {statistics.median(rounds):.2f}x)")
    for detour in detours:
        detour.stop()
    if database:
        database.stop()
    for process in (nginx, upstream):
        process.terminate()
        process.wait()
    next(issuer_fixture, None)


if __name__ == "__main__":
    main()
