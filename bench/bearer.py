"""Bearer-authenticated requests per second beside cookie sessions, and what an introspection cache miss adds.

Detour runs in front of the same nginx upstream three ways in one run: a cookie session (oidc-provider-mock
sign-in), a `bearer: jwt` route and a `bearer: introspect` route with a warm cache (django-oauth-toolkit
as the provider). Then fresh opaque tokens are sent one at a time: the first request with each is a cache
miss (one introspection call), the second a hit; the median difference is the latency a miss adds.

Usage: .venv/bin/python bench/bearer.py [seconds-per-round] [connections]
Needs: wrk, nginx, a release build (scripts/release-build --product detour), the e2e requirements in .venv.
"""
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests" / "e2e"))
sys.path.insert(0, str(ROOT / "bench"))
os.environ["DETOUR_BINARY"] = str(ROOT / ".build" / "release" / "detour")

import requests  # noqa: E402

from conftest import Detour, free_port, signed_in, start_mock_provider, wait_for  # noqa: E402
from proxy import start_nginx, wrk  # noqa: E402

SECONDS = int(sys.argv[1]) if len(sys.argv) > 1 else 10
CONNECTIONS = int(sys.argv[2]) if len(sys.argv) > 2 else 64


def token(issuer, client_id):
    return requests.post(issuer + "/token/", data={"grant_type": "password", "username": "alice",
                                                   "password": "alice-password", "client_id": client_id}
                         ).json()["access_token"]


def main():
    work = pathlib.Path(tempfile.mkdtemp())
    upstream_port, upstream = start_nginx(work / "upstream",
                                          {"location": 'location / { return 200 "hello from the upstream\\n"; }'})
    upstream_url = f"http://127.0.0.1:{upstream_port}"
    issuer, mock = start_mock_provider()
    cookie_detour = Detour(work, issuer, extra=f"""
routes:
  - name: app
    match: {{ host: "localhost" }}
    upstream: "{upstream_url}"
    allow: [{{ authenticated: true }}]
""")
    wait_for(cookie_detour.url("/ready"))
    session = signed_in(cookie_detour)
    cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies if c.name.startswith("_detour"))

    port = free_port()
    dot = subprocess.Popen([sys.executable, str(ROOT / "Tests" / "providers" / "oauth_provider.py"), str(port), "3600"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert dot.stdout.readline().strip() == "ready"
    dot_issuer = f"http://127.0.0.1:{port}/o"
    wait_for(dot_issuer + "/.well-known/openid-configuration")
    bearer_detour = Detour(work, dot_issuer, client=("detour", "detour-secret"), oidc=f"""  bearer_audiences: ["orders-api"]
  introspection_url: "{dot_issuer}/introspect/"
  introspection_cache_ttl: "600s"
""", extra=f"""
routes:
  - name: jwt
    match: {{ host: "localhost", path: "/jwt/" }}
    upstream: "{upstream_url}"
    bearer: "jwt"
    allow: [{{ authenticated: true }}]
  - name: opaque
    match: {{ host: "localhost", path: "/opaque/" }}
    upstream: "{upstream_url}"
    bearer: "introspect"
    allow: [{{ authenticated: true }}]
""")
    wait_for(bearer_detour.url("/ready"))
    jwt, opaque = token(dot_issuer, "jwt-cli"), token(dot_issuer, "cli")
    for path, value in (("/jwt/x", jwt), ("/opaque/x", opaque)):
        assert requests.get(bearer_detour.url(path), headers={"Authorization": f"Bearer {value}"}).status_code == 200

    rows = {"cookie session": [], "bearer jwt": [], "bearer introspect (warm)": []}
    for _ in range(2):
        rows["cookie session"].append(wrk(cookie_detour.url("/bench"), f"Cookie: {cookie}", SECONDS, CONNECTIONS))
        rows["bearer jwt"].append(
            wrk(bearer_detour.url("/jwt/bench"), f"Authorization: Bearer {jwt}", SECONDS, CONNECTIONS))
        rows["bearer introspect (warm)"].append(
            wrk(bearer_detour.url("/opaque/bench"), f"Authorization: Bearer {opaque}", SECONDS, CONNECTIONS))

    misses, hits = [], []
    for _ in range(40):
        fresh = token(dot_issuer, "cli")
        headers = {"Authorization": f"Bearer {fresh}"}
        for sample in (misses, hits):
            start = time.perf_counter()
            assert requests.get(bearer_detour.url("/opaque/x"), headers=headers).status_code == 200
            sample.append((time.perf_counter() - start) * 1000)

    print(f"{SECONDS} s per round, {CONNECTIONS} connections, 2 wrk threads, rounds interleaved; best round shown")
    print(f"{'':26} {'requests/s':>12} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, runs in rows.items():
        rps, p50, p99, errors = max(runs)
        print(f"{name:26} {rps:12.0f} {p50:8.2f} {p99:8.2f} {errors:7d}")
    print(f"introspection cache miss: median {statistics.median(misses):.2f} ms, hit {statistics.median(hits):.2f} ms "
          f"(one request at a time, 40 fresh tokens): a miss adds {statistics.median(misses) - statistics.median(hits):.2f} ms")
    for detour in (cookie_detour, bearer_detour):
        detour.stop()
    for process in (upstream, mock, dot):
        process.terminate()
        process.wait()


if __name__ == "__main__":
    main()
