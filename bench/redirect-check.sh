#!/usr/bin/env bash
# Return-target validation throughput: Detour (release build) and Node's WHATWG URL, same mix, same run.
# Usage: bench/redirect-check.sh [seconds-per-run]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-3}"
scripts/release-build --product detour-bench >/dev/null
for round in 1 2; do
  echo "round $round"
  .build/release/detour-bench redirect "$seconds"
  node bench/node-url.mjs "$seconds"
done
