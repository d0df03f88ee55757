"""Issue 19's table in one run: every row measured against what it is compared with, on the same machine, upstream
and wrk settings, rounds interleaved (each round runs every contender once), median of rounds shown.

Rows (each ratio is Detour over the comparison, per round, then the median):
- signed-in proxied GET, 1 KiB body, HTTP/1.1: against nginx `proxy_pass` (requests/s, p99, CPU per request, and
  that CPU's user and kernel parts)
- the same with a 64 KiB body
- the same (1 KiB) with the PostgreSQL session store: against Detour's cookie store
- the same over TLS and HTTP/2 from the client (h2load): against nginx `listen ssl http2` + `proxy_pass`
- an anonymous browser GET answered 302 (row A1): against nginx's proxied 1 KiB GET
- a bearer JWT request (key cached): against the cookie path
- 1,000 routes: proxied 1 KiB GET against the 1-route Detour; one decision's time from `detour-bench policy`
- memory: Detour's RSS when idle after start, and at the start and end of the rounds (flat under load?)

Detour runs with `server.access_log: off`, as nginx runs with `access_log off`.
Usage: .venv/bin/python bench/table.py [seconds-per-run] [rounds] [detour-binary]
Needs wrk, h2load, nginx, openssl, PostgreSQL (Debian's), release builds of detour and detour-bench
(`scripts/release-build --product detour`, then `--product detour-bench`), and the e2e requirements in .venv.
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
sys.path.insert(0, str(ROOT / "bench"))

SECONDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
BINARY = pathlib.Path(sys.argv[3]) if len(sys.argv) > 3 else ROOT / ".build" / "release" / "detour"
CONNECTIONS = 50
sys.argv[1:] = []  # the scripts imported below read their own arguments when imported

import requests  # noqa: E402

import conftest  # noqa: E402
from conftest import Detour, free_port, provider, signed_in, wait_for  # noqa: E402
from edge import certificates  # noqa: E402
from proxy import cpu_times, start_nginx  # noqa: E402

conftest.DETOUR = BINARY


def wrk(url, header=None):
    """requests/s, p99 in ms, and failures (non-2xx/3xx answers and socket errors) of one wrk run."""
    command = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--latency", url]
    if header:
        command[1:1] = ["-H", header]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    value, unit = re.search(r"\s99%\s+([\d.]+)(us|ms|s)", output).groups()
    failures = sum(int(n) for n in re.findall(r"(?:Non-2xx or 3xx responses|connect|read|write|timeout):? (\d+)",
                                              output))
    return float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)), \
        float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit], failures


def h2load(url, header):
    """requests/s and failed requests of one h2load run (16 connections x 10 streams)."""
    command = ["h2load", f"-D{SECONDS}", "-c16", "-m10", "-t2", "--warm-up-time=1", "-H", header, url]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    failed = int(re.search(r"(\d+) failed", output).group(1))
    failed += sum(int(n) for n in re.search(r"status codes: \d+ 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx",
                                            output).groups())
    return float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", output).group(1)), 0.0, failed


def rss_mib(pid):
    return int(re.search(r"VmRSS:\s+(\d+)", pathlib.Path(f"/proc/{pid}/status").read_text()).group(1)) / 1024


def routes(upstream, count=1, extra=""):
    """`count` routes; the last, for `localhost`, is the one requests take (the others are other hosts)."""
    others = "".join(f"""
  - name: other-{index}
    match: {{ host: "app-{index}.example.com", path: "/area-{index}/" }}
    upstream: "{upstream}"
    allow: [{{ group: ["team-{index}"] }}]""" for index in range(count - 1))
    return f"""
routes:{others}{extra}
  - name: app
    match: {{ host: "localhost" }}
    upstream: "{upstream}"
    allow: [{{ authenticated: true }}]
"""


def cookie_of(detour):
    session = signed_in(detour)
    return "Cookie: " + "; ".join(f"{c.name}={c.value}" for c in session.cookies if "_detour" in c.name)


def file_upstream():
    """A work folder, and an nginx in it serving `/1k`, `/64k` and `/jwt/1k`: (work, port, process)."""
    work = pathlib.Path(tempfile.mkdtemp())
    work.chmod(0o755)  # nginx's workers (nobody, when run as root) read the upstream's files under it
    files = work / "files"
    files.mkdir()
    (files / "1k").write_bytes(b"x" * 1024)
    (files / "64k").write_bytes(b"x" * 65536)
    (files / "jwt").mkdir()
    (files / "jwt" / "1k").write_bytes(b"x" * 1024)  # the bearer route passes its path on as it is
    port, process = start_nginx(work / "upstream", {"location": f"location / {{ root {files}; }}"})
    return work, port, process


def main():
    work, upstream_port, upstream = file_upstream()
    upstream_url = f"http://127.0.0.1:{upstream_port}"
    proxy = "location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; }"
    endless = "keepalive_requests 100000000;"  # as Detour: wrk's connections are never closed on it
    nginx_port, nginx = start_nginx(work / "nginx", {"upstream": upstream_port, "location": proxy, "server": endless})
    (work / "pki").mkdir()
    ca, certificate, key = certificates(work / "pki")
    os.environ["REQUESTS_CA_BUNDLE"] = str(ca)  # signing in at the HTTPS Detour
    nginx_tls_port, nginx_tls = start_nginx(work / "nginx-tls", {
        "upstream": upstream_port, "location": proxy, "listen": " ssl http2",
        "server": f"ssl_certificate {certificate}; ssl_certificate_key {key}; ssl_protocols TLSv1.2 TLSv1.3; {endless}"})
    issuer_fixture = provider.__wrapped__()
    issuer = next(issuer_fixture)
    quiet = '  access_log: "off"'

    detour = Detour(work, issuer, extra=routes(upstream_url), server=quiet)
    wait_for(detour.url("/ready"))
    time.sleep(1)
    idle_rss = rss_mib(detour.process.pid)
    cookie = cookie_of(detour)
    database = conftest.Postgres(work / "postgres")
    postgres = Detour(work, issuer, extra=routes(upstream_url), server=quiet,
                      session=f'  store: "{database.new_database()[1]}"')
    wait_for(postgres.url("/ready"))
    postgres_cookie = cookie_of(postgres)
    edge = Detour(work, issuer, extra=routes(upstream_url), tls=ca,
                  server=f'{quiet}\n  tls: {{ cert_file: "{certificate}", key_file: "{key}" }}')
    wait_for(edge.url("/ready"), verify=str(ca))
    edge_cookie = cookie_of(edge)
    many = Detour(work, issuer, extra=routes(upstream_url, count=1000), server=quiet)
    wait_for(many.url("/ready"))
    many_cookie = cookie_of(many)

    port = free_port()
    dot = subprocess.Popen([sys.executable, str(ROOT / "Tests" / "providers" / "oauth_provider.py"), str(port), "3600"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert dot.stdout.readline().strip() == "ready"
    dot_issuer = f"http://127.0.0.1:{port}/o"
    wait_for(dot_issuer + "/.well-known/openid-configuration")
    bearer = Detour(work, dot_issuer, client=("detour", "detour-secret"), server=quiet,
                    oidc='  bearer_audiences: ["orders-api"]', extra=routes(upstream_url, extra=f"""
  - name: jwt
    match: {{ host: "localhost", path: "/jwt/" }}
    upstream: "{upstream_url}"
    bearer: "jwt"
    allow: [{{ authenticated: true }}]"""))
    wait_for(bearer.url("/ready"))
    jwt = requests.post(dot_issuer + "/token/", data={"grant_type": "password", "username": "alice",
                                                      "password": "alice-password", "client_id": "jwt-cli"}
                        ).json()["access_token"]
    for url, header in ((detour.url("/1k"), cookie), (bearer.url("/jwt/1k"), f"Authorization: Bearer {jwt}")):
        name, value = header.split(": ", 1)
        answer = requests.get(url, headers={name: value})
        assert answer.status_code == 200, (url, answer.status_code, answer.text[:300])

    runs = {  # name: (measure, process whose CPU is counted)
        "detour 1k": (lambda: wrk(detour.url("/1k"), cookie), detour.process.pid),
        "nginx 1k": (lambda: wrk(f"http://localhost:{nginx_port}/1k"), nginx.pid),
        "detour 64k": (lambda: wrk(detour.url("/64k"), cookie), detour.process.pid),
        "nginx 64k": (lambda: wrk(f"http://localhost:{nginx_port}/64k"), nginx.pid),
        "detour postgres 1k": (lambda: wrk(postgres.url("/1k"), postgres_cookie), postgres.process.pid),
        "detour h2 1k": (lambda: h2load(edge.url("/1k"), edge_cookie), edge.process.pid),
        "nginx h2 1k": (lambda: h2load(f"https://localhost:{nginx_tls_port}/1k", "X-Bench: 1"), nginx_tls.pid),
        "detour A1 302": (lambda: wrk(detour.url("/1k"), "Accept: text/html"), detour.process.pid),
        "detour bearer jwt 1k": (lambda: wrk(bearer.url("/jwt/1k"), f"Authorization: Bearer {jwt}"),
                                 bearer.process.pid),
        "detour 1000 routes 1k": (lambda: wrk(many.url("/1k"), many_cookie), many.process.pid),
    }
    results = {name: [] for name in runs}
    rss_start = rss_mib(detour.process.pid)
    for _ in range(ROUNDS):
        for name, (measure, pid) in runs.items():
            user, system = cpu_times(pid)
            rps, p99, failures = measure()
            per_request = [(after - before) / (rps * SECONDS) * 1e6 for after, before in zip(cpu_times(pid),
                                                                                         (user, system))]
            results[name].append((rps, p99, failures, sum(per_request), *per_request))
    rss_end = rss_mib(detour.process.pid)
    decision = subprocess.run([str(conftest.DETOUR.with_name("detour-bench")), "policy", "1"], capture_output=True,
                              text=True).stdout

    def median(name, field=0):
        return statistics.median(run[field] for run in results[name])

    def ratio(a, b, field=0):
        return statistics.median(x[field] / y[field] for x, y in zip(results[a], results[b]))

    print(f"{SECONDS} s per run, {ROUNDS} rounds interleaved, wrk 2 threads x {CONNECTIONS} connections (h2load 16 x 10"
          f" streams); medians of rounds; binary {conftest.DETOUR}")
    print(f"{'':24} {'req/s':>8} {'p99 ms':>7} {'CPU µs':>7} {'user':>6} {'kernel':>6} {'failed':>7}")
    for name in runs:
        failed = sum(run[2] for run in results[name])
        print(f"{name:24} {median(name):8.0f} {median(name, 1):7.2f} {median(name, 3):7.1f} {median(name, 4):6.1f} "
              f"{median(name, 5):6.1f} {failed:7d}")
    rows = [
        ("signed-in GET 1 KiB, h1", ratio("detour 1k", "nginx 1k"), ">= 0.9x nginx"),
        ("  p99", ratio("detour 1k", "nginx 1k", 1), "<= 1.2x nginx"),
        ("  CPU per request", ratio("detour 1k", "nginx 1k", 3), "<= 1.2x nginx"),
        ("signed-in GET 64 KiB, h1", ratio("detour 64k", "nginx 64k"), ">= 0.9x nginx"),
        ("PostgreSQL session store", ratio("detour postgres 1k", "detour 1k"), ">= 0.9x cookie store"),
        ("TLS + HTTP/2", ratio("detour h2 1k", "nginx h2 1k"), ">= 0.8x nginx"),
        ("anonymous GET, 302 (A1)", ratio("detour A1 302", "nginx 1k"), ">= 1.5x nginx proxied"),
        ("bearer JWT", ratio("detour bearer jwt 1k", "detour 1k"), ">= 0.8x cookie path"),
        ("1,000 routes, proxied", ratio("detour 1000 routes 1k", "detour 1k"), ">= 0.95x 1 route"),
    ]
    print(f"\n{'row':28} {'measured':>9}  target")
    for name, value, target in rows:
        bound = float(re.search(r"([\d.]+)x", target).group(1))
        met = value <= bound if target.startswith("<=") else value >= bound
        print(f"{name:28} {value:8.2f}x  {target:24} {'met' if met else 'NOT met'}")
    print("CPU per signed-in 1 KiB request, user + kernel: " + ", ".join(
        f"{name} {median(name + ' 1k', 4):.1f} + {median(name + ' 1k', 5):.1f} µs" for name in ("detour", "nginx")))
    print(f"memory: idle {idle_rss:.1f} MiB after start (target < 32 MiB: {'met' if idle_rss < 32 else 'NOT met'}); "
          f"{rss_start:.1f} MiB before the rounds, {rss_end:.1f} MiB after them")
    print("policy decision (detour-bench policy):\n" + decision.strip())

    for instance in (detour, postgres, edge, many, bearer):
        instance.stop()
    database.stop()
    for process in (nginx, nginx_tls, upstream, dot):
        process.terminate()
        process.wait()
    next(issuer_fixture, None)


if __name__ == "__main__":
    main()
