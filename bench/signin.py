"""Complete sign-ins per second against the local provider: /oauth2/start, the provider's form, the
callback (code redemption, ID-token validation, userinfo) and /oauth2/userinfo with the new session.

Usage: .venv/bin/python bench/signin.py [seconds] [threads]   (after scripts/test, or with the e2e
requirements installed). Uses .build/release/detour when it exists, else the debug build.
"""
import pathlib
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests" / "e2e"))
import os  # noqa: E402

release = ROOT / ".build" / "release" / "detour"
if release.exists():
    os.environ.setdefault("DETOUR_BINARY", str(release))

import requests  # noqa: E402
from conftest import Detour, provider, sign_in_at_provider, start, wait_for  # noqa: E402


def sign_in(detour):
    session = requests.Session()
    authorize = start(session, detour, detour.url("/home")).headers["Location"]
    done = session.get(sign_in_at_provider(session, authorize), allow_redirects=False)
    assert done.status_code == 303, done.text
    assert session.get(detour.url("/oauth2/userinfo")).status_code == 200


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    issuer_fixture = provider.__wrapped__()
    issuer = next(issuer_fixture)
    detour = Detour(pathlib.Path(tempfile.mkdtemp()), issuer)
    wait_for(detour.url("/ready"))
    counts = [0] * threads
    deadline = time.time() + seconds

    def worker(index):
        while time.time() < deadline:
            sign_in(detour)
            counts[index] += 1

    started = time.time()
    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    elapsed = time.time() - started
    total = sum(counts)
    print(f"sign-ins per second (complete flow, {threads} threads, {os.environ.get('DETOUR_BINARY', 'debug build')}): "
          f"{total / elapsed:.1f}  ({total} in {elapsed:.1f} s)")
    detour.stop()
    next(issuer_fixture, None)


if __name__ == "__main__":
    main()
