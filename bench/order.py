"""Writes scripts/detour.order: the functions Detour runs when it starts and serves, hottest first.

`scripts/release-build` compiles every function into a section of its own and has the linker place the functions
this file names first, together. Starting Detour then touches a few dense megabytes of its binary instead of
pages scattered over 28 MB of code, each of which the kernel maps with its neighbours (fault-around): about 5 MiB
less RSS at start (docs/performance.md#memory). A function the file does not name (new code, a renamed one) is
placed after them as before, so a stale file costs memory, never correctness. Run this again after large changes;
`scripts/release-build` relinks whenever the file's contents change.

How: the release build (stripped of its DWARF, which valgrind cannot read) runs under valgrind's callgrind, against
the e2e provider and an nginx upstream. It starts, a user signs in, 300 signed-in GETs are proxied, 50 anonymous
browser GETs are answered 302, and it stops. Every function of the binary that ran is listed, ordered by the
instructions it ran itself.

Usage: .venv/bin/python bench/order.py [detour-binary]   (default: .build/release/detour)
Needs valgrind, binutils (strip, nm), nginx and the e2e requirements in .venv.
"""
import collections
import pathlib
import re
import shutil
import signal
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests" / "e2e"))
sys.path.insert(0, str(ROOT / "bench"))
BINARY = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / ".build" / "release" / "detour"
ORDER = ROOT / "scripts" / "detour.order"
sys.argv[1:] = []

import requests  # noqa: E402

import conftest  # noqa: E402
from conftest import Detour, provider, wait_for  # noqa: E402
from table import cookie_of, file_upstream, routes  # noqa: E402


def self_costs(profile, binary_name):
    """Instructions each function of `binary_name` ran itself, by name, from a callgrind profile."""
    names, objects, costs = {}, {}, collections.Counter()
    current_object = current = None
    skip_next = False
    for line in profile.read_text().splitlines():
        if match := re.match(r"^(c?)(ob|fn)=\((\d+)\)(?: (.+))?$", line):
            called, kind, number, name = match.groups()
            table = objects if kind == "ob" else names
            if name:
                table[number] = re.sub(r"'\d+$", "", name)  # foo'2: a recursion level of foo
            if not called and kind == "ob":
                current_object = objects[number]
            elif not called:
                current = names[number] if current_object.endswith(binary_name) else None
        elif line.startswith("calls="):
            skip_next = True  # the next line is the call's inclusive cost, not the caller's own
        elif line and (line[0].isdigit() or line[0] in "+-*"):
            fields = line.split()  # a position, then the instructions (none when there were none)
            if not skip_next and current and len(fields) > 1:
                costs[current] += int(fields[1])
            skip_next = False
    return costs


MINIMUM = 3000  # functions: fewer means the run did not do what it should (the last run listed 6,631)


def profile_run():
    """Runs the stripped binary under callgrind through start, a sign-in, 300 GETs and 50 A1 answers; the profile."""
    work, upstream_port, upstream = file_upstream()
    stripped, profile, wrapper = work / "detour", work / "callgrind.out", work / "detour-under-callgrind"
    subprocess.run(["strip", "--strip-debug", "-o", str(stripped), str(BINARY)], check=True)
    wrapper.write_text(f"#!/bin/sh\nexec valgrind --tool=callgrind --demangle=no --dump-instr=no "
                       f"--callgrind-out-file={profile} {stripped} \"$@\"\n")
    wrapper.chmod(0o755)
    conftest.DETOUR = wrapper
    issuer_fixture = provider.__wrapped__()
    issuer = next(issuer_fixture)
    detour = Detour.__new__(Detour)
    try:
        try:
            detour.__init__(work, issuer, extra=routes(f"http://127.0.0.1:{upstream_port}"),
                            server='  access_log: "off"')
        except (RuntimeError, requests.Timeout):
            if detour.process.poll() is not None:
                raise  # it stopped: its log says why
            # else only slow: the fixture waits 20 s for /ping, a second per answer, and valgrind can take longer
        wait_for(detour.url("/ready"), timeout=180, each=10)
        name, value = cookie_of(detour).split(": ", 1)
        with requests.Session() as session:
            for _ in range(300):
                assert session.get(detour.url("/1k"), headers={name: value}).status_code == 200
        for _ in range(50):
            assert requests.get(detour.url("/1k"), headers={"Accept": "text/html"},
                                allow_redirects=False).status_code == 302
        detour.process.send_signal(signal.SIGTERM)
        detour.process.wait(120)
    finally:
        if getattr(detour, "process", None) and detour.process.poll() is None:
            detour.process.kill()
            detour.process.wait(10)
        upstream.terminate()
        upstream.wait(10)
        next(issuer_fixture, None)
    costs = self_costs(profile, stripped.name)
    shutil.rmtree(work)
    return costs


def main():
    costs = profile_run()
    symbols = subprocess.run(["nm", "--defined-only", str(BINARY)], capture_output=True, text=True,
                             check=True).stdout
    functions = {line.split()[2] for line in symbols.splitlines() if line.split()[1:2] in (["t"], ["T"], ["W"])}
    ordered = [name for name, _ in costs.most_common() if name in functions]
    if len(ordered) < MINIMUM:
        sys.exit(f"only {len(ordered)} functions of {BINARY} ran (of {len(costs)} counted); {ORDER} left as it was")
    ORDER.write_text("\n".join(ordered) + "\n")
    print(f"{ORDER}: {len(ordered)} functions of {len(costs)} that ran in {BINARY.name}")


if __name__ == "__main__":
    main()
