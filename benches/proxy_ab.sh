#!/usr/bin/env bash
# A/B of sidewatch builds as proxies: every build given runs at once in
# front of nginx `return 200`, and each round saturates each in turn with
# `wrk -t2 -c50` for 3 s, so a shared machine's slow minutes hit all of them
# alike. Prints the medians of req/s and CPU-µs per request (from
# /proc/PID/stat), and every run's CPU figure. Leaner than
# benches/proxy_rounds.sh (no haproxy, one access-log setting), for telling
# two builds apart.
# Run by hand (root, Debian 12; apt-get install nginx-light wrk).
#
#   benches/proxy_ab.sh ROUNDS BIN...
#
# ACCESS_LOG (default true) and PROXY_THREADS (default 2) set the proxy's
# `access_log` and `threads` for every build.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=$1
shift
[ $# -gt 0 ] || { echo "usage: $0 ROUNDS BIN..." >&2; exit 2; }
. benches/proxy_peers.sh
start_upstream
names=() ports=() procs=()
for bin in "$@"; do
  listen=$(port)
  name=$(basename "$bin")
  proxy_config "$work/$name.toml" "$(port)" "$listen" "$nginx_port" "${ACCESS_LOG:-true}" "${PROXY_THREADS:-2}"
  "$bin" run --config "$work/$name.toml" >/dev/null 2>"$work/$name.err" &
  pids+=($!); procs+=($!); ports+=("$listen"); names+=("$name")
done
wait_ready
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ticks_us=$((1000000 / $(getconf CLK_TCK)))
for _ in $(seq "$rounds"); do
  for k in "${!names[@]}"; do
    before=$(cpu_ticks "${procs[$k]}")
    requests=$(wrk -t2 -c50 -d3s "http://127.0.0.1:${ports[$k]}/" | awk '/requests in/ {print $1}')
    after=$(cpu_ticks "${procs[$k]}")
    echo "${names[$k]} $requests $(((after - before) * ticks_us))" >>"$work/runs"
  done
done
python3 - "$work/runs" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    name, requests, cpu_us = line.split()
    runs.setdefault(name, []).append((int(requests) / 3, int(cpu_us) / int(requests)))
for name, r in runs.items():
    rps = statistics.median(x[0] for x in r)
    cpu = statistics.median(x[1] for x in r)
    print("%-20s median %8.0f req/s  %5.2f µs CPU/req   runs: %s" % (name, rps, cpu, " ".join("%.1f" % x[1] for x in r)))
    print("RESULT proxy_ab.%s_cpu_us_per_req %.2f" % (name, cpu))
PY
