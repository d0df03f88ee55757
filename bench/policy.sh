#!/usr/bin/env bash
# Policy decisions per second at 10, 1,000 and 10,000 routes (release build, one core).
# Usage: bench/policy.sh [seconds-per-size]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/release-build --product detour-bench >/dev/null
.build/release/detour-bench policy "${1:-2}"
