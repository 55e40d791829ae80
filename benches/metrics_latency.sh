#!/usr/bin/env bash
# /metrics latency at a fixed 500 req/s from 50 connections (oha), against
# sidewatch (release) with the default metric set and 3 probe targets.
#
#   benches/metrics_latency.sh [seconds]   (default 30; needs `cargo install oha`)
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-30}
command -v oha >/dev/null || { echo "oha is missing: run 'cargo install oha'" >&2; exit 1; }
. benches/three_targets.sh
sleep 3
bytes=$(curl -s "http://127.0.0.1:$admin_port/metrics" | wc -c 2>/dev/null || echo "?")
echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "/metrics body: $bytes bytes"
oha --no-tui -q 500 -c 50 -z "${duration}s" "http://127.0.0.1:$admin_port/metrics" | tee "$work/oha.txt" \
  | grep -E "Success rate|Requests/sec|Slowest|Fastest|Average|(50|90|99|99.9)(\.00)?% in" || true
awk '/VmRSS/ {printf "sidewatch RSS after the run: %.1f MiB\n", $2/1024}' "/proc/$pid/status"
