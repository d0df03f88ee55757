#!/usr/bin/env bash
# Microseconds to open a session cookie on a request (release build, one core).
# Usage: bench/sessions.sh [seconds-per-case]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/release-build --product detour-bench >/dev/null
.build/release/detour-bench sessions "${1:-2}"
