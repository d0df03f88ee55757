"""Detour as the HTTPS and HTTP/2 edge against nginx (`listen ssl http2` with `proxy_pass`), same upstream, same
certificate, same run, interleaved: h2load's requests/s and mean request time for each, CPU time per request, peak
RSS, and the ratio. Detour serves a signed-in user (a real session cookie from a real sign-in over https); the
upstream is an nginx answering a small body over HTTP/1.1 keep-alive, for both proxies. Neither proxy writes an access
log (`server.access_log: off`, `access_log off`).

Usage: .venv/bin/python bench/edge.py [seconds-per-round] [clients] [streams-per-client] [rounds] [detour-binary...]
With several binaries (an A/B of two builds), each is measured in every round, beside the same nginx.
Needs: h2load (Debian's nghttp2-client), nginx, openssl, a release build (scripts/release-build --product
detour), and the e2e requirements in .venv (scripts/test installs them).
"""
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests" / "e2e"))
sys.path.insert(0, str(ROOT / "bench"))

import conftest  # noqa: E402
from conftest import Detour, provider, signed_in, wait_for  # noqa: E402
from proxy import children_rss_kb, cpu_seconds, start_nginx  # noqa: E402

SECONDS = int(sys.argv[1]) if len(sys.argv) > 1 else 10
CLIENTS = int(sys.argv[2]) if len(sys.argv) > 2 else 16
STREAMS = int(sys.argv[3]) if len(sys.argv) > 3 else 10
ROUNDS = int(sys.argv[4]) if len(sys.argv) > 4 else 3
# EDGE_UPSTREAM=file: the upstream serves a 1 KiB file (as bench/table.py's does);
# by default it answers a 24-byte body from its configuration, in one write.
UPSTREAM = os.environ.get("EDGE_UPSTREAM", "return")
BINARIES = [pathlib.Path(a) for a in sys.argv[5:]] or [ROOT / ".build" / "release" / "detour"]


def certificates(folder):
    """A CA and a localhost certificate (P-256) it signed, as the edge tests make them."""
    def openssl(*arguments):
        subprocess.run(["openssl", *arguments], cwd=folder, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-subj", "/CN=bench CA", "-keyout", "ca.key", "-out", "ca.pem")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=localhost",
            "-keyout", "server.key", "-out", "server.csr")
    (folder / "server.ext").write_text("subjectAltName=DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days",
            "2", "-extfile", "server.ext", "-out", "server.pem")
    return folder / "ca.pem", folder / "server.pem", folder / "server.key"


def h2load(url, header=None):
    """requests/s, mean request time in ms and failed requests of one h2load run."""
    command = ["h2load", f"-D{SECONDS}", f"-c{CLIENTS}", f"-m{STREAMS}", "-t2", "--warm-up-time=1", url]
    if header:
        command[1:1] = ["-H", header]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", output).group(1))
    mean, unit = re.search(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", output).groups()
    failed = int(re.search(r"requests: .*?(\d+) failed", output).group(1))
    ok, *others = (int(n) for n in re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx",
                                             output).groups())
    assert ok > 0 and sum(others) == 0, output
    return rps, float(mean) * {"us": 0.001, "ms": 1, "s": 1000}[unit], failed


def main():
    work = pathlib.Path(tempfile.mkdtemp())
    ca, certificate, key = certificates(work)
    os.environ["REQUESTS_CA_BUNDLE"] = str(ca)  # the sign-in below trusts the bench CA
    work.chmod(0o755)  # nginx's workers (nobody, when run as root) read the upstream's file under it
    (work / "files").mkdir()
    (work / "files" / "bench").write_bytes(b"x" * 1024)
    answer = f"root {work / 'files'};" if UPSTREAM == "file" else 'return 200 "hello from the upstream\\n";'
    upstream_port, upstream = start_nginx(work / "upstream", {"location": f"location / {{ {answer} }}"})
    proxy_port, nginx = start_nginx(work / "proxy", {
        "upstream": upstream_port, "listen": " ssl http2",
        "server": f"ssl_certificate {certificate}; ssl_certificate_key {key}; ssl_protocols TLSv1.2 TLSv1.3; keepalive_requests 100000000;",
        "location": "location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; }"})
    issuer_fixture = provider.__wrapped__()
    issuer = next(issuer_fixture)
    targets, processes, detours = {}, {}, []
    for index, binary in enumerate(BINARIES):
        conftest.DETOUR = binary
        folder = work / f"detour-{index}"
        folder.mkdir()
        server = f"  tls: {{ cert_file: {certificate}, key_file: {key} }}\n" + '  access_log: "off"'
        detour = Detour(folder, issuer, tls=ca, server=server, extra=f"""
routes:
  - name: app
    match: {{ host: "localhost" }}
    upstream: "http://127.0.0.1:{upstream_port}"
    allow: [{{ authenticated: true }}]
""")
        wait_for(detour.url("/ready"), verify=str(ca))
        session = signed_in(detour)
        cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies if "_detour" in c.name)
        assert session.get(detour.url("/bench")).status_code == 200
        name = "detour" if len(BINARIES) == 1 else f"detour {index + 1}"
        targets[name] = (detour.url("/bench"), f"cookie: {cookie}")
        processes[name] = detour.process.pid
        detours.append(detour)
    targets["nginx"] = (f"https://localhost:{proxy_port}/bench", None)
    processes["nginx"] = nginx.pid
    results = {name: [] for name in targets}
    for _ in range(ROUNDS):  # interleaved, so both see the same machine
        for name, (url, header) in targets.items():
            before = cpu_seconds(processes[name])
            rps, mean, failed = h2load(url, header)
            used = cpu_seconds(processes[name]) - before
            results[name].append((rps, mean, failed, used / (rps * (SECONDS + 1)) * 1e6))
    best = {name: max(runs) for name, runs in results.items()}
    rss = {name: children_rss_kb(pid) for name, pid in processes.items()}
    print(f"HTTP/2 over TLS: {SECONDS} s per round, {CLIENTS} connections x {STREAMS} streams, 2 h2load threads, "
          f"{ROUNDS} rounds interleaved; best round shown")
    if len(BINARIES) > 1:
        print("; ".join(f"detour {i + 1}: {binary}" for i, binary in enumerate(BINARIES)))
    print(f"{'':9} {'requests/s':>12} {'mean ms':>8} {'failed':>7} {'CPU µs/request':>15} {'peak RSS MiB':>13}")
    for name in targets:
        rps, mean, failed, cpu = best[name]
        print(f"{name:9} {rps:12.0f} {mean:8.2f} {failed:7d} {cpu:15.1f} {rss[name] / 1024:13.1f}")
    for name in targets:
        if name == "nginx":
            continue
        rounds = [d[0] / n[0] for d, n in zip(results[name], results["nginx"])]
        print(f"{name}/nginx: {best[name][0] / best['nginx'][0]:.2f}x requests/s; each round: "
              + " ".join(f"{r:.2f}x" for r in rounds) + f" (median {statistics.median(rounds):.2f}x)")
    for detour in detours:
        detour.stop()
    for process in (nginx, upstream):
        process.terminate()
        process.wait()
    next(issuer_fixture, None)


if __name__ == "__main__":
    main()
