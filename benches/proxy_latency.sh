#!/usr/bin/env bash
# Proxy latency at a fixed rate, in interleaved rounds: nginx `return 200`
# reached directly, through haproxy and through sidewatch (access log on and
# off), each round running `oha -q 2000 --latency-correction -c 50` against
# each in turn (1 s warm-up, then the measured run; each round starting one
# target further on), so a shared machine's slow minutes hit all of them
# alike. Every request's latency is kept
# (`oha --db-url`) and the percentiles are taken over all rounds pooled: the
# p99 of one 3 s run is its 60th slowest request and spread by 0.3–1.1 ms
# across a set's runs; pooled over 8 rounds it is the 480th of 48k
# requests. Prints every run's p50/p99, then per target
# the pooled p50/p90/p99/p99.9, what it adds to direct, and the range of
# the per-run p99s. The same setup as proxy_rounds.sh (BASELINE_BIN,
# SIDEWATCH_BIN, PROXY_THREADS and HAPROXY_LOG work the same: HAPROXY_LOG=1
# adds `haproxy_log`, haproxy writing a JSON access-log line and adding an
# X-Request-ID per request, the like-for-like peer of sidewatch with its
# access log on);
# run by hand after benches/proxy.sh has installed nginx, haproxy and wrk,
# with oha on the PATH (`cargo install oha`).
#
#   benches/proxy_latency.sh [rounds] [seconds per run]   (default 3 × 4 s)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
secs=${2:-4}
command -v oha >/dev/null || { echo "missing oha: cargo install oha" >&2; exit 1; }
. benches/release_bin.sh

. benches/proxy_peers.sh
start_upstream
names=(direct haproxy); ports=("$nginx_port" "$(port)"); procs=()
start_haproxy "${ports[1]}" "$nginx_port"
pids+=($haproxy_pid)
if [ "${HAPROXY_LOG:-0}" = 1 ]; then
  names+=(haproxy_log); ports+=($(port))
  start_haproxy "${ports[2]}" "$nginx_port" log
  pids+=($haproxy_pid)
fi
start_sidewatch_runs "$bin" "$nginx_port"
wait_ready

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "proxy.threads = ${PROXY_THREADS:-1}; oha -q 2000 --latency-correction -c 50, $rounds rounds of ${secs} s, interleaved"
for round in $(seq "$rounds"); do
  # Each round starts one target further on, so none always runs at the
  # same point of a round (first after the setup, or last).
  for i in "${!names[@]}"; do
    k=$(( (i + round) % ${#names[@]} ))
    url="http://127.0.0.1:${ports[$k]}/"
    oha -z 1s -q 2000 --latency-correction -c 50 --no-tui "$url" >/dev/null 2>&1
    oha -z "${secs}s" -q 2000 --latency-correction -c 50 --no-tui --output-format quiet \
      --db-url "$work/${names[$k]}.$round.db" "$url" 2>/dev/null
    python3 benches/latency_pool.py run "$work/${names[$k]}.$round.db"
  done
done
python3 benches/latency_pool.py pool "$work"/*.db
